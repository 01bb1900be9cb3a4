"""Training on precomputed features (torch + numpy only).

Re-running the same command resumes from ``run_dir/checkpoints/last.pt``. Everything random in step k
(crops, diffusion steps, noise) is derived from (seed, k), and the checkpoint holds the model, the
optimiser and the step. When a resumed run ends with bit-identical weights to an uninterrupted one:

- CPU: always (same machine, same torch build, same ``train.threads``), with either ``train.crop`` mode.
- CUDA: only with ``train.deterministic: true`` (deterministic algorithms, cuDNN autotuning off,
  ``CUBLAS_WORKSPACE_CONFIG=:4096:8``), on the same GPU model, driver, CUDA and torch versions. Without
  it cuDNN/cuBLAS may pick other kernels or reduction orders, and a resumed run drifts by rounding.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml
from tqdm import tqdm

from priorgrad import checkpoint as ckpt_io
from priorgrad import registry
from priorgrad.audio import log_mel_torch
from priorgrad.config import Params, params_hash
from priorgrad.data import CropSampler, read_manifest, validation_subset
from priorgrad.diffusion import Diffusion
from priorgrad.logs import show_progress
from priorgrad.fast_train import ResidentCrops, TrainStep, make_capturable, make_optimizer
from priorgrad.fileio import write_json_atomic, write_text_atomic
from priorgrad.infer import generate, resolve_device, utterance_seed
from priorgrad.model import build_model, count_parameters
from priorgrad.prior import Prior, load_stats, make_prior
from priorgrad.prior_contract import sigma_of
from priorgrad.tracking import CompositeTracker, JsonlTracker, Tracker

log = logging.getLogger(__name__)

ValidationHook = Callable[[int, dict[str, np.ndarray], dict[str, np.ndarray]], dict[str, float]]

# Keys that may change between a run and its resumption (a longer budget, other logging cadence).
RESUMABLE_CHANGES = {"train.max_steps", "train.validate_every", "train.checkpoint_every", "train.log_every",
                     "train.keep_checkpoints", "train.keep_steps", "train.device", "train.threads", "train.deterministic",
                     "infer",
                     # speed-only paths: same maths, so a run may resume with them switched
                     "train.features_on_device", "train.compile", "train.cuda_graphs", "model.fused_gate"}


def kept_checkpoint(ckpt_dir: str | Path, step: int) -> Path:
    """The checkpoint kept at a step of train.keep_steps (a rung of the sweep's budget ladder)."""
    return Path(ckpt_dir) / f"kept-{step:08d}.pt"


CUBLAS_DETERMINISTIC = ":4096:8"  # the cuBLAS workspace setting torch requires for deterministic CUDA


def configure_determinism(enabled: bool, device: torch.device) -> bool:
    """``train.deterministic``: on CUDA, make every kernel choice reproducible; returns whether it did.

    CPU training is already reproducible (torch's CPU kernels are deterministic for a fixed thread
    count), so nothing is changed there. On CUDA: ``torch.use_deterministic_algorithms(True)`` (an op
    without a deterministic kernel then raises, instead of silently breaking reproducibility),
    ``cudnn.deterministic = True``, ``cudnn.benchmark = False`` and ``CUBLAS_WORKSPACE_CONFIG`` (set
    here unless already in the environment; cuBLAS reads it when its first handle is created, so for
    processes that ran CUDA work before training, export it before starting them).
    """
    if not enabled or device.type != "cuda":
        return False
    current = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if current not in (":4096:8", ":16:8"):
        if current:
            log.warning("CUBLAS_WORKSPACE_CONFIG=%s is not deterministic; using %s", current, CUBLAS_DETERMINISTIC)
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_DETERMINISTIC
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    return True


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the message names the step."""


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def _diff_keys(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(a) | set(b)):
        name = f"{prefix}{k}"
        if name in RESUMABLE_CHANGES or k in RESUMABLE_CHANGES:
            continue
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += _diff_keys(va, vb, f"{name}.")
        elif va != vb:
            keys.append(name)
    return keys


class Trainer:
    def __init__(self, params: Params, features_dir: str | Path, stats_path: str | Path | None,
                 run_dir: str | Path, tracker: Tracker | None = None,
                 validation_hook: ValidationHook | None = None, progress: bool | None = None):
        self.params = params
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.jsonl = JsonlTracker(self.run_dir / "metrics.jsonl")
        self.tracker = CompositeTracker([self.jsonl, tracker])
        self.validation_hook = validation_hook
        self.progress = progress
        t = params.train
        if t.threads:
            torch.set_num_threads(t.threads)
        self.device = resolve_device(t.device)
        self.deterministic = configure_determinism(t.deterministic, self.device)
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
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t.precision == "fp16")
        self.step_fn = TrainStep(self.model, self.optimizer, self.scaler, self.diffusion, self.device, t.precision,
                                 compile=t.compile, cuda_graphs=t.cuda_graphs)
        self.resident = ResidentCrops(self.sampler, self.prior, self.hop, self.device) if t.features_on_device else None
        self.step = 0

    # ------------------------------------------------------------------ state
    def _state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "step": self.step, "params": self.params.to_dict(),
                "prior_stats": self.stats, "n_params": count_parameters(self.model)}

    def save(self) -> Path:
        if self.step in self.params.train.keep_steps:
            # Written before last.pt: a run killed in between redoes this step's save on resume.
            ckpt_io.save(kept_checkpoint(self.ckpt_dir, self.step), self._state())
        path = ckpt_io.save(self.ckpt_dir / ckpt_io.LAST, self._state())
        if self.params.train.keep_checkpoints > 0:
            ckpt_io.save(self.ckpt_dir / f"step-{self.step:08d}.pt", self._state())
            old = sorted(self.ckpt_dir.glob("step-*.pt"))[:-self.params.train.keep_checkpoints]
            for p in old:
                p.unlink()
        return path

    def try_resume(self) -> bool:
        path = self.ckpt_dir / ckpt_io.LAST
        if not path.exists():
            return False
        ckpt = ckpt_io.load(path, map_location=self.device)
        core = ("audio", "prior", "model", "diffusion", "train")
        changed = _diff_keys({k: ckpt["params"].get(k) for k in core}, {k: self.params.to_dict()[k] for k in core})
        if changed:
            raise ValueError(f"{path}: this run directory holds a checkpoint trained with other params "
                             f"(differs in {', '.join(changed)}); use a new --run-dir or the same params")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.params.train.cuda_graphs:
            make_capturable(self.optimizer, self.device)
        self.scaler.load_state_dict(ckpt["scaler"])
        self.step = int(ckpt["step"])
        self.jsonl.truncate_after(self.step)
        log.info("resumed %s at step %d", path, self.step)
        return True

    # ------------------------------------------------------------------ steps
    def _autocast(self) -> contextlib.AbstractContextManager:
        p = self.params.train.precision
        if p == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if p == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def train_step(self) -> float:
        t = self.params.train
        if self.resident is not None:
            audio_t, mel_t, prior = self.resident.batch(self.step)
        else:
            audio, mel = self.sampler.batch(self.step)
            prior = self.prior.condition(mel, self.hop, audio.shape[-1], self.device)
            audio_t, mel_t = torch.from_numpy(audio).to(self.device), torch.from_numpy(mel).to(self.device)
        steps, noise = self.diffusion.draw_training_noise(audio_t, _step_generator(t.seed, self.step))

        def check(value: float) -> None:
            if not np.isfinite(value):
                raise TrainingDiverged(f"training loss is {value} at step {self.step + 1} "
                                       f"(run {self.run_dir}); lower train.learning_rate or check the features")

        value = self.step_fn(audio_t, mel_t, prior, steps, noise, check)
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
            with self._autocast():
                losses.append(float(self.diffusion.training_loss(
                    lambda x, c, s: self.model(x, c, s, sigma_of(prior)), audio, mel, prior, g)))
        for start in range(0, len(self.valid), 8):
            chunk = self.valid[start:start + 8]
            with self._autocast():
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

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict[str, Any]:
        t = self.params.train
        resumed = self.try_resume()
        n_params = count_parameters(self.model)
        if not resumed:
            write_text_atomic(self.run_dir / "params.yaml", yaml.safe_dump(self.params.to_dict(), sort_keys=False))
            self.tracker.log_params({"n_params": n_params, "params_hash": params_hash(self.params),
                                     **_flatten(self.params.to_dict())})
        if self.step == 0 and t.max_steps >= 0:
            self.tracker.log_metrics(self.validate(), step=0)
        show = show_progress(self.progress)
        bar = tqdm(total=t.max_steps, initial=self.step, desc=f"train {self.run_dir.name}", unit="step",
                   disable=not show)
        t0, s0, loss_acc, n_acc = time.perf_counter(), self.step, 0.0, 0
        try:
            while self.step < t.max_steps:
                loss_acc += self.train_step()
                n_acc += 1
                bar.update(1)
                if self.step % t.log_every == 0:
                    elapsed = time.perf_counter() - t0
                    rate = (self.step - s0) / elapsed if elapsed > 0 else 0.0
                    self.tracker.log_metrics({"train/loss": loss_acc / n_acc, "train/steps_per_s": rate}, self.step)
                    bar.set_postfix(loss=f"{loss_acc / n_acc:.4f}")
                    loss_acc, n_acc = 0.0, 0
                kept = self.step in t.keep_steps  # a budget rung: validated and checkpointed there
                if self.step % t.validate_every == 0 or self.step == t.max_steps or kept:
                    metrics = self.validate()
                    self.tracker.log_metrics(metrics, self.step)
                    bar.set_postfix(ls_mae=f"{metrics['valid/ls_mae']:.3f}")
                if self.step % t.checkpoint_every == 0 or self.step == t.max_steps or kept:
                    self.save()
        finally:
            bar.close()
        if not (self.ckpt_dir / ckpt_io.LAST).exists():
            self.save()  # max_steps == 0: still leave a checkpoint of the initial model
        last_valid = {}
        for rec in self.jsonl.records():
            last_valid.update({k: v for k, v in rec.items() if k.startswith("valid/")})
        kept_ckpts = {str(k): str(kept_checkpoint(self.ckpt_dir, k)) for k in sorted(t.keep_steps)
                      if 0 < k <= self.step and kept_checkpoint(self.ckpt_dir, k).exists()}
        result = {"step": self.step, "checkpoint": str(self.ckpt_dir / ckpt_io.LAST), "n_params": n_params,
                  "params_hash": params_hash(self.params), "kept_checkpoints": kept_ckpts, **last_valid}
        write_json_atomic(self.run_dir / "result.json", result)
        return result


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def train(params: Params, features_dir: str | Path, stats_path: str | Path | None, run_dir: str | Path,
          tracker: Tracker | None = None, validation_hook: ValidationHook | None = None,
          progress: bool | None = None) -> dict[str, Any]:
    """Train (or resume) to params.train.max_steps; returns the final step, checkpoint and validation metrics."""
    return Trainer(params, features_dir, stats_path, run_dir, tracker, validation_hook, progress).fit()
