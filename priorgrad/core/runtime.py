"""The training runtime both model families share (family-neutral: it imports no family module).

A family (the vocoder's ``priorgrad.vocoder.train.Trainer``, the acoustic model's
``priorgrad.acoustic.train.AcousticTrainer``) subclasses ``FamilyTrainer`` and supplies what only it knows:
building its model and optimiser (in its ``__init__``), one training step, validation, and its part of a
checkpoint. The runtime owns everything around them, once for both:

- the fit loop: train-loss logging, validation and checkpoint cadence, the progress bar, result.json;
- the budget ladder: every step of ``keep_steps`` is validated and kept as ``kept-<step>.pt``;
- checkpoints: atomic, with ``keep_checkpoints`` rotation; resume from ``last.pt`` with a settings diff
  (each family names the keys a resumed run may change);
- seeded per-step randomness (``step_generator(seed, step)``) and the NaN stop (``TrainingDiverged``);
- precision (``autocast``, the fp16 grad scaler), ``torch.compile``, determinism and device choice.

Re-running the same command resumes. Everything random in step k derives from (seed, k), so a resumed run
ends with bit-identical weights to an uninterrupted one:

- CPU: always (same machine, same torch build, same ``threads``).
- CUDA: only with ``deterministic: true`` (deterministic algorithms, cuDNN autotuning off,
  ``CUBLAS_WORKSPACE_CONFIG=:4096:8``), on the same GPU model, driver, CUDA and torch versions. Without
  it cuDNN/cuBLAS may pick other kernels or reduction orders, and a resumed run drifts by rounding.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Protocol

import numpy as np
import torch
import yaml
from tqdm import tqdm

from priorgrad.core import checkpoint as ckpt_io
from priorgrad.core.fileio import write_json_atomic, write_text_atomic
from priorgrad.core.logs import show_progress
from priorgrad.core.schema import PRECISIONS
from priorgrad.core.tracking import CompositeTracker, JsonlTracker, Tracker

log = logging.getLogger(__name__)

CUBLAS_DETERMINISTIC = ":4096:8"  # the cuBLAS workspace setting torch requires for deterministic CUDA


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the message names the step and the run."""


class RuntimeSettings(Protocol):
    """The training settings the runtime reads (both families' train sections have them)."""
    max_steps: int
    seed: int
    device: str
    threads: int
    precision: str
    compile: bool
    deterministic: bool
    log_every: int
    validate_every: int
    checkpoint_every: int
    keep_checkpoints: int
    keep_steps: list[int]


# ---------------------------------------------------------------------- device, determinism, precision
def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available on this machine")
    return torch.device(name)


def configure_determinism(enabled: bool, device: torch.device) -> bool:
    """``deterministic``: on CUDA, make every kernel choice reproducible; returns whether it did.

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


def autocast(device: torch.device, precision: str, cache_enabled: bool = True) -> contextlib.AbstractContextManager:
    """The mixed-precision context of ``precision``: none for fp32 (the default path stays untouched)."""
    if precision not in PRECISIONS:  # the configs check it; a direct caller's typo must not mean fp16
        raise ValueError(f"precision {precision!r} not in {PRECISIONS}")
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype, cache_enabled=cache_enabled)


def make_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """fp16 needs loss scaling (its range underflows small gradients); disabled, the scaler is a no-op."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def compile_model(model: Callable, backend: str = "inductor", mode: str | None = None) -> Callable:
    """torch.compile(model) for the training step; the uncompiled module keeps the weights (and checkpoints)."""
    log.info("compiling the model (backend %s); the first step takes longer", backend)
    return torch.compile(model, backend=backend, mode=mode)


def scaled_update(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                  clip_params: Iterable[torch.nn.Parameter] = (), grad_clip: float = 0.0) -> None:
    """Backward and optimiser step through the scaler (a no-op scaler for fp32/bf16: plain backward and step).

    Gradients are unscaled before clipping, so ``grad_clip`` bounds the true gradient norm under fp16 too.
    """
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(clip_params, grad_clip)
    scaler.step(optimizer)
    scaler.update()


# ---------------------------------------------------------------------- seeds, checkpoints, settings
def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of step ``step``'s random draws: a function of (seed, step) alone, so resume is exact."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def kept_checkpoint(ckpt_dir: str | Path, step: int) -> Path:
    """The checkpoint kept at a step of keep_steps (a rung of the sweep's budget ladder)."""
    return Path(ckpt_dir) / f"kept-{step:08d}.pt"


def diff_keys(a: dict[str, Any], b: dict[str, Any], resumable: frozenset[str] | set[str] = frozenset(),
              prefix: str = "") -> list[str]:
    """Dotted names of the keys whose values differ, leaving out ``resumable`` ones (and everything below them)."""
    keys = []
    for k in sorted(set(a) | set(b)):
        name = f"{prefix}{k}"
        if name in resumable:
            continue
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += diff_keys(va, vb, resumable, f"{name}.")
        elif va != vb:
            keys.append(name)
    return keys


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1} (trackers take flat parameters)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------- the runtime
class FamilyTrainer(ABC):
    """The training runtime; a model family subclasses it and fills in the abstract part.

    The family's ``__init__`` calls ``super().__init__(settings, ...)`` first (run directory, trackers,
    threads, device, determinism), then builds its data, model (``self.model``), optimiser and scaler.
    ``self.step`` is the number of steps done; ``train_step`` advances it by one.
    """

    label: ClassVar[str] = "train"               # progress-bar prefix
    resumable: ClassVar[frozenset[str]] = frozenset()  # dotted keys of resume_view() a resumed run may change
    headline: ClassVar[str] = "valid/loss"        # the validation metric the progress bar shows
    diverge_hint: ClassVar[str] = "lower the learning rate or check the features"
    model: torch.nn.Module

    def __init__(self, settings: RuntimeSettings, run_dir: str | Path, tracker: Tracker | None = None,
                 progress: bool | None = None):
        self.settings = settings
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.jsonl = JsonlTracker(self.run_dir / "metrics.jsonl")
        self.tracker = CompositeTracker([self.jsonl, tracker])
        self.progress = progress
        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.device = resolve_device(settings.device)
        self.deterministic = configure_determinism(settings.deterministic, self.device)
        self.step = 0

    # ------------------------------------------------------------------ what a family supplies
    @abstractmethod
    def config(self) -> dict[str, Any]:
        """The resolved config as a plain dict: written beside the run and carried by every checkpoint."""

    @abstractmethod
    def params_hash(self) -> str:
        """Short hash of the config (a tracked parameter of the run)."""

    @abstractmethod
    def train_step(self) -> float | dict[str, float]:
        """One optimisation step (step ``self.step + 1``), then ``self.step += 1``.

        Returns the loss, or named terms including ``train/loss`` (each logged as its mean)."""

    @abstractmethod
    def validate(self) -> dict[str, float]:
        """Validation metrics (keys ``valid/...``), with the model back in training mode afterwards."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """The family's part of a checkpoint (model, optimiser, scaler, what rebuilding the model needs)."""

    @abstractmethod
    def load_state(self, ckpt: dict[str, Any]) -> None:
        """Restore the model, optimiser and scaler from a checkpoint of this run."""

    def resume_view(self, params: dict[str, Any]) -> dict[str, Any]:
        """The part of a config that must match for a resume (default: all of it)."""
        return params

    def resume_mismatch(self, ckpt: dict[str, Any]) -> list[str]:
        """What else, beyond the config, makes a checkpoint not this run's (names of the differences)."""
        return []

    def result_extra(self) -> dict[str, Any]:
        """Family fields of result.json (after n_params)."""
        return {}

    # ------------------------------------------------------------------ shared pieces of a step
    def check_finite(self, value: float, detail: str = "") -> None:
        """The NaN stop: raises TrainingDiverged naming the step being taken and the run."""
        if not np.isfinite(value):
            raise TrainingDiverged(f"training loss is {value} at step {self.step + 1} ({detail}run "
                                   f"{self.run_dir}); {self.diverge_hint}")

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.device, self.settings.precision)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> dict[str, Any]:
        return {**self.state(), "step": self.step, "params": self.config(),
                "n_params": count_parameters(self.model)}

    def save(self) -> Path:
        t, state = self.settings, self.checkpoint()
        if self.step in t.keep_steps:
            # a rung of the budget ladder; written before last.pt: a run killed in between redoes this
            # step's save on resume
            ckpt_io.save(kept_checkpoint(self.ckpt_dir, self.step), state)
        path = ckpt_io.save(self.ckpt_dir / ckpt_io.LAST, state)
        if t.keep_checkpoints > 0:
            ckpt_io.save(self.ckpt_dir / f"step-{self.step:08d}.pt", state)
            for p in sorted(self.ckpt_dir.glob("step-*.pt"))[:-t.keep_checkpoints]:
                p.unlink()
        return path

    def try_resume(self) -> bool:
        path = self.ckpt_dir / ckpt_io.LAST
        if not path.exists():
            return False
        ckpt = ckpt_io.load(path, map_location=self.device)
        changed = diff_keys(self.resume_view(ckpt["params"]), self.resume_view(self.config()), self.resumable)
        changed += self.resume_mismatch(ckpt)
        if changed:
            raise ValueError(f"{path}: this run directory holds a checkpoint trained with other params "
                             f"(differs in {', '.join(changed)}); use a new --run-dir or the same params")
        self.load_state(ckpt)
        self.step = int(ckpt["step"])
        self.jsonl.truncate_after(self.step)
        log.info("resumed %s at step %d", path, self.step)
        return True

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, Any]:
        """Train (or resume) to max_steps; returns the final step, checkpoint and last validation metrics."""
        t = self.settings
        resumed = self.try_resume()
        n_params = count_parameters(self.model)
        if not resumed:
            cfg = self.config()
            write_text_atomic(self.run_dir / "params.yaml", yaml.safe_dump(cfg, sort_keys=False))
            self.tracker.log_params({"n_params": n_params, "params_hash": self.params_hash(), **flatten(cfg)})
        if self.step == 0 and t.max_steps >= 0:
            self.tracker.log_metrics(self.validate(), step=0)
        bar = tqdm(total=t.max_steps, initial=self.step, desc=f"{self.label} {self.run_dir.name}", unit="step",
                   disable=not show_progress(self.progress))
        try:
            self._loop(bar)
        finally:
            bar.close()
        if not (self.ckpt_dir / ckpt_io.LAST).exists():
            self.save()  # max_steps == 0: still leave a checkpoint of the initial model
        return self._write_result(n_params)

    def _loop(self, bar: tqdm) -> None:
        t = self.settings
        t0, s0, acc, n_acc = time.perf_counter(), self.step, {}, 0
        while self.step < t.max_steps:
            out = self.train_step()
            for k, v in (out if isinstance(out, dict) else {"train/loss": out}).items():
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
                bar.set_postfix(**{self.headline.split("/")[-1]: f"{metrics[self.headline]:.3f}"})
            if self.step % t.checkpoint_every == 0 or self.step == t.max_steps or kept:
                self.save()

    def _write_result(self, n_params: int) -> dict[str, Any]:
        last_valid: dict[str, Any] = {}
        for rec in self.jsonl.records():
            last_valid.update({k: v for k, v in rec.items() if k.startswith("valid/")})
        kept_ckpts = {str(k): str(kept_checkpoint(self.ckpt_dir, k)) for k in sorted(self.settings.keep_steps)
                      if 0 < k <= self.step and kept_checkpoint(self.ckpt_dir, k).exists()}
        result = {"step": self.step, "checkpoint": str(self.ckpt_dir / ckpt_io.LAST), "n_params": n_params,
                  **self.result_extra(), "kept_checkpoints": kept_ckpts, **last_valid}
        write_json_atomic(self.run_dir / "result.json", result)
        return result
