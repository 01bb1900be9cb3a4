"""Shared fixtures. ``smoke_repro``: the smoke profile's real `dvc repro`, once per test session.

The project is copied (tracked and untracked-but-not-ignored files, as a fresh clone plus local
edits would have them) to a temporary directory, params.yaml is pointed at the smoke profile and
`dvc repro` runs there with the project's .venv first on PATH. Tests share the result; a test that
changes the copy must work on its own copy (see ``copy_project``).

The suite runs on pytest-xdist workers (``-n auto --dist loadgroup`` in pyproject.toml): every test that
uses ``smoke_repro`` is put in one group, so the smoke project is built once, by one worker, while the
others run the rest of the suite; every other file is a group of its own (its module fixtures built once).
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from support.project import ROOT, VENV_BIN, copy_project, profile_params, run_in, set_profile


SMOKE_GROUP = "smoke_repro"


# tryfirst: xdist's own hook (registered after this conftest, so called before it otherwise) reads the groups
# into the node ids; a group added after it is silently ignored, and the smoke project is built on every worker.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """One xdist group per test file, and one for every test of the smoke project.

    Fixtures of module and session scope are built once per worker that needs them: a file split across
    workers would train its module's tiny models twice, and the smoke project would be built twice.
    """
    groups = {}
    for item in items:
        uses_smoke = "smoke_repro" in getattr(item, "fixturenames", ())
        groups[item.nodeid] = SMOKE_GROUP if uses_smoke else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))
    # Longest first, so no worker starts the smoke project or an end-to-end file when the others are done:
    # the smoke group, then files with a slow-marked test, then the rest (each in collection order).
    slow = {groups[i.nodeid] for i in items if i.get_closest_marker("slow") is not None}

    def rank(item: pytest.Item) -> int:
        g = groups[item.nodeid]
        return 0 if g == SMOKE_GROUP else 1 if g in slow else 2

    items.sort(key=rank)  # stable: the same order on every worker, as xdist requires


@pytest.fixture(scope="session")
def smoke_repro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Temp copy of the project after a real `dvc repro` of the smoke profile; returns its path."""
    if shutil.which("dvc", path=str(VENV_BIN)) is None and shutil.which("dvc") is None:
        pytest.skip("dvc is not installed in .venv (run scripts/setup.sh)")
    # Built once per run: under xdist every worker's temp dir shares one parent, where the first build claims
    # the project; a second claim means the smoke tests were split across workers (their group was lost).
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    shared = tmp_path_factory.getbasetemp().parent if worker else tmp_path_factory.getbasetemp()
    try:
        with open(shared / "smoke_repro.claimed", "x") as f:
            f.write(worker or "main")
    except FileExistsError:
        pytest.fail(f"the smoke project is already built by {(shared / 'smoke_repro.claimed').read_text()}: the tests "
                    f"that use smoke_repro must share one xdist group (tests/conftest.py)")
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
