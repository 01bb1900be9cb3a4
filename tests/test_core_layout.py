"""The layout the design rests on, read from the code's own imports (function-level ones included):

- priorgrad/core/ imports no family (the registry names family builders as strings, imported lazily);
- a family (priorgrad/vocoder/, priorgrad/acoustic/) imports the core and the corpus, never the other family;
- priorgrad/corpus/ imports the core only;
- packages import only downwards: priorgrad <- eval <- experiments <- reports.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from support.core import ROOT

PACKAGE_ORDER = ("priorgrad", "eval", "experiments", "reports")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(text: str, module: str, is_pkg: bool = False) -> set[str]:
    """Absolute names of the project modules a module's source imports (relative imports resolved)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_pkg else 0)
                base = ".".join(parts[:keep] + ([node.module] if node.module else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in out if m.split(".")[0] in PACKAGE_ORDER}


def _offenders(folder: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, f"{folder}: no modules (has the layout changed?)"
    out = {}
    for f in files:
        found = _imports(f.read_text(encoding="utf-8"), _module(f), f.name == "__init__.py")
        bad = sorted(m for m in found if any(m == x or m.startswith(x + ".") for x in forbidden))
        if bad:
            out[str(f.relative_to(ROOT))] = bad
    return out


@pytest.mark.parametrize("folder, forbidden", [
    ("priorgrad/core", ("priorgrad.vocoder", "priorgrad.acoustic", "priorgrad.corpus", "priorgrad.cli")),
    ("priorgrad/vocoder", ("priorgrad.acoustic",)),
    ("priorgrad/acoustic", ("priorgrad.vocoder",)),
    ("priorgrad/corpus", ("priorgrad.vocoder", "priorgrad.acoustic")),
    ("priorgrad", ("eval", "experiments", "reports")),
    ("eval", ("experiments", "reports")),
    ("experiments", ("reports",)),
])
def test_imports_run_downwards_and_families_stay_apart(folder: str, forbidden: tuple[str, ...]) -> None:
    assert _offenders(folder, forbidden) == {}


def test_the_check_sees_cross_family_imports_in_every_form() -> None:
    """The checker itself: absolute, relative and function-level imports of the other family are seen."""
    text = ("from ..vocoder import model\n"
            "def f():\n    import priorgrad.vocoder.infer\n    from priorgrad.vocoder.prior import make_prior\n")
    found = _imports(text, "priorgrad.acoustic.probe")
    assert {"priorgrad.vocoder.model", "priorgrad.vocoder.infer", "priorgrad.vocoder.prior"} <= found
    assert "priorgrad.core.layers" in _imports((ROOT / "priorgrad/acoustic/model.py").read_text(),
                                               "priorgrad.acoustic.model")
