#!/usr/bin/env bash
# Creates .venv in the project root and installs the project with its dependencies.
# torch==2.13.0 goes in first (CPU build where pip's find-links has it), so nothing later pulls a CUDA build.
# Re-running is cheap: a stamp file records the hash of pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.installed
want=$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip wheel setuptools
.venv/bin/python -m pip install -q "torch==2.13.0"
# uv resolves the rest ~10x faster than pip; it must see the same find-links as pip for the local torch.
.venv/bin/python -m pip install -q uv
export UV_FIND_LINKS="${UV_FIND_LINKS:-${PIP_FIND_LINKS:-}}"
if ! .venv/bin/uv pip install -q --python .venv/bin/python -e ".[dev]"; then
  echo "setup: uv failed, falling back to pip" >&2
  .venv/bin/python -m pip install -q -e ".[dev]"
fi
.venv/bin/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
echo "$want" > "$stamp"
