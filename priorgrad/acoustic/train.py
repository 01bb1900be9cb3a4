"""Training of the acoustic model (PriorGrad, B1 N(0, I), B2 trainable prior) on an acoustic features directory.

The acoustic family on the shared training runtime (priorgrad/core/runtime.py: the loop, checkpoints, resume,
the NaN stop, precision, torch.compile, determinism): re-running the same command resumes from
run_dir/checkpoints/last.pt; everything random in step k (the batch, the windows, dropout, diffusion
steps and noise) derives from (seed, k), so a run killed and resumed ends with the same weights as an
uninterrupted one on the same machine; checkpoints are atomic and carry the config, the vocabulary, the
f0 statistics and the prior table; a NaN loss stops naming the step.

Loss (spec sections 5, 6, 8, 10): diffusion (1/s^2-weighted, masked, on one random window per
utterance) + duration MSE on log(d + 1) + f0 L1 (voiced) + uv BCE + energy MSE (E != 0), weights 1;
B2 adds the prior loss 0.5 * ((y - mu)^2 + ln 2 pi), masked. Validation: E1 sampling of the first
valid utterances with a strided schedule; mel L1 and the mu-alone floor are logged.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from priorgrad.acoustic.dataset import FeatureSet, Utterance, collate
from priorgrad.acoustic.metrics_mel import mel_l1
from priorgrad.acoustic.model import TablePrior, apply_prior_mode, build_acoustic_model
from priorgrad.acoustic.model_config import AcousticConfig
from priorgrad.acoustic.priors import acoustic_prior
from priorgrad.acoustic.sampler import make_schedule, sample_mels
from priorgrad.core.config import params_hash
from priorgrad.core.diffusion import Diffusion
from priorgrad.core.seeds import utterance_seed
from priorgrad.core.runtime import FamilyTrainer, compile_model, make_scaler, scaled_update, step_generator
from priorgrad.core.tracking import Tracker

log = logging.getLogger(__name__)

LN_2PI = math.log(2.0 * math.pi)
# Keys that may change between a run and its resumption (a longer budget, other logging cadence, the
# speed-only compile and deterministic switches, as for the vocoder; not precision: other maths).
RESUMABLE = frozenset({"max_steps", "validate_every", "checkpoint_every", "log_every", "keep_checkpoints", "device",
                       "threads", "valid_utterances", "valid_steps", "keep_steps", "compile", "deterministic"})


def learning_rate(step: int, scale: float, warmup: int, hidden: int) -> float:
    """lr = scale * min(step / warmup, 1) * max(warmup, step)^-1/2 * H^-1/2 (official rsqrt schedule, 1-based step)."""
    step = max(step, 1)
    return scale * min(step / warmup, 1.0) * max(warmup, step) ** -0.5 * hidden ** -0.5


def window(batch: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], size: int,
           rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """One random window of ``size`` frames per utterance from frame tensors (B, C, N); frames past an
    utterance's end are masked. size 0 or >= the longest utterance: everything."""
    lengths = batch["lengths"].numpy()
    n = int(lengths.max())
    if size <= 0 or size >= n:
        return tensors
    starts = [int(rng.integers(0, max(int(L) - size, 0) + 1)) for L in lengths]
    idx = torch.stack([torch.arange(s, s + size) for s in starts]).clamp(max=n - 1)
    out = {}
    for k, v in tensors.items():
        out[k] = torch.gather(v, 2, idx.unsqueeze(1).expand(-1, v.shape[1], -1).to(v.device))
    valid = (torch.stack([torch.arange(s, s + size) for s in starts]) < torch.from_numpy(lengths).unsqueeze(1))
    out["mask"] = out["mask"] * valid.unsqueeze(1).to(out["mask"].dtype).to(out["mask"].device)
    return out


class AcousticTrainer(FamilyTrainer):
    """The acoustic family: encoder, variance adaptor and diffusion decoder with a registered acoustic prior."""

    label = "acoustic"
    resumable = frozenset({f"acoustic.train.{k}" for k in RESUMABLE} | {"acoustic.infer"})
    headline = "valid/mel_l1"
    diverge_hint = "lower acoustic.train.lr_scale or check the features"

    def __init__(self, cfg: AcousticConfig, features_dir: str | Path, run_dir: str | Path, prior: Any | None = None,
                 tracker: Tracker | None = None, progress: bool | None = None):
        """``prior``: the phoneme prior (an object with frame_stats, e.g. the data side's PhonemePrior, or a
        path to phoneme_stats.npz). Required for prior 'phoneme'; for B1 / B2 it only gives the floor."""
        from priorgrad.acoustic.synthesize import load_frame_prior

        t = cfg.train
        super().__init__(t, run_dir, tracker, progress)
        self.cfg = cfg
        self.features = FeatureSet(features_dir)
        vocab_size = len(self.features.vocab)
        if isinstance(prior, (str, Path)):
            prior = load_frame_prior(prior)
        self.table = TablePrior.from_prior(prior, vocab_size) if prior is not None else None
        self.prior = acoustic_prior(cfg.model, self.table)  # raises for 'phoneme' without statistics
        self.diffusion = Diffusion(cfg.diffusion.num_steps, cfg.diffusion.beta_start, cfg.diffusion.beta_end)
        # validation samples under the evaluation's protocol and clip (acoustic.infer.schedule / clip_x0), with
        # valid_steps steps; 'searched' validates with the full training schedule (valid_steps = T, checked)
        kind = "strided" if cfg.infer.schedule in ("searched", "betas") else cfg.infer.schedule
        self.valid_schedule = make_schedule(self.diffusion, kind, t.valid_steps)
        self.train_utts, self.valid_utts = self._splits(features_dir)
        self.f0_stats = (self.features.f0_mean, self.features.f0_std)
        torch.manual_seed(t.seed)  # model initialisation
        self.model = build_acoustic_model(cfg, vocab_size).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=0.0, betas=(t.adam_beta1, t.adam_beta2),
                                           eps=1e-9, weight_decay=t.weight_decay)
        self.scaler = make_scaler(self.device, t.precision)
        # the training step's forward passes (acoustic.train.compile); the modules keep the weights
        self.adapt_fn = compile_model(self.model.adapt) if t.compile else self.model.adapt
        self.decoder_fn = compile_model(self.model.decoder) if t.compile else self.model.decoder

    def _splits(self, features_dir: str | Path) -> tuple[list[Utterance], list[Utterance]]:
        """The training utterances within the length caps, and the fixed validation subset."""
        t = self.cfg.train
        train = self.features.utterances("train")
        train_utts = [u for u in train if u.n_frames <= t.max_frames and len(u.tokens) <= t.max_tokens]
        if len(train_utts) < len(train):
            log.warning("left out %d training utterance(s) over train.max_frames=%d / max_tokens=%d",
                        len(train) - len(train_utts), t.max_frames, t.max_tokens)
        if not train_utts:
            raise ValueError(f"{features_dir}: no usable training utterances (split 'train')")
        valid_utts = self.features.utterances("valid")[:t.valid_utterances]
        if not valid_utts:
            raise ValueError(f"{features_dir}: no validation utterances (split 'valid')")
        return train_utts, valid_utts

    # ------------------------------------------------------------------ what the runtime asks for
    def config(self) -> dict[str, Any]:
        return self.cfg.to_dict()

    def params_hash(self) -> str:
        return params_hash(self.cfg.to_dict())

    def result_extra(self) -> dict[str, Any]:
        return {"prior": self.cfg.model.prior}

    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "vocab": list(self.features.vocab),
                "f0_stats": {"mean": self.f0_stats[0], "std": self.f0_stats[1]},
                "prior_table": self.table.state() if self.table is not None else None, "kind": "acoustic"}

    def resume_mismatch(self, ckpt: dict[str, Any]) -> list[str]:
        return [] if ckpt.get("vocab") == list(self.features.vocab) else ["vocabulary (features directory)"]

    def load_state(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if "scaler" in ckpt:  # checkpoints written before acoustic.train.precision existed have none (fp32)
            self.scaler.load_state_dict(ckpt["scaler"])

    # ------------------------------------------------------------------ steps
    def losses(self, utts: list[Utterance], rng: np.random.Generator, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """All loss terms of one batch (the trainer sums them; weights 1)."""
        t, m = self.cfg.train, self.cfg.model
        table = self.prior.frame_prior
        b = collate(utts, table, m.prior_mode) if table is not None else collate(utts)
        d = {k: v.to(self.device) for k, v in b.items()}
        out = self.adapt_fn(d["tokens"], d["mel2ph"], d["f0"], d["uv"], d["energy"], *self.f0_stats)
        tok_mask = (d["tokens"] != 0).float()
        frame_mask = out["mask"].squeeze(1)
        losses: dict[str, torch.Tensor] = {}
        target = torch.log(d["durations"].float() + 1.0)
        losses["dur"] = ((out["log_dur"] - target) ** 2 * tok_mask).sum() / tok_mask.sum()
        voiced = frame_mask * (1.0 - d["uv"])
        losses["f0"] = ((out["f0_pred"] - d["f0"]).abs() * voiced).sum() / voiced.sum().clamp_min(1.0)
        losses["uv"] = (F.binary_cross_entropy_with_logits(out["uv_logit"], d["uv"], reduction="none")
                        * frame_mask).sum() / frame_mask.sum()
        e_mask = frame_mask * (d["energy"] != 0).float()
        losses["energy"] = ((out["energy_pred"] - d["energy"]) ** 2 * e_mask).sum() / e_mask.sum().clamp_min(1.0)
        mu, s = self.prior.moments({k: d[k] for k in ("mu", "s") if k in d}, out)
        if self.prior.learns_mean:  # B2: the mean is the network's, fitted by its own loss term
            mm = out["mask"].expand_as(mu)
            losses["prior"] = (0.5 * ((d["mel"] - mu) ** 2 + LN_2PI) * mm).sum() / mm.sum()
        frames = {"mel": d["mel"], "mu": mu, "s": s, "cond": out["cond"], "mask": out["mask"]}
        w = window(b, frames, t.window_frames, rng)
        mask = w["mask"]
        losses["diff"] = self.diffusion.training_loss(
            lambda x, c, tt: self.decoder_fn(x, c, tt, mask), w["mel"], w["cond"],
            self.prior.condition(w["mu"], w["s"]), gen, mask=mask)
        return losses

    def train_step(self) -> dict[str, float]:
        t = self.cfg.train
        rng = np.random.default_rng([t.seed, self.step])
        pick = rng.choice(len(self.train_utts), size=min(t.batch_size, len(self.train_utts)), replace=False)
        utts = [self.train_utts[int(i)] for i in pick]
        gen = step_generator(t.seed, self.step)
        torch.manual_seed(t.seed * 1_000_003 + self.step + 1)  # dropout of this step
        self.model.train()
        lr = learning_rate(self.step + 1, t.lr_scale, t.warmup_steps, self.cfg.size.hidden)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            losses = self.losses(utts, rng, gen)
        total = sum(losses.values())
        value = float(total.detach())
        if not np.isfinite(value):  # checked before the update: the weights stay those of the last good step
            self.check_finite(value, f"terms {[k for k, v in losses.items() if not torch.isfinite(v)]}; ")
        scaled_update(total, self.optimizer, self.scaler, self.model.parameters(), t.grad_clip)
        self.step += 1
        return {"train/loss": value, "train/lr": lr, **{f"train/{k}": float(v.detach()) for k, v in losses.items()}}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """E1 (ground-truth durations, f0, energy) sampling of the fixed validation subset."""
        t = self.cfg.train
        self.model.eval()
        l1, floor, draw, clipped = [], [], [], []
        for i in range(0, len(self.valid_utts), 8):
            chunk = self.valid_utts[i:i + 8]
            with self.autocast():
                res = sample_mels(self.model, self.diffusion, self.cfg.model, self.table, chunk, self.valid_schedule,
                                  [utterance_seed(t.seed, f"valid:{u.utt}") for u in chunk], "E1", self.f0_stats,
                                  self.device, clip_x0=self.cfg.infer.clip_x0, clipped=clipped)
            for u, r in zip(chunk, res):
                l1.append(mel_l1(r["mel"], u.mel))
                draw.append(mel_l1(r["x_start"], u.mel))  # this system's own floor: its prior draw
                if self.table is not None:
                    mu, _ = apply_prior_mode(*self.table.frame_stats(u.frame_ids()), "mean_std")
                    floor.append(mel_l1(mu, u.mel))
                elif self.prior.learns_mean:
                    floor.append(mel_l1(r["mu"], u.mel))
        self.model.train()
        out = {"valid/mel_l1": float(np.mean(l1)), "valid/prior_draw_mel_l1": float(np.mean(draw))}
        if clipped:  # the last step's clipped fraction (of the last batch): ~0 once the model has learned
            out["valid/clipped_last_step"] = float(clipped[-1])
        if floor:
            out["valid/floor_mel_l1"] = float(np.mean(floor))
        return out


def train_acoustic(cfg: AcousticConfig, features_dir: str | Path, run_dir: str | Path, prior: Any | None = None,
                   tracker: Tracker | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Train (or resume) to acoustic.train.max_steps; returns the final step, checkpoint and validation metrics."""
    return AcousticTrainer(cfg, features_dir, run_dir, prior, tracker, progress).fit()
