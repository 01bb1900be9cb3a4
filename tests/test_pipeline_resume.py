"""Kill the sweep mid-way (SIGKILL) and re-run `dvc repro`: finished trials are not trained again,
the interrupted one continues from its checkpoint, and Ray Tune restores its experiment."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from support.project import copy_project, project_env, run_in

pytestmark = pytest.mark.slow


def _trial_dirs(project: Path, seed: int) -> dict[str, Path]:
    return {d.name.split("-")[0]: d for d in (project / "runs/sweep/trials").glob(f"*-tiny-s{seed}-*")}


def _checkpoint_step(run_dir: Path) -> int | None:
    import torch

    path = run_dir / "checkpoints" / "last.pt"
    if not path.exists():
        return None
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["step"])
    except Exception:  # being replaced right now
        return None


def test_killed_sweep_resumes_without_retraining_finished_trials(smoke_repro: Path, tmp_path: Path) -> None:
    project = copy_project(smoke_repro, tmp_path / "project", with_outputs=True)
    # New trials (seed 1), one at a time, so that one can be finished while the next one trains. The copy
    # runs the smoke profile, so the change goes where a user would make it: into the profile overlay.
    profile = project / "profiles" / "smoke.yaml"
    over = yaml.safe_load(profile.read_text())
    over["sweep"].update(seeds=[1], budgets=[60], max_concurrent_trials=1)
    profile.write_text(yaml.safe_dump(over, sort_keys=False))

    log_path = tmp_path / "killed.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["dvc", "repro", "sweep"], cwd=project, env=project_env(project), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finished: Path | None = None
    running: Path | None = None
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            dirs = _trial_dirs(project, seed=1)
            done = [d for d in dirs.values() if (d / "trial_result.json").exists()]
            busy = [d for d in dirs.values() if not (d / "trial_result.json").exists()
                    and (_checkpoint_step(d) or 0) >= 10]
            if done and busy:
                finished, running = done[0], busy[0]
                break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: dvc, the sweep, Ray and its trials
        proc.wait()
    assert finished is not None and running is not None, (
        "never saw one finished and one half-trained trial:\n" + log_path.read_text()[-4000:])
    killed_at = _checkpoint_step(running)
    assert killed_at is not None and 10 <= killed_at < 60
    finished_files = {name: ((finished / name).stat().st_mtime_ns, (finished / name).read_bytes())
                      for name in ("trial_result.json", "metrics.jsonl", "checkpoints/last.pt", "mlflow_run.json")}
    running_run_id = json.loads((running / "mlflow_run.json").read_text())["run_id"]
    time.sleep(3)  # Ray's workers die with their raylet; nothing may write after the kill

    rerun = run_in(project, ["dvc", "repro", "sweep"], timeout=400)
    out = rerun.stdout + rerun.stderr
    assert "restoring the interrupted sweep" in out, out[-3000:]
    for name, (mtime, content) in finished_files.items():
        assert (finished / name).stat().st_mtime_ns == mtime, f"{name} of the finished trial was rewritten"
        assert (finished / name).read_bytes() == content
    result = json.loads((running / "trial_result.json").read_text())
    assert result["step"] == 60
    records = [json.loads(line) for line in (running / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "valid/ls_mae" in r]
    assert steps == [0, 10, 20, 30, 40, 50, 60]  # each validation once: resumed, not restarted
    assert json.loads((running / "mlflow_run.json").read_text())["run_id"] == running_run_id
    trials = json.loads((project / "runs/sweep/trials.json").read_text())
    assert {t["seed"] for t in trials} == {1} and len(trials) == 2
