"""One sweep trial of either family: train (or resume) one configuration, tracked in MLflow (and Ray Tune).

The same function runs under both backends and for both families: what only a family knows (its trainer,
its run description, its training input, its listening samples) comes from its descriptor's
``FamilyTrainer`` (experiments/vocoder_trial.py, experiments/acoustic_trial.py), imported on use, so a
vocoder sweep never loads the acoustic code. A trial's directory holds its checkpoints, metrics.jsonl
and, once everything is done, ``trial_result.json``: a trial that has it is finished and is never
trained again (a re-run only re-reports its result). A lock file keeps two processes (say, a
leftover worker of a killed sweep and its re-run) from training the same trial at once.
"""
from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Iterator

import yaml

from experiments.spec import Family, FamilyTrainer, Trial, TrialContext, family_of, trial_params
from priorgrad.core.config import Params, params_hash
from priorgrad.core.fileio import write_json_atomic, write_text_atomic
from priorgrad.core.tracking import CompositeTracker, Tracker

log = logging.getLogger(__name__)

RESULT = "trial_result.json"
MLFLOW_RUN = "mlflow_run.json"


def run_dir_of(ctx: TrialContext, trial: Trial) -> Path:
    return Path(ctx.trials_dir) / trial.dirname


def finished_result(run_dir: Path, trial: Trial) -> dict[str, Any] | None:
    """The stored result when this trial already finished with these settings, else None."""
    path = run_dir / RESULT
    if not path.exists():
        return None
    try:
        res = json.loads(path.read_text())
    except json.JSONDecodeError:
        log.warning("%s is unreadable; the trial is resumed from its checkpoint", path)
        return None
    if res.get("step") == trial.budget and res.get("params_hash_training") == trial.params_hash:
        return res
    return None


@contextlib.contextmanager
def trial_lock(run_dir: Path, timeout_s: float) -> Iterator[None]:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "a+") as f:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{run_dir}: another process is training this trial (lock held for "
                                       f"{timeout_s:.0f} s); stop it or wait for it to finish") from None
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _make_trackers(ctx: TrialContext, trial: Trial, run_dir: Path, use_ray: bool,
                   tags: dict[str, str]) -> tuple[Tracker, Any]:
    trackers: list[Tracker] = []
    mlflow_tracker = None
    if ctx.tracking_uri:
        from experiments.trackers import MLflowTracker

        run_id = None
        rec = run_dir / MLFLOW_RUN
        if rec.exists():
            saved = json.loads(rec.read_text())
            if saved.get("uri") == ctx.tracking_uri and saved.get("experiment") == ctx.experiment:
                run_id = saved.get("run_id")  # a resumed trial continues its own MLflow run
        mlflow_tracker = MLflowTracker(ctx.tracking_uri, ctx.experiment, trial.name, run_id=run_id, tags=tags,
                                       artifact_root=Path(ctx.artifact_root), timeout_s=ctx.tracking_timeout_s)
        if mlflow_tracker.active:
            write_json_atomic(rec, {"uri": ctx.tracking_uri, "experiment": ctx.experiment,
                                    "run_id": mlflow_tracker.run_id})
            trackers.append(mlflow_tracker)
    if use_ray:
        from experiments.trackers import RayTuneTracker

        trackers.append(RayTuneTracker())
    return CompositeTracker(trackers), mlflow_tracker


def report_to_tune(result: dict[str, Any]) -> None:
    from ray import tune

    tune.report({k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})


def trial_tags(ctx: TrialContext, trial: Trial, use_ray: bool, params_hash: str, description: str
               ) -> dict[str, str]:
    """The MLflow tags of a trial's run (both families): what it is, where it comes from, its description."""
    from priorgrad.core import registry

    return {"prior": trial.prior, "prior_label": registry.prior(trial.prior, trial.family).label,
            "system": trial.system, "family": trial.family, "size": trial.size, "seed": str(trial.seed),
            "budget": str(trial.budget), "budgets": ",".join(map(str, trial.budgets)), "trial": trial.name,
            "sweep_id": ctx.sweep_id, "sweep": ctx.sweep_name, "git_commit": ctx.git_commit,
            "params_hash": params_hash, "trial_hash": trial.params_hash,
            "backend": "ray" if use_ray else "sequential", "mlflow.note.content": description}


def default_threads(ctx: TrialContext) -> int:
    # Each trial gets its share of the cores; torch would otherwise start one thread per core in every
    # concurrent trial and they would fight over them.
    return max(1, int(ctx.cpus_per_trial))


def trainer_of(family: Family) -> FamilyTrainer:
    """The family's FamilyTrainer, imported on use (its module imports torch and the family's trainer)."""
    module, attr = family.trainer.split(":")
    return getattr(importlib.import_module(module), attr)


def run_trial(ctx: TrialContext, trial: Trial, use_ray: bool = False) -> dict[str, Any]:
    """Train one trial to its budget (resuming), log artefacts, write trial_result.json; returns it."""
    run_dir = run_dir_of(ctx, trial)
    done = finished_result(run_dir, trial)
    if done is not None:
        log.info("trial %s already finished at step %d; not training it again", trial.name, done["step"])
        if use_ray:
            report_to_tune(done)
        return done
    with trial_lock(run_dir, ctx.lock_timeout_s):
        done = finished_result(run_dir, trial)  # another process may have finished it while we waited
        if done is not None:
            if use_ray:
                report_to_tune(done)
            return done
        return train_trial(ctx, trial, run_dir, use_ray)


def trial_run_params(ctx: TrialContext, trial: Trial, family: Family) -> Params:
    """The trial's params as its trainer runs them: the sweep's, its overrides, and its thread count."""
    params = trial_params(Params.from_dict(ctx.base_params, source="sweep params"), trial.overrides)
    section = params.to_dict()
    *parents, key = family.threads_key.split(".")
    for k in parents:
        section = section[k]
    if section[key] == 0:
        params = trial_params(params, {family.threads_key: default_threads(ctx)})
    return params


def train_trial(ctx: TrialContext, trial: Trial, run_dir: Path, use_ray: bool) -> dict[str, Any]:
    """The one trial function: the family's trainer between the shared tracking, artefacts and result file."""
    family = family_of(trial.family)
    trainer = trainer_of(family)
    params = trial_run_params(ctx, trial, family)
    cfg = family.config(params)
    tags = trial_tags(ctx, trial, use_ray, params_hash(cfg.to_dict()), trainer.describe(ctx, trial, params))
    tracker, mlflow_tracker = _make_trackers(ctx, trial, run_dir, use_ray, tags)
    active = mlflow_tracker is not None and mlflow_tracker.active
    if active:
        name, rows = trainer.training_input(ctx, params)
        tracker.log_input(name, ctx.features, rows, context="training")
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(params.to_dict(), sort_keys=False))
    try:
        result = trainer.train(cfg, ctx, run_dir, tracker, use_ray)
        tracker.set_tags({"checkpoint": result["checkpoint"]})
        if active:  # no figure work without MLflow
            from experiments.convergence import convergence_figure, read_metrics

            fig = convergence_figure(read_metrics(run_dir / "metrics.jsonl"), title=f"{trial.name}: convergence")
            tracker.log_figure(fig, "figures/convergence.png")
        trainer.samples(result["checkpoint"], ctx, run_dir, tracker, active)
        tracker.log_artifact(run_dir / "config.yaml")
        ckpt_note = run_dir / "checkpoint_path.txt"
        write_text_atomic(ckpt_note, str(Path(result["checkpoint"]).resolve()) + "\n")
        tracker.log_artifact(ckpt_note)
    except BaseException:
        tracker.close("FAILED")
        raise
    return finish_trial(ctx, trial, run_dir, result, tracker, mlflow_tracker, use_ray)


def finish_trial(ctx: TrialContext, trial: Trial, run_dir: Path, result: dict[str, Any], tracker: Tracker,
                 mlflow_tracker: Any, use_ray: bool) -> dict[str, Any]:
    """Check the ladder's kept checkpoints, write trial_result.json (the trial is then finished), close the run."""
    missing = [b for b in trial.budgets if str(b) not in result["kept_checkpoints"]]
    if missing:  # the trainer keeps one per keep_steps; without them the ladder cannot be evaluated
        tracker.close("FAILED")
        raise RuntimeError(f"{run_dir}: no kept checkpoint for budget(s) {missing}")
    active = mlflow_tracker is not None and mlflow_tracker.active
    out = {**result, "trial": trial.name, "prior": trial.prior, "system": trial.system, "size": trial.size,
           "seed": trial.seed, "budget": trial.budget, "budgets": trial.budgets, "family": trial.family,
           "checkpoints": {str(b): result["kept_checkpoints"][str(b)] for b in trial.budgets},
           "params_hash_training": trial.params_hash,
           "mlflow_run_id": mlflow_tracker.run_id if active else None,
           "mlflow_experiment": ctx.experiment if active else None}
    write_json_atomic(run_dir / RESULT, out)
    tracker.close("FINISHED")
    if use_ray:
        report_to_tune(out)
    return out


def git_commit(root: Path) -> str:
    import subprocess

    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
