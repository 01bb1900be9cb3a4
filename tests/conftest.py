"""Shared fixtures. ``smoke_repro``: the smoke profile's real `dvc repro`, once per test session.

The project is copied (tracked and untracked-but-not-ignored files, as a fresh clone plus local
edits would have them) to a temporary directory, params.yaml is pointed at the smoke profile and
`dvc repro` runs there with the project's .venv first on PATH. Tests share the result; a test that
changes the copy must work on its own copy (see ``copy_project``).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from support.project import ROOT, VENV_BIN, copy_project, profile_params, run_in, set_profile


@pytest.fixture(scope="session")
def smoke_repro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Temp copy of the project after a real `dvc repro` of the smoke profile; returns its path."""
    if shutil.which("dvc", path=str(VENV_BIN)) is None and shutil.which("dvc") is None:
        pytest.skip("dvc is not installed in .venv (run scripts/setup.sh)")
    project = copy_project(ROOT, tmp_path_factory.mktemp("smoke") / "project")
    set_profile(project, "smoke")
    t0 = time.perf_counter()
    # a safety net against a hung stage, not a speed check (benchmarks/bench_pipeline.py measures the time):
    # a loaded 2-core machine has taken over 600 s
    proc = run_in(project, ["dvc", "repro"], timeout=1500)
    (project / "smoke_repro_seconds.txt").write_text(f"{time.perf_counter() - t0:.1f}\n")
    # what the stages logged (e.g. the address the sweep's local Ray instance is bound to)
    (project / "smoke_repro.log").write_text(proc.stdout + proc.stderr)
    return project


@pytest.fixture(scope="session")
def tiny_features(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The smoke profile's corpus -> features -> prior statistics, made once through the real code."""
    from priorgrad.core.config import load_params
    from priorgrad.corpus.synth import make_corpus
    from priorgrad.vocoder.preprocess import preprocess, prior_stats

    d = tmp_path_factory.mktemp("tiny")
    params = load_params(profile_params(d / "params", "smoke"))
    make_corpus(d / "corpus", n_utterances=params.corpus.n_utterances, seed=0)
    preprocess(d / "corpus", d / "features", params, progress=False)
    prior_stats(d / "features", d / "stats.json", params.audio.preset)
    return d / "features", d / "stats.json"
