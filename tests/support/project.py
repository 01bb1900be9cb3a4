"""Copies of the project for end-to-end tests, the environment to run them in, and profile switching."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"


def project_env(project: Path) -> dict[str, str]:
    """Environment for commands run in a copied project: its own code first, offline, no tracking env."""
    env = dict(os.environ)
    bin_dir = VENV_BIN if VENV_BIN.exists() else Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    # The copy's packages must win over the editable install that points at the original checkout.
    env["PYTHONPATH"] = str(project)
    for var in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "DVC_EXP_BASELINE_REV", "DVC_EXP_NAME"):
        env.pop(var, None)
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def _project_files(root: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                         capture_output=True, check=True).stdout.decode()
    return [p for p in out.split("\0") if p and (root / p).is_file()]


def copy_project(src: Path, dest: Path, with_outputs: bool = False) -> Path:
    """A fresh git repository at dest with src's files (and, optionally, its data/ runs/ mlflow.db)."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in _project_files(src):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, target)
    if with_outputs:
        for rel in ("data", "runs", "mlartifacts", "mlflow.db", "dvc.lock", ".dvc/cache"):
            p = src / rel
            if p.is_dir():
                shutil.copytree(p, dest / rel, symlinks=True, dirs_exist_ok=True)
            elif p.exists():
                shutil.copy2(p, dest / rel)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    if not (dest / ".git").exists():
        subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
        subprocess.run(git + ["add", "-A"], cwd=dest, check=True)
        subprocess.run(git + ["commit", "-q", "-m", "test copy"], cwd=dest, check=True)
    return dest


def run_in(project: Path, args: list[str], timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=project, env=project_env(project), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}) in {project}:\n"
                             f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}")
    return proc


def set_profile(project: Path, name: str) -> None:
    """Point the copy's params.yaml at profiles/<name>.yaml (the way a user picks a profile) and commit it."""
    params = project / "params.yaml"
    text, n = re.subn(r"(?m)^profile: *\S+", f"profile: {name}", params.read_text())
    assert n == 1, f"{params}: no top-level profile key"
    params.write_text(text)
    run_in(project, ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-q", "-am",
                     f"{name} profile"])


def profile_params(dest: Path, name: str) -> Path:
    """A params file at dest/params.yaml that applies profiles/<name>.yaml (with a copy of profiles/)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "profiles", dest / "profiles", dirs_exist_ok=True)
    text, n = re.subn(r"(?m)^profile: *\S+", f"profile: {name}", (ROOT / "params.yaml").read_text())
    assert n == 1
    (dest / "params.yaml").write_text(text)
    return dest / "params.yaml"


def write_params(dest: Path, raw: dict) -> Path:
    """Write resolved params (e.g. schema.read_params of a profile, then edited) as dest/params.yaml.

    The profile is already applied in ``raw``: the written file names the empty default profile.
    """
    import yaml

    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "profiles", dest / "profiles", dirs_exist_ok=True)
    (dest / "params.yaml").write_text(yaml.safe_dump({**raw, "profile": "default"}, sort_keys=False))
    return dest / "params.yaml"


def derive_profile(project: Path, base: str, name: str, overrides: dict[str, object]) -> Path:
    """profiles/<name>.yaml in the copy: profiles/<base>.yaml with dotted-key overrides on top, selected and
    committed (as set_profile). Every section of the base profile stays listed (DVC tracks each), and
    read_params still checks that every key exists in params.yaml, so an override cannot add a key."""
    import yaml

    profile = yaml.safe_load((project / "profiles" / f"{base}.yaml").read_text())
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        node = profile
        for part in parents:
            node = node.setdefault(part, {})
            assert isinstance(node, dict), f"{dotted}: {part} is not a section of the {base} profile"
        node[key] = value
    path = project / "profiles" / f"{name}.yaml"
    path.write_text(f"# profiles/{base}.yaml with a test's overrides (tests/support/project.py derive_profile)\n"
                    + yaml.safe_dump(profile, sort_keys=False))
    run_in(project, ["git", "add", str(path.relative_to(project))])
    set_profile(project, name)
    return path
