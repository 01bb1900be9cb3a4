"""log_summary against a real local MLflow store (sqlite in a temp dir)."""
from __future__ import annotations

import json

import pytest

from eval.mlflow_log import log_summary
from eval.registry import METRICS
from eval.runner import summarize_records


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)  # anything MLflow writes by default stays in the temp dir
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp_id = mlflow.create_experiment("eval-test", artifact_location=(tmp_path / "artifacts").as_uri())
    yield mlflow, exp_id
    if mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


def test_log_summary_to_the_active_run(mlflow_store, tmp_path):
    mlflow, exp_id = mlflow_store
    records = [{"utt": "u1", "pesq_wb": 3.0, "mcd": 5.0, "errors": {}},
               {"utt": "u2", "pesq_wb": 4.0, "mcd": None, "errors": {"mcd": "ValueError: boom"}},
               {"utt": "u3", "pesq_wb": 3.5, "mcd": None, "errors": {"mcd": "ValueError: boom"}}]
    summary = summarize_records(records, [METRICS["pesq_wb"], METRICS["mcd"]])

    with pytest.raises(RuntimeError, match="active MLflow run"):
        log_summary(summary)
    with mlflow.start_run(experiment_id=exp_id) as run:
        logged = log_summary(summary, records, prefix="test/", step=7)
    assert "test/mcd_std" not in logged  # undefined (one value): not logged, and not logged as 0

    client = mlflow.tracking.MlflowClient()
    data = client.get_run(run.info.run_id).data
    # one value per final metric: the mean; the interval details are a table, not 5 more series each
    assert set(data.metrics) == {"test/pesq_wb", "test/mcd"} == set(logged)
    assert data.metrics["test/pesq_wb"] == pytest.approx(3.5)
    hist = client.get_metric_history(run.info.run_id, "test/mcd")
    assert [(m.step, m.value) for m in hist] == [(7, 5.0)]
    assert data.tags["eval.pesq_wb.version"] == summary["pesq_wb"]["version"]

    arts = {a.path for a in client.list_artifacts(run.info.run_id, "eval")}
    assert arts == {"eval/test_summary.json", "eval/test_scores.jsonl", "eval/test_summary_table.json"}
    local = client.download_artifacts(run.info.run_id, "eval", str(tmp_path / "dl"))
    assert json.loads(open(f"{local}/test_summary.json").read()) == summary
    lines = open(f"{local}/test_scores.jsonl").read().splitlines()
    assert [json.loads(x) for x in lines] == records
    table = json.loads(open(f"{local}/test_summary_table.json").read())
    rows = [dict(zip(table["columns"], r)) for r in table["data"]]
    by = {r["metric"]: r for r in rows}
    assert by["pesq_wb"]["n"] == 3 and by["mcd"]["n_failed"] == 2 and by["mcd"]["std"] is None
    assert by["pesq_wb"]["ci_low"] <= 3.5 <= by["pesq_wb"]["ci_high"]
