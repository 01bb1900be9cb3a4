"""The vocoder's side of a sweep trial (``experiments.spec.VOCODER``'s trainer): what the one trial function
(``experiments.trial.train_trial``) cannot know by itself: priorgrad.vocoder.train.train with the eval metrics as its
validation hook, the run's description, its features as training input, and its listening samples (audio).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from experiments.spec import FamilyTrainer, Trial, TrialContext
from priorgrad.core.config import Params
from priorgrad.core.tracking import Tracker

log = logging.getLogger("experiments.trial")  # the trial's log lines, as before this module existed


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


def train(params: Params, ctx: TrialContext, run_dir: Path, tracker: Tracker, use_ray: bool) -> dict[str, Any]:
    from priorgrad.vocoder.train import train as train_vocoder

    hook = validation_hook(ctx.validation_metrics, params.audio.sample_rate)
    # a bar when run by hand in a terminal; Ray interleaves the logs of its workers, so none there
    return train_vocoder(params, ctx.features, ctx.stats, run_dir, tracker=tracker, validation_hook=hook,
                         progress=False if use_ray else None)


def describe(ctx: TrialContext, trial: Trial, params: Params) -> str:
    """What the run is, in words (the MLflow run page's Description)."""
    from priorgrad.core import registry

    entry = registry.prior(trial.prior, trial.family)
    return (f"{entry.label}: {entry.doc}, network size {trial.size} ({params.model.residual_layers} residual layers x "
            f"{params.model.residual_channels} channels), seed {trial.seed}, {trial.budget} training steps. "
            f"Trial {trial.name} of sweep {ctx.sweep_name} ({ctx.sweep_id}) on the "
            f"{params.corpus.source} corpus; validation curves every {params.train.validate_every} steps, "
            f"test scores (test/T<T_infer>/<metric>) added by the evaluate stage.")


def training_input(ctx: TrialContext, params: Params) -> tuple[str, list[dict[str, Any]]]:
    """The corpus and its features as the run's training input: one row per utterance of the manifest."""
    from priorgrad.vocoder.data import read_manifest

    rows = [{"utt": it.utt, "split": it.split, "samples": it.samples, "frames": it.frames, "text": it.text}
            for it in read_manifest(ctx.features)]
    return f"{Path(str(params.corpus.source)).name or params.corpus.source}-features", rows


def samples(checkpoint: str, ctx: TrialContext, run_dir: Path, tracker: Tracker, active: bool) -> None:
    """A few validation utterances synthesised by the final model, as listening samples for MLflow (made
    whenever tracking is on, ``active`` or not: the run's samples/ folder is there either way)."""
    if ctx.n_audio_samples <= 0 or not ctx.tracking_uri:
        return
    from priorgrad.vocoder.data import read_manifest
    from priorgrad.core.fileio import save_npy_atomic
    from priorgrad.vocoder.infer import synthesize

    items = read_manifest(ctx.features, split="valid")[:ctx.n_audio_samples]
    if not items:
        return
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
    tracker.log_artifact(out)


TRAINER = FamilyTrainer(train=train, describe=describe, training_input=training_input, samples=samples)
