"""The smoke profile's real `dvc repro` (fixture smoke_repro): outputs, MLflow runs, DVC metrics and plots."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from support.project import run_in

pytestmark = pytest.mark.slow


def _mlflow_client(project: Path):
    from mlflow.tracking import MlflowClient

    db = project / "mlflow.db"
    assert db.exists(), "the default tracking store mlflow.db was not created in the project root"
    return MlflowClient(f"sqlite:///{db}")


def test_smoke_repro_writes_the_documented_outputs(smoke_repro: Path) -> None:
    p = smoke_repro
    trials = json.loads((p / "runs/sweep/trials.json").read_text())
    assert {t["prior"] for t in trials} == {"standard", "energy"}
    for t in trials:
        assert set(t) >= {"trial", "prior", "system", "size", "n_params", "seed", "budget", "checkpoints",
                          "mlflow_run_id", "mlflow_experiment"}
        # one run per prior to the top of the ladder, a checkpoint kept at each budget
        assert sorted(t["checkpoints"], key=int) == ["15", "30"] and t["budget"] == 30 and t["n_params"] > 0
        assert all((p / c).exists() for c in t["checkpoints"].values())
    with open(p / "runs/sweep/convergence.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["trial", "prior", "size", "n_params", "seed", "budget", "step", "metric", "value"]
    for prior in ("standard", "energy"):
        curve = sorted(int(r["step"]) for r in rows if r["prior"] == prior and r["metric"] == "ls_mae")
        assert curve == [0, 10, 15, 20, 30], (prior, curve)  # every 10 steps from step 0, and at each budget
        assert any(r["prior"] == prior and r["metric"] == "mrstft" for r in rows)  # eval's hook metric

    with open(p / "runs/eval/scores.csv") as f:
        scores = list(csv.DictReader(f))
    assert list(scores[0]) == ["system", "prior", "size", "n_params", "seed", "budget", "t_infer", "utt",
                               "metric", "value", "kind"]
    model = [r for r in scores if r["kind"] == "model"]
    assert {(r["system"], r["budget"], r["t_infer"]) for r in model} == {
        (s, b, t) for s in ("priorgrad", "diffwave") for b in ("15", "30") for t in ("6", "12")}
    floor = [r for r in scores if r["kind"] == "prior_noise"]  # each prior's own noise, one draw per seed
    assert {(r["system"], r["seed"], r["budget"], r["t_infer"]) for r in floor} == {
        ("priorgrad", "0", "0", "0"), ("diffwave", "0", "0", "0")}
    assert len({r["utt"] for r in scores}) == 3
    summary = json.loads((p / "runs/eval/summary.json").read_text())
    assert {s["metric"] for s in summary} == {"ls_mae", "mrstft", "pesq_wb", "stoi"}
    for s in summary:
        assert s["n"] == 3 and s["ci_low"] <= s["mean"] <= s["ci_high"], s
    comps = json.loads((p / "runs/eval/comparisons.json").read_text())
    systems = [c for c in comps if c["kind"] == "systems"]
    assert len(systems) == 2 * 2 * 4  # budgets x T_infer x metrics, one size
    for c in systems:
        assert c["a"] == "priorgrad" and c["b"] == "diffwave" and c["n"] == 3
        assert c["ci_low"] <= c["mean_diff"] <= c["ci_high"]
        assert not c["judged"] and "seed" in c["not_judged"]  # one seed: shown, never judged
    assert len([c for c in comps if c["kind"] == "floor"]) == 2 * 2 * 2 * 4  # each system vs its prior noise
    with open(p / "runs/eval/rtf.csv") as f:
        rtf = list(csv.DictReader(f))
    assert {(r["system"], r["t_infer"]) for r in rtf} == {(s, t) for s in ("priorgrad", "diffwave") for t in ("6", "12")}
    assert all(float(r["rtf"]) > 0 and r["device"] == "cpu" for r in rtf)
    audio = p / "runs/eval/audio"
    assert len(list((audio / "reference").glob("*.wav"))) == 1
    assert len(list((audio / "priorgrad-tiny-30-T6").glob("*.wav"))) == 1
    assert len(list((audio / "priorgrad-prior-noise").glob("*.wav"))) == 1
    index = json.loads((audio / "index.json").read_text())
    assert {st["dir"] for st in index["sets"]} == {d.name for d in audio.iterdir() if d.is_dir()} - {"reference"}
    prov = json.loads((p / "runs/eval/provenance.json").read_text())
    assert set(prov) >= {"git_commit", "params_hash", "corpus", "machine", "metric_versions"}
    assert prov["metric_versions"]["pesq_wb"]["version"] != "not-installed"


def test_the_sweeps_local_ray_was_bound_to_loopback(smoke_repro: Path) -> None:
    """Both sweeps (vocoder, acoustic) started a local Ray instance; the sweep reads the address it listens
    on from Ray's own state (ray.nodes() NodeManagerAddress and the GCS address, experiments.sweep.loopback_check,
    which refuses anything else) and logs it."""
    import re

    log = (smoke_repro / "smoke_repro.log").read_text()
    bound = re.findall(r"Ray: a local instance bound to (\S+) \(GCS ([\d.]+):\d+", log)
    assert len(bound) == 2 and all(b == ("127.0.0.1", "127.0.0.1") for b in bound), bound


def test_smoke_repro_mlflow_runs(smoke_repro: Path) -> None:
    client = _mlflow_client(smoke_repro)
    exps = [e for e in client.search_experiments() if e.name.startswith("priorgrad-bench-smoke-")]
    assert len(exps) == 1, [e.name for e in client.search_experiments()]
    runs = client.search_runs([exps[0].experiment_id])
    trials = json.loads((smoke_repro / "runs/sweep/trials.json").read_text())
    assert sorted(r.info.run_id for r in runs) == sorted(t["mlflow_run_id"] for t in trials)
    for run in runs:
        tags = run.data.tags
        assert run.info.status == "FINISHED"
        assert tags["prior"] in ("standard", "energy") and tags["size"] == "tiny" and tags["seed"] == "0"
        for key in ("sweep_id", "git_commit", "params_hash", "checkpoint"):
            assert tags.get(key), key
        assert tags["git_commit"] != "unknown"
        assert run.data.params["model.residual_channels"] == "16"
        assert run.data.params["prior.type"] == tags["prior"]
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "valid/ls_mae")]
        assert steps == [0, 10, 15, 20, 30]
        # the evaluate stage's test scores land in the trial's own run
        assert "test/T6/pesq_wb" in run.data.metrics and "test/T12/ls_mae" in run.data.metrics
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "checkpoint_path.txt", "samples", "eval"} <= artifacts
        assert [a.path for a in client.list_artifacts(run.info.run_id, "samples")][0].endswith(".wav")


def test_smoke_repro_dvc_metrics_plots_and_status(smoke_repro: Path) -> None:
    shown = json.loads(run_in(smoke_repro, ["dvc", "metrics", "show", "--json"]).stdout)
    assert len(shown) == 1, list(shown)  # the workspace only (DVC 3.67 names it "", older ones "workspace")
    data = next(iter(shown.values()))["data"]
    headline = data["runs/eval/metrics.json"]["data"]
    assert set(headline) == {"tiny-b15-T6", "tiny-b15-T12", "tiny-b30-T6", "tiny-b30-T12"}
    cell = headline["tiny-b30-T6"]["ls_mae"]
    assert set(cell) == {"priorgrad", "diffwave", "diff", "ci_low", "ci_high", "n_seeds", "n", "judged", "outcome"}
    assert (cell["n_seeds"], cell["judged"]) == (1, 0)   # one seed: shown, never judged
    assert cell["diff"] == pytest.approx(cell["priorgrad"] - cell["diffwave"], abs=1e-9)
    assert set(data["runs/sweep/final_valid.json"]["data"]) == {"priorgrad-tiny-s0", "diffwave-tiny-s0"}
    plots = json.loads(run_in(smoke_repro, ["dvc", "plots", "show", "--json"]).stdout)
    # one plot per metric (runs/sweep/convergence/<metric>.csv); the browser test draws them offline
    assert "runs/sweep/convergence/valid_ls_mae.csv" in plots["data"]
    # everything is up to date: a second repro runs nothing (no stage depends on time or randomness)
    status = run_in(smoke_repro, ["dvc", "status"]).stdout
    assert "up to date" in status, status


def test_dvc_exp_run_of_a_sweep_key_is_listed_by_exp_show(smoke_repro: Path, tmp_path: Path) -> None:
    from support.project import copy_project

    project = copy_project(smoke_repro, tmp_path / "project", with_outputs=True)
    run_in(project, ["dvc", "exp", "run", "-S", "sweep.max_concurrent_trials=1", "-n", "one-at-a-time"])
    rows = list(csv.DictReader(run_in(project, ["dvc", "exp", "show", "--csv"]).stdout.splitlines()))
    exp = next(r for r in rows if r["Experiment"] == "one-at-a-time")
    assert exp["sweep.max_concurrent_trials"] == "1"
    # finished trials were reused (nothing trained), so the metrics are those of the baseline
    base = next(r for r in rows if r["typ"] == "baseline" and r["rev"] != "workspace")  # the commit
    assert exp["tiny-b30-T6.ls_mae.diff"] not in ("", "!") and exp["tiny-b30-T6.ls_mae.diff"] == base[
        "tiny-b30-T6.ls_mae.diff"]
