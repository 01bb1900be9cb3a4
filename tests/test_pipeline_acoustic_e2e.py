"""The acoustic stages for real: the smoke profile's `dvc repro` (session fixture smoke_repro, which runs every
stage, the acoustic ones included) and a SIGKILLed acoustic sweep resumed from its checkpoint."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import yaml

from support.project import copy_project, project_env, run_in

pytestmark = pytest.mark.slow

SYSTEMS = {"standard": "b1-normal", "trainable": "b2-trainable", "phoneme": "priorgrad-am"}


def _client(project: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{project / 'mlflow.db'}")


def test_smoke_repro_runs_the_acoustic_stages(smoke_repro: Path) -> None:
    p = smoke_repro
    # features: the synthetic corpus has eSpeak phoneme events, so durations come from them (not MAS)
    manifest = [json.loads(x) for x in (p / "data/acoustic/manifest.jsonl").read_text().splitlines()]
    assert {r["durations_from"] for r in manifest} == {"espeak"} and len(manifest) == 16
    assert (p / "data/acoustic_stats/phoneme_stats.npz").exists()
    trials = json.loads((p / "runs/acoustic/sweep/trials.json").read_text())
    assert {t["prior"]: t["system"] for t in trials} == SYSTEMS
    for t in trials:
        assert t["family"] == "acoustic" and t["size"] == "tiny" and t["seed"] == 0 and t["budget"] == 20
        assert t["trial"] == f"{t['system']}-tiny-s0"
        assert sorted(t["checkpoints"], key=int) == ["10", "20"]
        assert all((p / c).exists() and not Path(c).is_absolute() for c in t["checkpoints"].values())
    n = {t["prior"]: t["n_params"] for t in trials}
    # B1 and PriorGrad share one network; B2 adds its mu head Linear(H -> 80) (tiny: H = 32)
    assert n["standard"] == n["phoneme"] > 0 and n["trainable"] == n["standard"] + 80 * 32 + 80
    with open(p / "runs/acoustic/sweep/convergence.csv") as f:
        rows = list(csv.DictReader(f))
    for prior in SYSTEMS:
        for metric in ("mel_l1", "floor_mel_l1"):  # E1 validation and the mu-alone floor, every 10 steps from 0
            steps = sorted(int(r["step"]) for r in rows if r["prior"] == prior and r["metric"] == metric)
            assert steps == [0, 10, 20], (prior, metric, steps)
    floors = {r["value"] for r in rows if r["metric"] == "floor_mel_l1"}
    assert len(floors) == 1  # mu alone does not train: one value for every system and step
    final = json.loads((p / "runs/acoustic/sweep/final_valid.json").read_text())
    assert set(final) == {t["trial"] for t in trials} and all("mel_l1" in v for v in final.values())
    assert (p / "runs/acoustic/sweep/convergence/valid_mel_l1.csv").exists()

    client = _client(p)
    exps = [e for e in client.search_experiments() if e.name.startswith("priorgrad-bench-acoustic-smoke-")]
    assert len(exps) == 1, [e.name for e in client.search_experiments()]
    runs = client.search_runs([exps[0].experiment_id])
    assert sorted(r.info.run_id for r in runs) == sorted(t["mlflow_run_id"] for t in trials)
    for run in runs:
        tags, params = run.data.tags, run.data.params
        assert run.info.status == "FINISHED" and tags["family"] == "acoustic" and tags["backend"] == "ray"
        assert tags["system"] == SYSTEMS[tags["prior"]] and tags["size"] == "tiny" and tags["budget"] == "20"
        assert tags["budgets"] == "10,20" and tags["git_commit"] != "unknown" and tags["checkpoint"]
        assert tags["prior_label"] in tags["mlflow.note.content"]  # the description says what the run is
        assert params["acoustic.model.prior"] == tags["prior"] and params["acoustic.train.keep_steps"] == "[10, 20]"
        assert params["acoustic.train.threads"] == "1"  # sweep.cpus_per_trial
        for key in ("valid/mel_l1", "valid/floor_mel_l1"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [0, 10, 20], key
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "checkpoint_path.txt", "samples", "figures"} <= artifacts
        # the sweep's figures, and the evaluate stage's test-score figure per budget of the ladder
        assert {a.path for a in client.list_artifacts(run.info.run_id, "figures")} == {
            "figures/convergence.png", "figures/e1_mels.png", "figures/test_quality_vs_t_infer_b10.png",
            "figures/test_quality_vs_t_infer_b20.png"}


def test_killed_acoustic_sweep_resumes_from_its_checkpoint(smoke_repro: Path, tmp_path: Path) -> None:
    """One new trial (PriorGrad-AM, ladder 20/40), SIGKILLed mid-way, resumed: it continues from its checkpoint
    in the same MLflow run, validates each step once, and its step-20 model equals the uninterrupted smoke
    repro's (the same seed and settings; the ladder's length does not enter the first 20 steps)."""
    import torch

    from experiments.spec import expand_trials
    from priorgrad.core.config import load_params
    from support.core import kill_at_checkpoint

    project = copy_project(smoke_repro, tmp_path / "project", with_outputs=True)
    profile = project / "profiles" / "smoke.yaml"
    over = yaml.safe_load(profile.read_text())
    over["acoustic_sweep"].update(priors=["phoneme"], budgets=[20, 40])
    profile.write_text(yaml.safe_dump(over, sort_keys=False))
    (trial,) = expand_trials(load_params(project / "params.yaml"), "acoustic")  # the copy's code is this checkout's
    out = project / "runs/acoustic/sweep"
    run = out / "trials" / trial.dirname
    cmd = [sys.executable, "-m", "experiments.sweep", "--family", "acoustic", "--backend", "sequential",
           "--params", str(project / "params.yaml"), "--features", str(project / "data/acoustic"),
           "--stats", str(project / "data/acoustic_stats/phoneme_stats.npz"), "--out", str(out)]
    killed_at = kill_at_checkpoint(cmd, run, 5, timeout=300, env=project_env(project))
    assert killed_at is not None and 5 <= killed_at < 40, f"not killed mid-trial ({killed_at})"
    assert not (run / "trial_result.json").exists()
    run_id = json.loads((run / "mlflow_run.json").read_text())["run_id"]

    resumed = run_in(project, cmd, timeout=300)
    assert f"at step {killed_at}" in resumed.stderr and "resumed" in resumed.stderr, resumed.stderr[-3000:]
    result = json.loads((run / "trial_result.json").read_text())
    assert result["step"] == 40 and sorted(result["checkpoints"], key=int) == ["20", "40"]
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "valid/mel_l1" in r] == [0, 10, 20, 30, 40]  # each once: not restarted
    assert json.loads((run / "mlflow_run.json").read_text())["run_id"] == run_id == result["mlflow_run_id"]
    assert _client(project).get_run(run_id).info.status == "FINISHED"

    # the same result as an uninterrupted run: the smoke repro's PriorGrad-AM trial trained these 20 steps
    straight = next(t for t in json.loads((smoke_repro / "runs/acoustic/sweep/trials.json").read_text())
                    if t["prior"] == "phoneme")
    a = torch.load(smoke_repro / straight["checkpoints"]["20"], map_location="cpu", weights_only=True)
    b = torch.load(result["checkpoints"]["20"], map_location="cpu", weights_only=True)
    assert a["step"] == b["step"] == 20
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    trials = json.loads((out / "trials.json").read_text())
    assert [t["trial"] for t in trials] == ["priorgrad-am-tiny-s0"] and trials[0]["budget"] == 40
