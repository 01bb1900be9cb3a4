"""The acoustic model's side of a sweep trial (``experiments.spec.ACOUSTIC``'s trainer): what the one trial
function (``experiments.trial.train_trial``) cannot know by itself: the acoustic trainer
(priorgrad/acoustic/train.py, E1 validation curves valid/mel_l1 and the mu-alone floor valid/floor_mel_l1),
the run's description, its features as training input and its listening samples (mels and a figure).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from experiments.spec import FamilyTrainer, Trial, TrialContext
from priorgrad.core.config import Params
from priorgrad.core.tracking import Tracker

log = logging.getLogger(__name__)


def train(cfg: Any, ctx: TrialContext, run_dir: Path, tracker: Tracker, use_ray: bool) -> dict[str, Any]:
    from priorgrad.acoustic.train import train_acoustic

    # a bar when run by hand in a terminal; Ray interleaves the logs of its workers, so none there
    return train_acoustic(cfg, ctx.features, run_dir, prior=ctx.stats, tracker=tracker,
                          progress=False if use_ray else None)


def describe(ctx: TrialContext, trial: Trial, params: Params) -> str:
    """What the run is, in words (the MLflow run page's Description)."""
    from priorgrad.core import registry

    entry = registry.prior(trial.prior, trial.family)
    ac = params.extra["acoustic"]
    size = params.extra["acoustic_sizes"][trial.size]
    return (f"Acoustic model (text -> mel), {entry.label}: {entry.doc}. Size {trial.size} (encoder "
            f"H={size['hidden']} x {size['encoder_layers']} layers, decoder {size['decoder_layers']} layers x "
            f"C={size['decoder_channels']}), seed {trial.seed}, {trial.budget} training steps (checkpoints kept at "
            f"{', '.join(map(str, trial.budgets))}). Trial {trial.name} of the acoustic sweep {ctx.sweep_name} "
            f"({ctx.sweep_id}) on the {params.corpus.source} corpus; E1 validation (ground-truth durations, f0 "
            f"and energy; {ac['train']['valid_steps']} steps of the {ac['infer']['schedule']} protocol, x0 clip "
            f"{ac['infer']['clip_x0']}) every {ac['train']['validate_every']} steps: valid/mel_l1, this system's "
            f"floor valid/prior_draw_mel_l1 (its prior draw) and the mean reference valid/floor_mel_l1 (mu alone). "
            f"Test scores (test/<condition>/<metric>/T<T>) are added by the acoustic evaluate stage.")


def training_input(ctx: TrialContext, params: Params) -> tuple[str, list[dict[str, Any]]]:
    """The acoustic features as the run's training input: one row per utterance of their manifest."""
    from priorgrad.core.fileio import read_jsonl

    # read as plain JSON lines: the trial's code fingerprint should not take in the preprocessing code
    rows = [{k: r.get(k) for k in ("utt", "split", "n_frames", "n_tokens", "text", "durations_from")}
            for r in read_jsonl(Path(ctx.features) / "manifest.jsonl")]
    return f"{Path(str(params.corpus.source)).name or params.corpus.source}-acoustic-features", rows


def samples(checkpoint: str, ctx: TrialContext, run_dir: Path, tracker: Tracker, active: bool) -> None:
    """Listening samples for the run's MLflow page, only when it has one (they cost a synthesis)."""
    made = _mel_samples(checkpoint, ctx, run_dir) if active else None
    if made is not None:
        tracker.log_artifact(made[0])
        tracker.log_figure(made[1], "figures/e1_mels.png")


def _mel_samples(checkpoint: str, ctx: TrialContext, run_dir: Path) -> tuple[Path, Any] | None:
    """The first tracking.n_audio_samples validation utterances synthesised under E1 by the final model: their
    mels (.npy) and a figure of each beside its ground truth, for the run's MLflow page. Mels, not audio: the
    offline vocoder (Griffin-Lim) costs seconds per clip here, and the acoustic evaluate stage renders the
    listening examples anyway."""
    if ctx.n_audio_samples <= 0:
        return None
    from priorgrad.acoustic.dataset import FeatureSet
    from priorgrad.acoustic.synthesize import synthesize

    out = run_dir / "samples"
    synthesize(checkpoint, out, features=ctx.features, split="valid", conditions=["E1"],
               max_utterances=ctx.n_audio_samples, vocoder=None, progress=False)
    import matplotlib

    matplotlib.use("Agg")  # no display on a training node
    import numpy as np
    from matplotlib.figure import Figure

    utts = FeatureSet(ctx.features).utterances("valid")[:ctx.n_audio_samples]
    fig = Figure(figsize=(7.0, 2.2 * len(utts)), layout="constrained")
    for i, u in enumerate(utts):
        gen = np.load(out / "E1" / f"{u.utt}.npy")
        for j, (mel, what) in enumerate(((u.mel, "ground truth"), (gen, "E1 sample"))):
            ax = fig.add_subplot(len(utts), 2, 2 * i + j + 1)
            # the ground truth's range for both: a sample far off the data shows as saturated, not rescaled
            ax.imshow(mel, origin="lower", aspect="auto", vmin=float(u.mel.min()), vmax=float(u.mel.max()))
            ax.set_title(f"{u.utt}: {what}", fontsize=8)
            ax.tick_params(labelsize=6)
    return out, fig


TRAINER = FamilyTrainer(train=train, describe=describe, training_input=training_input, samples=samples)
