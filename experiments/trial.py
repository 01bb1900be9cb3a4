"""One sweep trial: train (or resume) one configuration, tracked in MLflow (and Ray Tune under Ray).

The same function runs under both backends. A trial's directory holds its checkpoints, metrics.jsonl
and, once everything is done, ``trial_result.json``: a trial that has it is finished and is never
trained again (a re-run only re-reports its result). A lock file keeps two processes (say, a
leftover worker of a killed sweep and its re-run) from training the same trial at once.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import yaml

from experiments.spec import Trial, trial_params
from priorgrad.core.config import Params
from priorgrad.core.fileio import write_json_atomic, write_text_atomic
from priorgrad.core.tracking import CompositeTracker, Tracker

log = logging.getLogger(__name__)

RESULT = "trial_result.json"
MLFLOW_RUN = "mlflow_run.json"


@dataclass
class TrialContext:
    """What every trial of one sweep shares (plain data: it is shipped to Ray workers)."""

    base_params: dict[str, Any]
    features: str
    stats: str
    trials_dir: str
    sweep_id: str
    sweep_name: str
    git_commit: str
    tracking_uri: str | None  # None = tracking off
    experiment: str
    artifact_root: str
    tracking_timeout_s: float
    n_audio_samples: int
    validation_metrics: list[str]
    cpus_per_trial: float
    lock_timeout_s: float = 60.0


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


def validation_hook(metric_names: list[str], sample_rate: int) -> Callable[..., dict[str, float]] | None:
    """Scores the validation syntheses with the eval package (LS-MAE the trainer computes itself)."""
    names = [m for m in metric_names if m != "ls_mae"]
    if not names:
        return None
    from eval.runner import score_arrays

    def hook(step: int, gen: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, float]:
        values: dict[str, list[float]] = {m: [] for m in names}
        for utt in sorted(gen):
            scored, errors = score_arrays(ref[utt], gen[utt], sample_rate, names, utt=utt)
            for m, v in scored.items():
                values[m].append(v)
            for m, why in errors.items():  # a failed score is reported, never averaged in as 0
                log.warning("validation at step %d: %s failed on %s (%s)", step, m, utt, why)
        return {m: float(np.mean(v)) for m, v in values.items() if v}

    return hook


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


def train_vocoder_trial(ctx: TrialContext, trial: Trial, run_dir: Path, use_ray: bool) -> dict[str, Any]:
    from priorgrad.core.config import params_hash
    from priorgrad.vocoder.train import train

    params = trial_params(Params.from_dict(ctx.base_params, source="sweep params"), trial.overrides)
    if params.train.threads == 0:
        params.train.threads = default_threads(ctx)
    tags = trial_tags(ctx, trial, use_ray, params_hash(params), run_description(ctx, trial, params))
    tracker, mlflow_tracker = _make_trackers(ctx, trial, run_dir, use_ray, tags)
    if mlflow_tracker is not None and mlflow_tracker.active:
        log_features_input(tracker, ctx, params)
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(params.to_dict(), sort_keys=False))
    hook = validation_hook(ctx.validation_metrics, params.audio.sample_rate)
    try:
        # a bar when run by hand in a terminal; Ray interleaves the logs of its workers, so none there
        result = train(params, ctx.features, ctx.stats, run_dir, tracker=tracker, validation_hook=hook,
                       progress=False if use_ray else None)
        tracker.set_tags({"checkpoint": result["checkpoint"]})
        if mlflow_tracker is not None and mlflow_tracker.active:  # no figure work without MLflow
            from experiments.convergence import convergence_figure, read_metrics

            fig = convergence_figure(read_metrics(run_dir / "metrics.jsonl"), title=f"{trial.name}: convergence")
            tracker.log_figure(fig, "figures/convergence.png")
        tracker.log_artifact(run_dir / "config.yaml")
        samples = _audio_samples(result["checkpoint"], ctx, run_dir)
        if samples is not None:
            tracker.log_artifact(samples)
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


def run_description(ctx: TrialContext, trial: Trial, params: Params) -> str:
    """What the run is, in words (the MLflow run page's Description)."""
    from priorgrad.core import registry

    entry = registry.prior(trial.prior, trial.family)
    return (f"{entry.label}: {entry.doc}, network size {trial.size} ({params.model.residual_layers} residual layers x "
            f"{params.model.residual_channels} channels), seed {trial.seed}, {trial.budget} training steps. "
            f"Trial {trial.name} of sweep {ctx.sweep_name} ({ctx.sweep_id}) on the "
            f"{params.corpus.source} corpus; validation curves every {params.train.validate_every} steps, "
            f"test scores (test/T<T_infer>/<metric>) added by the evaluate stage.")


def log_features_input(tracker: Tracker, ctx: TrialContext, params: Params) -> None:
    """The corpus and its features as the run's training input: one row per utterance of the manifest."""
    from priorgrad.vocoder.data import read_manifest

    rows = [{"utt": it.utt, "split": it.split, "samples": it.samples, "frames": it.frames, "text": it.text}
            for it in read_manifest(ctx.features)]
    name = f"{Path(str(params.corpus.source)).name or params.corpus.source}-features"
    tracker.log_input(name, ctx.features, rows, context="training")


def _audio_samples(checkpoint: str, ctx: TrialContext, run_dir: Path) -> Path | None:
    """A few validation utterances synthesised by the final model, as listening samples for MLflow."""
    if ctx.n_audio_samples <= 0 or not ctx.tracking_uri:
        return None
    from priorgrad.vocoder.data import read_manifest
    from priorgrad.core.fileio import save_npy_atomic
    from priorgrad.vocoder.infer import synthesize

    items = read_manifest(ctx.features, split="valid")[:ctx.n_audio_samples]
    if not items:
        return None
    train_cfg = ctx.base_params.get("train", {})
    max_frames = int(train_cfg.get("valid_max_frames", 0))
    mels = []
    for it in items:
        # the same crop as validation: listening samples should not cost more than a validation
        mel = np.asarray(it.mel())
        path = run_dir / "samples_mel" / f"{it.utt}.npy"
        save_npy_atomic(path, np.ascontiguousarray(mel[:, :max_frames] if max_frames > 0 else mel))
        mels.append(str(path))
    out = run_dir / "samples"
    synthesize(checkpoint, mels, out, steps=int(train_cfg.get("valid_infer_steps", 6)), seed=0,
               device=str(train_cfg.get("device", "auto")))
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
