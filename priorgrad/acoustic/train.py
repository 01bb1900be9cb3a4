"""Training of the acoustic model (PriorGrad, B1 N(0, I), B2 trainable prior) on an acoustic features directory.

The vocoder trainer's guarantees (priorgrad/train.py, whose pieces are reused): re-running the same
command resumes from run_dir/checkpoints/last.pt; everything random in step k (the batch, the
windows, dropout, diffusion steps and noise) derives from (seed, k), so a run killed and resumed ends
with the same weights as an uninterrupted one on the same machine; checkpoints are atomic and carry
the config, the vocabulary, the f0 statistics and the prior table; a NaN loss stops naming the step.

Loss (spec sections 5, 6, 8, 10): diffusion (1/s^2-weighted, masked, on one random window per
utterance) + duration MSE on log(d + 1) + f0 L1 (voiced) + uv BCE + energy MSE (E != 0), weights 1;
B2 adds the prior loss 0.5 * ((y - mu)^2 + ln 2 pi), masked. Validation: E1 sampling of the first
valid utterances with a strided schedule; mel L1 and the mu-alone floor are logged.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from tqdm import tqdm

from priorgrad import checkpoint as ckpt_io
from priorgrad.acoustic.dataset import FeatureSet, Utterance, collate
from priorgrad.acoustic.metrics_mel import mel_l1
from priorgrad.acoustic.model import TablePrior, apply_prior_mode, build_acoustic_model
from priorgrad.acoustic.model_config import AcousticConfig
from priorgrad.acoustic.priors import acoustic_prior
from priorgrad.acoustic.sampler import make_schedule, sample_mels
from priorgrad.config import params_hash
from priorgrad.diffusion import Diffusion
from priorgrad.fileio import write_json_atomic, write_text_atomic
from priorgrad.infer import resolve_device, utterance_seed
from priorgrad.model import count_parameters
from priorgrad.tracking import CompositeTracker, JsonlTracker, Tracker
from priorgrad.logs import show_progress
from priorgrad.train import TrainingDiverged, _diff_keys, _flatten, _step_generator, kept_checkpoint

log = logging.getLogger(__name__)

LN_2PI = math.log(2.0 * math.pi)
# Keys that may change between a run and its resumption (a longer budget, other logging cadence).
RESUMABLE = {"max_steps", "validate_every", "checkpoint_every", "log_every", "keep_checkpoints", "device",
             "threads", "valid_utterances", "valid_steps", "keep_steps"}


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


class AcousticTrainer:
    def __init__(self, cfg: AcousticConfig, features_dir: str | Path, run_dir: str | Path, prior: Any | None = None,
                 tracker: Tracker | None = None, progress: bool | None = None):
        """``prior``: the phoneme prior (an object with frame_stats, e.g. the data side's PhonemePrior, or a
        path to phoneme_stats.npz). Required for prior 'phoneme'; for B1 / B2 it only gives the floor."""
        from priorgrad.acoustic.synthesize import load_frame_prior

        self.cfg = cfg
        t = cfg.train
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.jsonl = JsonlTracker(self.run_dir / "metrics.jsonl")
        self.tracker = CompositeTracker([self.jsonl, tracker])
        self.progress = progress
        if t.threads:
            torch.set_num_threads(t.threads)
        self.device = resolve_device(t.device)
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
        train = self.features.utterances("train")
        self.train_utts = [u for u in train if u.n_frames <= t.max_frames and len(u.tokens) <= t.max_tokens]
        if len(self.train_utts) < len(train):
            log.warning("left out %d training utterance(s) over train.max_frames=%d / max_tokens=%d",
                        len(train) - len(self.train_utts), t.max_frames, t.max_tokens)
        if not self.train_utts:
            raise ValueError(f"{features_dir}: no usable training utterances (split 'train')")
        self.valid_utts = self.features.utterances("valid")[:t.valid_utterances]
        if not self.valid_utts:
            raise ValueError(f"{features_dir}: no validation utterances (split 'valid')")
        self.f0_stats = (self.features.f0_mean, self.features.f0_std)
        torch.manual_seed(t.seed)  # model initialisation
        self.model = build_acoustic_model(cfg, vocab_size).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=0.0, betas=(t.adam_beta1, t.adam_beta2),
                                           eps=1e-9, weight_decay=t.weight_decay)
        self.step = 0

    # ------------------------------------------------------------------ state
    def _state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step,
                "params": self.cfg.to_dict(), "vocab": list(self.features.vocab),
                "f0_stats": {"mean": self.f0_stats[0], "std": self.f0_stats[1]},
                "prior_table": self.table.state() if self.table is not None else None,
                "n_params": count_parameters(self.model), "kind": "acoustic"}

    def save(self) -> Path:
        if self.step in self.cfg.train.keep_steps:
            # a rung of the sweep's budget ladder; written before last.pt, so a run killed in between
            # redoes this step's save on resume (as the vocoder trainer)
            ckpt_io.save(kept_checkpoint(self.ckpt_dir, self.step), self._state())
        path = ckpt_io.save(self.ckpt_dir / ckpt_io.LAST, self._state())
        if self.cfg.train.keep_checkpoints > 0:
            ckpt_io.save(self.ckpt_dir / f"step-{self.step:08d}.pt", self._state())
            for p in sorted(self.ckpt_dir.glob("step-*.pt"))[:-self.cfg.train.keep_checkpoints]:
                p.unlink()
        return path

    def try_resume(self) -> bool:
        path = self.ckpt_dir / ckpt_io.LAST
        if not path.exists():
            return False
        ckpt = ckpt_io.load(path, map_location=self.device)
        old, new = ckpt["params"], self.cfg.to_dict()

        def strip(d: dict[str, Any]) -> dict[str, Any]:  # the keys a resumed run may change are left out
            train = {k: v for k, v in d["acoustic"]["train"].items() if k not in RESUMABLE}
            return {**d, "acoustic": {**d["acoustic"], "train": train, "infer": None}}

        changed = _diff_keys(strip(old), strip(new))
        if ckpt.get("vocab") != list(self.features.vocab):
            changed.append("vocabulary (features directory)")
        if changed:
            raise ValueError(f"{path}: this run directory holds a checkpoint trained with other params "
                             f"(differs in {', '.join(changed)}); use a new --run-dir or the same params")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step = int(ckpt["step"])
        self.jsonl.truncate_after(self.step)
        log.info("resumed %s at step %d", path, self.step)
        return True

    # ------------------------------------------------------------------ steps
    def losses(self, utts: list[Utterance], rng: np.random.Generator, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """All loss terms of one batch (the trainer sums them; weights 1)."""
        t, m = self.cfg.train, self.cfg.model
        table = self.prior.frame_prior
        b = collate(utts, table, m.prior_mode) if table is not None else collate(utts)
        d = {k: v.to(self.device) for k, v in b.items()}
        out = self.model.adapt(d["tokens"], d["mel2ph"], d["f0"], d["uv"], d["energy"], *self.f0_stats)
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
            lambda x, c, tt: self.model.decoder(x, c, tt, mask), w["mel"], w["cond"],
            self.prior.condition(w["mu"], w["s"]), gen, mask=mask)
        return losses

    def train_step(self) -> dict[str, float]:
        t = self.cfg.train
        rng = np.random.default_rng([t.seed, self.step])
        pick = rng.choice(len(self.train_utts), size=min(t.batch_size, len(self.train_utts)), replace=False)
        utts = [self.train_utts[int(i)] for i in pick]
        gen = _step_generator(t.seed, self.step)
        torch.manual_seed(t.seed * 1_000_003 + self.step + 1)  # dropout of this step
        self.model.train()
        lr = learning_rate(self.step + 1, t.lr_scale, t.warmup_steps, self.cfg.size.hidden)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        losses = self.losses(utts, rng, gen)
        total = sum(losses.values())
        value = float(total.detach())
        if not np.isfinite(value):
            bad = [k for k, v in losses.items() if not torch.isfinite(v)]
            raise TrainingDiverged(f"training loss is {value} at step {self.step + 1} (terms {bad}; run "
                                   f"{self.run_dir}); lower acoustic.train.lr_scale or check the features")
        total.backward()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.optimizer.step()
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

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict[str, Any]:
        t = self.cfg.train
        resumed = self.try_resume()
        n_params = count_parameters(self.model)
        if not resumed:
            write_text_atomic(self.run_dir / "params.yaml", yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
            self.tracker.log_params({"n_params": n_params, "params_hash": params_hash(self.cfg.to_dict()),
                                     **_flatten(self.cfg.to_dict())})
        if self.step == 0:
            self.tracker.log_metrics(self.validate(), step=0)
        show = show_progress(self.progress)
        bar = tqdm(total=t.max_steps, initial=self.step, desc=f"acoustic {self.run_dir.name}", unit="step",
                   disable=not show)
        t0, s0, acc, n_acc = time.perf_counter(), self.step, {}, 0
        try:
            while self.step < t.max_steps:
                for k, v in self.train_step().items():
                    acc[k] = acc.get(k, 0.0) + v
                n_acc += 1
                bar.update(1)
                if self.step % t.log_every == 0:
                    elapsed = time.perf_counter() - t0
                    rec = {k: v / n_acc for k, v in acc.items()}
                    rec["train/steps_per_s"] = (self.step - s0) / elapsed if elapsed > 0 else 0.0
                    self.tracker.log_metrics(rec, self.step)
                    bar.set_postfix(loss=f"{rec['train/loss']:.4f}")
                    acc, n_acc = {}, 0
                kept = self.step in t.keep_steps  # a budget rung: validated and checkpointed there
                if self.step % t.validate_every == 0 or self.step == t.max_steps or kept:
                    metrics = self.validate()
                    self.tracker.log_metrics(metrics, self.step)
                    bar.set_postfix(mel_l1=f"{metrics['valid/mel_l1']:.3f}")
                if self.step % t.checkpoint_every == 0 or self.step == t.max_steps or kept:
                    self.save()
        finally:
            bar.close()
        if not (self.ckpt_dir / ckpt_io.LAST).exists():
            self.save()
        last_valid: dict[str, Any] = {}
        for rec in self.jsonl.records():
            last_valid.update({k: v for k, v in rec.items() if k.startswith("valid/")})
        kept_ckpts = {str(k): str(kept_checkpoint(self.ckpt_dir, k)) for k in sorted(t.keep_steps)
                      if 0 < k <= self.step and kept_checkpoint(self.ckpt_dir, k).exists()}
        result = {"step": self.step, "checkpoint": str(self.ckpt_dir / ckpt_io.LAST), "n_params": n_params,
                  "prior": self.cfg.model.prior, "kept_checkpoints": kept_ckpts, **last_valid}
        write_json_atomic(self.run_dir / "result.json", result)
        return result


def train_acoustic(cfg: AcousticConfig, features_dir: str | Path, run_dir: str | Path, prior: Any | None = None,
                   tracker: Tracker | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Train (or resume) to acoustic.train.max_steps; returns the final step, checkpoint and validation metrics."""
    return AcousticTrainer(cfg, features_dir, run_dir, prior, tracker, progress).fit()
