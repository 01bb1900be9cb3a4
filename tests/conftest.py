"""Shared fixtures. ``smoke_repro``: the smoke profile's real `dvc repro`, once per test session.

The project is copied (tracked and untracked-but-not-ignored files, as a fresh clone plus local
edits would have them) to a temporary directory, params.smoke.yaml is copied over params.yaml and
`dvc repro` runs there with the project's .venv first on PATH. Tests share the result; a test that
changes the copy must work on its own copy (see ``copy_project``).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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


@pytest.fixture(scope="session")
def smoke_repro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Temp copy of the project after a real `dvc repro` of the smoke profile; returns its path."""
    if shutil.which("dvc", path=str(VENV_BIN)) is None and shutil.which("dvc") is None:
        pytest.skip("dvc is not installed in .venv (run scripts/setup.sh)")
    project = copy_project(ROOT, tmp_path_factory.mktemp("smoke") / "project")
    shutil.copyfile(project / "params.smoke.yaml", project / "params.yaml")
    run_in(project, ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-q", "-am",
                     "smoke profile"])
    t0 = time.perf_counter()
    run_in(project, ["dvc", "repro"], timeout=600)
    (project / "smoke_repro_seconds.txt").write_text(f"{time.perf_counter() - t0:.1f}\n")
    return project
