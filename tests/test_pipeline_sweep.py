"""The sequential backend end to end on a tiny corpus, with an unreachable MLflow server."""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest

from priorgrad.core.schema import read_params
from support.project import profile_params, write_params


@pytest.mark.slow
def test_sequential_sweep_trains_without_mlflow_and_skips_finished_trials(
        tiny_features: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from experiments.sweep import run_sweep

    features, stats = tiny_features
    params = read_params(profile_params(tmp_path / "p", "smoke"))
    params["sweep"].update(backend="sequential", budgets=[2, 4], seeds=[0])
    params["train"].update(validate_every=2, checkpoint_every=2, log_every=2)
    params["tracking"].update(uri="http://127.0.0.1:9", timeout_s=2)  # nothing listens on port 9
    write_params(tmp_path, params)
    out = tmp_path / "runs" / "sweep"
    with caplog.at_level(logging.WARNING):
        run_sweep(tmp_path / "params.yaml", features, stats, out)
    assert any("127.0.0.1:9" in r.getMessage() and "without MLflow" in r.getMessage() for r in caplog.records)
    trials = json.loads((out / "trials.json").read_text())
    assert {t["prior"] for t in trials} == {"standard", "energy"}
    assert all(t["mlflow_run_id"] is None for t in trials)  # tracking lost, training done
    with open(out / "convergence.csv") as f:
        steps = {(r["prior"], int(r["step"])) for r in csv.DictReader(f) if r["metric"] == "ls_mae"}
    assert steps == {(p, s) for p in ("standard", "energy") for s in (0, 2, 4)}
    # one run per prior trained to the top budget, with a checkpoint kept at every rung of the ladder
    assert len(trials) == 2 and all(sorted(t["checkpoints"], key=int) == ["2", "4"] for t in trials)
    ckpts = sorted((out / "trials").glob("*/checkpoints/last.pt"))
    before = {p: p.stat().st_mtime_ns for p in ckpts}
    caplog.clear()
    with caplog.at_level(logging.INFO):
        run_sweep(tmp_path / "params.yaml", features, stats, out)  # a re-run trains nothing
    assert {p: p.stat().st_mtime_ns for p in ckpts} == before
    assert any("all 2 trials already finished" in r.getMessage() for r in caplog.records)


def test_sweep_refuses_missing_features(tmp_path: Path) -> None:
    from experiments.sweep import run_sweep

    with pytest.raises(FileNotFoundError, match="manifest.jsonl"):
        run_sweep(profile_params(tmp_path, "smoke"), tmp_path / "nope", tmp_path / "stats.json", tmp_path / "out")


def test_evaluate_refuses_a_missing_trial_list(tmp_path: Path) -> None:
    from experiments.evaluate import EvaluateError, run_evaluate

    with pytest.raises(EvaluateError, match="trials.json"):
        run_evaluate(profile_params(tmp_path, "smoke"), tmp_path / "features", tmp_path / "sweep", tmp_path / "eval")
