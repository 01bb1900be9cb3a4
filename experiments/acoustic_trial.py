"""One acoustic sweep trial: train (or resume) one acoustic model configuration, tracked like a vocoder trial.

``experiments.dispatch.run_trial`` dispatches here for ``trial.family == "acoustic"`` (after its finished-trial
check and under its lock), so both families share the same resume, result file, trackers and Ray reporting;
this module only knows what differs: the acoustic trainer (priorgrad/acoustic/train.py, E1 validation
curves valid/mel_l1 and the mu-alone floor valid/floor_mel_l1), its config and its listening samples.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from experiments.acoustic_spec import trial_config
from experiments.spec import Trial, trial_params
from experiments.trial import (TrialContext, _make_trackers, default_threads, finish_trial, trial_tags)
from priorgrad.core.config import Params, params_hash
from priorgrad.core.fileio import write_text_atomic
from priorgrad.core.tracking import Tracker

log = logging.getLogger(__name__)


def train_acoustic_trial(ctx: TrialContext, trial: Trial, run_dir: Path, use_ray: bool) -> dict[str, Any]:
    from priorgrad.acoustic.train import train_acoustic

    params = trial_params(Params.from_dict(ctx.base_params, source="sweep params"), trial.overrides)
    d = params.to_dict()
    if d["acoustic"]["train"]["threads"] == 0:
        d["acoustic"]["train"]["threads"] = default_threads(ctx)
    params = Params.from_dict(d, source="acoustic trial params")
    cfg = trial_config(params)
    tags = trial_tags(ctx, trial, use_ray, params_hash(cfg.to_dict()), run_description(ctx, trial, params))
    tracker, mlflow_tracker = _make_trackers(ctx, trial, run_dir, use_ray, tags)
    active = mlflow_tracker is not None and mlflow_tracker.active
    if active:
        log_features_input(tracker, ctx, params)
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(params.to_dict(), sort_keys=False))
    try:
        # a bar when run by hand in a terminal; Ray interleaves the logs of its workers, so none there
        result = train_acoustic(cfg, ctx.features, run_dir, prior=ctx.stats, tracker=tracker,
                                progress=False if use_ray else None)
        tracker.set_tags({"checkpoint": result["checkpoint"]})
        if active:  # no figure work without MLflow
            from experiments.convergence import convergence_figure, read_metrics

            fig = convergence_figure(read_metrics(run_dir / "metrics.jsonl"), title=f"{trial.name}: convergence")
            tracker.log_figure(fig, "figures/convergence.png")
            samples = _mel_samples(result["checkpoint"], ctx, run_dir)
            if samples is not None:
                tracker.log_artifact(samples[0])
                tracker.log_figure(samples[1], "figures/e1_mels.png")
        tracker.log_artifact(run_dir / "config.yaml")
        ckpt_note = run_dir / "checkpoint_path.txt"
        write_text_atomic(ckpt_note, str(Path(result["checkpoint"]).resolve()) + "\n")
        tracker.log_artifact(ckpt_note)
    except BaseException:
        tracker.close("FAILED")
        raise
    return finish_trial(ctx, trial, run_dir, result, tracker, mlflow_tracker, use_ray)


def run_description(ctx: TrialContext, trial: Trial, params: Params) -> str:
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


def log_features_input(tracker: Tracker, ctx: TrialContext, params: Params) -> None:
    """The acoustic features as the run's training input: one row per utterance of their manifest."""
    from priorgrad.core.fileio import read_jsonl

    # read as plain JSON lines: the trial's code fingerprint should not take in the preprocessing code
    rows = [{k: r.get(k) for k in ("utt", "split", "n_frames", "n_tokens", "text", "durations_from")}
            for r in read_jsonl(Path(ctx.features) / "manifest.jsonl")]
    name = f"{Path(str(params.corpus.source)).name or params.corpus.source}-acoustic-features"
    tracker.log_input(name, ctx.features, rows, context="training")


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
