"""The vocoder's training family on precomputed features (torch + numpy only).

The loop, checkpoints, resume, seeding, the NaN stop, precision and determinism are the shared runtime's
(priorgrad/core/runtime.py, whose module docstring says when a resumed run is bit-identical); this module is
the vocoder's part: its data (crops), prior, DiffWave model, Adam, the step (priorgrad/vocoder/fast_train.py's
TrainStep: eager, compiled or a CUDA graph) and validation (diffusion loss and LS-MAE after sampling).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from priorgrad.core import registry
from priorgrad.core.audio import log_mel_torch
from priorgrad.core.config import Params, params_hash
from priorgrad.vocoder.data import CropSampler, read_manifest, validation_subset
from priorgrad.core.diffusion import Diffusion
from priorgrad.vocoder.fast_train import ResidentCrops, TrainStep, make_capturable, make_optimizer
from priorgrad.vocoder.infer import generate, utterance_seed
from priorgrad.vocoder.model import build_model
from priorgrad.vocoder.prior import Prior, load_stats, make_prior
from priorgrad.core.prior_contract import sigma_of
from priorgrad.core.runtime import FamilyTrainer, make_scaler, step_generator
from priorgrad.core.tracking import Tracker

log = logging.getLogger(__name__)

ValidationHook = Callable[[int, dict[str, np.ndarray], dict[str, np.ndarray]], dict[str, float]]

# Keys that may change between a run and its resumption (a longer budget, other logging cadence).
RESUMABLE_CHANGES = frozenset({
    "train.max_steps", "train.validate_every", "train.checkpoint_every", "train.log_every", "train.keep_checkpoints",
    "train.keep_steps", "train.device", "train.threads", "train.deterministic", "infer",
    # speed-only paths: same maths, so a run may resume with them switched
    "train.features_on_device", "train.compile", "train.cuda_graphs", "model.fused_gate"})
# The sections a checkpoint must share with the run resuming it.
RESUME_SECTIONS = ("audio", "prior", "model", "diffusion", "train")


class Trainer(FamilyTrainer):
    """The vocoder family: DiffWave with a registered prior, on crops of precomputed features."""

    label = "train"
    resumable = RESUMABLE_CHANGES
    headline = "valid/ls_mae"
    diverge_hint = "lower train.learning_rate or check the features"

    def __init__(self, params: Params, features_dir: str | Path, stats_path: str | Path | None,
                 run_dir: str | Path, tracker: Tracker | None = None,
                 validation_hook: ValidationHook | None = None, progress: bool | None = None):
        t = params.train
        super().__init__(t, run_dir, tracker, progress)
        self.params = params
        self.validation_hook = validation_hook
        self.hop = params.hop_length
        needs_stats = registry.prior(params.prior.type).needs_stats  # an unknown name fails in make_prior
        self.stats = load_stats(stats_path) if needs_stats or stats_path else None
        self.prior: Prior = make_prior(params.prior, self.stats, params.audio.preset)
        self.diffusion = Diffusion.from_config(params.diffusion)
        self.diffusion.schedule(t.valid_infer_steps)  # fail now, not at the first validation
        train_items = read_manifest(features_dir, split="train")
        self.sampler = CropSampler(train_items, t.crop_frames, t.batch_size, params.audio.preset, t.seed, t.crop)
        self.valid = validation_subset(read_manifest(features_dir, split="valid"), t.valid_utterances,
                                       t.valid_max_frames, self.hop)
        torch.manual_seed(t.seed)  # model initialisation
        self.model = build_model(params).to(self.device)
        self.optimizer = make_optimizer(self.model, t.learning_rate, t.cuda_graphs)
        self.scaler = make_scaler(self.device, t.precision)
        self.step_fn = TrainStep(self.model, self.optimizer, self.scaler, self.diffusion, self.device, t.precision,
                                 compile=t.compile, cuda_graphs=t.cuda_graphs)
        self.resident = ResidentCrops(self.sampler, self.prior, self.hop, self.device) if t.features_on_device else None

    # ------------------------------------------------------------------ what the runtime asks for
    def config(self) -> dict[str, Any]:
        return self.params.to_dict()

    def params_hash(self) -> str:
        return params_hash(self.params)

    def result_extra(self) -> dict[str, Any]:
        return {"params_hash": params_hash(self.params)}

    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "prior_stats": self.stats}

    def resume_view(self, params: dict[str, Any]) -> dict[str, Any]:
        return {k: params.get(k) for k in RESUME_SECTIONS}

    def load_state(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.params.train.cuda_graphs:
            make_capturable(self.optimizer, self.device)
        self.scaler.load_state_dict(ckpt["scaler"])

    # ------------------------------------------------------------------ steps
    def train_step(self) -> float:
        t = self.params.train
        if self.resident is not None:
            audio_t, mel_t, prior = self.resident.batch(self.step)
        else:
            audio, mel = self.sampler.batch(self.step)
            prior = self.prior.condition(mel, self.hop, audio.shape[-1], self.device)
            audio_t, mel_t = torch.from_numpy(audio).to(self.device), torch.from_numpy(mel).to(self.device)
        steps, noise = self.diffusion.draw_training_noise(audio_t, step_generator(t.seed, self.step))
        value = self.step_fn(audio_t, mel_t, prior, steps, noise, self.check_finite)
        self.step += 1
        return value

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Diffusion loss with fixed noise, and LS-MAE after fast sampling, on the fixed subset."""
        t = self.params.train
        self.model.eval()
        losses, gen_wavs, ref_wavs, mae = [], {}, {}, []
        for i, v in enumerate(self.valid):
            mel = torch.from_numpy(v["mel"]).unsqueeze(0).to(self.device)
            audio = torch.from_numpy(v["audio"]).unsqueeze(0).to(self.device)
            prior = self.prior.condition([v["mel"]], self.hop, audio.shape[-1], self.device)
            g = torch.Generator().manual_seed(utterance_seed(t.seed, f"valid-loss:{v['utt']}"))
            with self.autocast():
                losses.append(float(self.diffusion.training_loss(
                    lambda x, c, s: self.model(x, c, s, sigma_of(prior)), audio, mel, prior, g)))
        for start in range(0, len(self.valid), 8):
            chunk = self.valid[start:start + 8]
            with self.autocast():
                wavs = generate(self.model, self.diffusion, self.prior, [v["mel"] for v in chunk],
                                [utterance_seed(t.seed, v["utt"]) for v in chunk], t.valid_infer_steps,
                                self.params.audio.preset, self.device)
            for v, w in zip(chunk, wavs):
                gen_wavs[v["utt"]], ref_wavs[v["utt"]] = w, v["audio"]
                a = log_mel_torch(torch.from_numpy(w), self.params.audio.preset)
                b = log_mel_torch(torch.from_numpy(v["audio"]), self.params.audio.preset)
                mae.append(float((a - b).abs().mean()))
        metrics = {"valid/loss": float(np.mean(losses)), "valid/ls_mae": float(np.mean(mae))}
        if self.validation_hook is not None:
            extra = self.validation_hook(self.step, gen_wavs, ref_wavs) or {}
            metrics.update({k if k.startswith("valid/") else f"valid/{k}": float(x) for k, x in extra.items()})
        self.model.train()
        return metrics


def train(params: Params, features_dir: str | Path, stats_path: str | Path | None, run_dir: str | Path,
          tracker: Tracker | None = None, validation_hook: ValidationHook | None = None,
          progress: bool | None = None) -> dict[str, Any]:
    """Train (or resume) to params.train.max_steps; returns the final step, checkpoint and validation metrics."""
    return Trainer(params, features_dir, stats_path, run_dir, tracker, validation_hook, progress).fit()
