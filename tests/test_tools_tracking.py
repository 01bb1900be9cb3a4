"""MLflow as its users expect it, against a real local store (sqlite in a temp dir).

Model-training experiment kind, descriptions, the data set as the run's input, figures, tables, and
the evaluate stage's test scores logged through the Tracker interface (one value per final metric).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.registry import METRICS
from eval.runner import summarize_records

pytest.importorskip("mlflow")


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)  # anything MLflow writes by default stays in the temp dir
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _summary(values_t6: list[float | None]) -> tuple[list[dict], dict]:
    records = [{"utt": f"u{i}", "pesq_wb": v, "errors": {} if v is not None else {"pesq_wb": "ValueError: x"}}
               for i, v in enumerate(values_t6)]
    return records, summarize_records(records, [METRICS["pesq_wb"]], n_boot=200)


def test_experiment_is_a_model_training_experiment(store, tmp_path):
    from mlflow.tracking import MlflowClient

    from experiments.trackers import (DESCRIPTION_TAG, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND,
                                      ensure_experiment)

    exp_id = ensure_experiment(store, "sweep-a", tmp_path / "art", description="what it is")
    client = MlflowClient(tracking_uri=store)
    tags = client.get_experiment(exp_id).tags
    assert tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND == "custom_model_development"
    assert tags[DESCRIPTION_TAG] == "what it is"
    # an experiment made without the tag (an older version of this project) gets it on next use
    old = client.create_experiment("sweep-old", artifact_location=(tmp_path / "old").as_uri())
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(old).tags
    assert ensure_experiment(store, "sweep-old") == old
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND


def test_tracker_logs_input_table_figure_and_test_scores(store, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from mlflow.tracking import MlflowClient

    from eval.mlflow_log import QUALITY_FIGURE, TEST_TABLE, log_test_scores
    from experiments.trackers import MLflowTracker
    from priorgrad.core.tracking import CompositeTracker

    mt = MLflowTracker(store, "sweep-b", "priorgrad-tiny-s0-b30", tags={"mlflow.note.content": "a trial"},
                       artifact_root=tmp_path / "art")
    assert mt.active
    tracker = CompositeTracker([mt])
    rows = [{"utt": "a", "split": "train", "samples": 22050, "frames": 86, "text": "hello"},
            {"utt": "b", "split": "valid", "samples": 11025, "frames": 43, "text": "world"}]
    tracker.log_input("synthetic-features", str(tmp_path / "features"), rows, context="training")
    tracker.log_metrics({"valid/ls_mae": 1.5}, step=0)
    tracker.log_metrics({"valid/ls_mae": 1.2}, step=10)
    fig = Figure()
    fig.add_subplot().plot([0, 10], [1.5, 1.2])
    tracker.log_figure(fig, "figures/convergence.png")
    tracker.close()

    # the evaluate stage continues the trial's run by id and adds its test scores
    again = MLflowTracker.for_run(store, mt.run_id, artifact_root=tmp_path / "art")
    assert again.active and again.run_id == mt.run_id
    per_t = {6: _summary([3.0, 3.5, None]), 12: _summary([3.2, 3.9, 3.4])}
    comparisons = tmp_path / "comparisons.json"
    comparisons.write_text("[]")
    logged = log_test_scores(again, per_t, comparisons, title="test")
    again.close()
    assert set(logged) == {"test/T6/pesq_wb", "test/T12/pesq_wb"}

    client = MlflowClient(tracking_uri=store)
    run = client.get_run(mt.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "priorgrad-tiny-s0-b30"
    assert run.data.tags["mlflow.note.content"] == "a trial"
    metrics = run.data.metrics
    assert metrics["test/T6/pesq_wb"] == pytest.approx(3.25)
    assert not [k for k in metrics if k.endswith(("_n", "_n_failed", "_std", "_ci_low", "_ci_high"))]
    assert [(m.step, m.value) for m in client.get_metric_history(mt.run_id, "valid/ls_mae")] == [(0, 1.5), (10, 1.2)]
    assert run.data.tags["eval.pesq_wb.implementation"].startswith("pesq.pesq")

    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1
    ds = inputs[0].dataset
    assert ds.name == "synthetic-features" and str(tmp_path / "features") in ds.source
    assert json.loads(ds.profile)["num_rows"] == 2
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "training"

    arts = {a.path for a in client.list_artifacts(mt.run_id, "figures")}
    assert arts == {"figures/convergence.png", QUALITY_FIGURE}
    local = Path(client.download_artifacts(mt.run_id, "", str(tmp_path / "dl")))
    assert (local / QUALITY_FIGURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = json.loads((local / TEST_TABLE).read_text())
    rows_t = [dict(zip(table["columns"], r)) for r in table["data"]]
    t6 = next(r for r in rows_t if r["t_infer"] == 6)
    assert (t6["n"], t6["n_failed"]) == (2, 1) and t6["ci_low"] <= 3.25 <= t6["ci_high"]
    assert {p.name for p in (local / "eval").iterdir()} >= {
        "test_T6_summary.json", "test_T12_scores.jsonl", "comparisons.json", "test_summary_table.json"}


def test_for_run_of_an_unknown_run_is_inactive_not_fatal(store, caplog):
    from experiments.trackers import MLflowTracker, ensure_experiment

    ensure_experiment(store, "sweep-c")
    tracker = MLflowTracker.for_run(store, "0" * 32)
    assert not tracker.active
    tracker.log_metrics({"x": 1.0}, step=0)  # a no-op, not an exception
    assert any("MLflow tracking lost" in r.getMessage() for r in caplog.records)
