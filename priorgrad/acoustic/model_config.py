"""Typed, validated configuration of the acoustic model side: params.yaml sections acoustic.model,
acoustic.diffusion, acoustic.train, acoustic.infer and the top-level acoustic_sizes.

No dataclass here has defaults: every value comes from params.yaml (or a checkpoint's copy of it),
a missing key is an error naming it, an unknown key is an error naming it. The data side's
subsections (acoustic.text / features / prior) are validated by priorgrad/acoustic/data_config.py
and passed through untouched here.
"""
from __future__ import annotations

from pathlib import Path

import dataclasses
from dataclasses import dataclass
from typing import Any

from priorgrad.core import registry
from priorgrad.core.schema import PRECISIONS, ConfigError, build_section
from priorgrad.core.schema import require as _require

PRIOR_MODES = ("mean_std", "mean_only", "std_only")
SCHEDULES = ("strided", "official", "searched", "uniform", "betas")  # few-step protocols (+ uniform, betas)
CLIP_X0 = ("none", "data_range")
VOCODERS = ("griffin_lim", "priorgrad")
DATA_SECTIONS = ("text", "features", "prior")   # the data side's subsections of `acoustic:`


@dataclass
class SizeConfig:
    hidden: int            # H, encoder width
    predictor: int         # P, variance-predictor channels
    encoder_layers: int    # L_enc
    decoder_channels: int  # C
    decoder_layers: int    # L (dilation 1)


@dataclass
class AcousticModelConfig:
    size: str                 # a name from acoustic_sizes
    prior: str                # phoneme (PriorGrad) | standard (B1) | trainable (B2)
    prior_mode: str           # mean_std | mean_only | std_only (phoneme prior ablations)
    heads: int                # encoder attention heads
    ffn_kernel: int           # encoder conv-FFN kernel
    encoder_dropout: float
    duration_layers: int
    duration_kernel: int
    variance_layers: int      # pitch and energy predictors
    variance_kernel: int
    predictor_dropout: float
    pitch_embed_dropout: float
    max_positions: int        # sinusoidal table length (tokens and frames)


@dataclass
class AcousticDiffusionConfig:
    num_steps: int
    beta_start: float
    beta_end: float


@dataclass
class AcousticTrainConfig:
    batch_size: int
    window_frames: int        # diffusion loss on one random window per utterance; 0 = whole utterance
    lr_scale: float           # lr = scale * min(step / warmup, 1) * max(warmup, step)^-1/2 * H^-1/2
    warmup_steps: int
    adam_beta1: float
    adam_beta2: float
    weight_decay: float
    grad_clip: float          # max gradient norm; 0 = off
    max_steps: int
    seed: int
    device: str
    threads: int
    precision: str            # fp32 | bf16 | fp16: autocast of the training step and validation (fp16: grad scaler)
    compile: bool             # torch.compile the training step's forward passes (same maths)
    deterministic: bool       # CUDA only: deterministic kernels (priorgrad.core.runtime.configure_determinism)
    max_frames: int           # utterances longer than this are dropped from training (count logged)
    max_tokens: int
    validate_every: int
    valid_utterances: int
    valid_steps: int          # strided schedule of the validation sampling (E1)
    checkpoint_every: int
    log_every: int
    keep_checkpoints: int
    keep_steps: list[int]     # steps whose checkpoints are always kept (the sweep's budget ladder)


@dataclass
class AcousticInferConfig:
    schedule: str             # strided | official | searched | uniform | betas (the few-step protocol)
    clip_x0: str              # none | data_range (predicted x0 clipped to the training mels' per-bin range)
    steps: int                # S of a strided / uniform schedule
    betas: list[float]        # explicit inference betas (schedule: betas)
    batch_size: int
    seed: int
    device: str
    vocoder: str              # griffin_lim | priorgrad
    griffin_lim_iters: int
    vocoder_steps: int        # inference steps of a project vocoder checkpoint
    search_max_candidates: int  # cap of the grid search (0 = all candidates)


@dataclass
class AcousticConfig:
    model: AcousticModelConfig
    diffusion: AcousticDiffusionConfig
    train: AcousticTrainConfig
    infer: AcousticInferConfig
    sizes: dict[str, SizeConfig]
    raw: dict[str, Any]        # the validated sections as plain dicts (checkpoints carry them)

    @property
    def size(self) -> SizeConfig:
        return self.sizes[self.model.size]

    def to_dict(self) -> dict[str, Any]:
        return {"acoustic": {k: dataclasses.asdict(getattr(self, k))
                             for k in ("model", "diffusion", "train", "infer")},
                "acoustic_sizes": {k: dataclasses.asdict(v) for k, v in self.sizes.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "params") -> "AcousticConfig":
        """From a full params dict (params.yaml or a checkpoint's), reading acoustic: and acoustic_sizes:."""
        if "acoustic" not in d:
            raise ConfigError(f"{source}: missing section 'acoustic'")
        if "acoustic_sizes" not in d:
            raise ConfigError(f"{source}: missing section 'acoustic_sizes'")
        ac = d["acoustic"]
        if not isinstance(ac, dict):
            raise ConfigError(f"{source}: acoustic: must be a mapping")
        known = ("model", "diffusion", "train", "infer") + DATA_SECTIONS
        unknown = sorted(set(ac) - set(known))
        if unknown:
            raise ConfigError(f"{source}: acoustic: unknown subsection(s) {unknown} (known: {sorted(known)})")
        parts = {}
        for name, klass in (("model", AcousticModelConfig), ("diffusion", AcousticDiffusionConfig),
                            ("train", AcousticTrainConfig), ("infer", AcousticInferConfig)):
            if name not in ac:
                raise ConfigError(f"{source}: acoustic: missing subsection {name!r}")
            parts[name] = build_section(klass, ac[name], f"{source}: acoustic.{name}")
        raw_sizes = d["acoustic_sizes"]
        if not isinstance(raw_sizes, dict) or not raw_sizes:
            raise ConfigError(f"{source}: acoustic_sizes: must be a non-empty mapping of named sizes")
        sizes = {k: build_section(SizeConfig, v, f"{source}: acoustic_sizes.{k}") for k, v in raw_sizes.items()}
        cfg = cls(**parts, sizes=sizes, raw={})
        cfg.validate(source)
        cfg.raw = cfg.to_dict()
        return cfg

    def validate(self, source: str) -> None:
        m, dif, t, i = self.model, self.diffusion, self.train, self.infer
        w = f"{source}: acoustic"
        _require(m.size in self.sizes, f"{w}.model.size", f"{m.size!r} not in acoustic_sizes {sorted(self.sizes)}")
        priors = registry.prior_names("acoustic")  # read now: a test may register a prior
        _require(m.prior in priors, f"{w}.model.prior", f"{m.prior!r} not in {tuple(priors)}")
        _require(m.prior_mode in PRIOR_MODES, f"{w}.model.prior_mode", f"{m.prior_mode!r} not in {PRIOR_MODES}")
        for key in ("heads", "ffn_kernel", "duration_layers", "duration_kernel", "variance_layers",
                    "variance_kernel", "max_positions"):
            _require(getattr(m, key) >= 1, f"{w}.model.{key}", "must be >= 1")
        for key in ("ffn_kernel", "duration_kernel", "variance_kernel"):
            _require(getattr(m, key) % 2 == 1, f"{w}.model.{key}", "must be odd (same-length convolution)")
        for key in ("encoder_dropout", "predictor_dropout", "pitch_embed_dropout"):
            _require(0.0 <= getattr(m, key) < 1.0, f"{w}.model.{key}", "must be in [0, 1)")
        for name, s in self.sizes.items():
            for key in ("hidden", "predictor", "encoder_layers", "decoder_channels", "decoder_layers"):
                _require(getattr(s, key) >= 1, f"{source}: acoustic_sizes.{name}.{key}", "must be >= 1")
            _require(s.hidden % m.heads == 0, f"{source}: acoustic_sizes.{name}.hidden",
                     f"{s.hidden} must be divisible by acoustic.model.heads ({m.heads})")
        _require(dif.num_steps >= 2, f"{w}.diffusion.num_steps", "must be >= 2")
        _require(0 < dif.beta_start < dif.beta_end < 1, f"{w}.diffusion.beta_start/beta_end",
                 "need 0 < beta_start < beta_end < 1")
        for key in ("batch_size", "warmup_steps", "validate_every", "valid_utterances", "checkpoint_every",
                    "log_every", "max_frames", "max_tokens"):
            _require(getattr(t, key) >= 1, f"{w}.train.{key}", "must be >= 1")
        for key in ("window_frames", "max_steps", "threads", "keep_checkpoints"):
            _require(getattr(t, key) >= 0, f"{w}.train.{key}", "must be >= 0")
        _require(all(k >= 1 for k in t.keep_steps), f"{w}.train.keep_steps", "every step must be >= 1")
        _require(t.precision in PRECISIONS, f"{w}.train.precision", f"{t.precision!r} not in {PRECISIONS}")
        _require(t.lr_scale > 0, f"{w}.train.lr_scale", "must be > 0")
        _require(0 <= t.adam_beta1 < 1 and 0 <= t.adam_beta2 < 1, f"{w}.train.adam_beta1/2", "must be in [0, 1)")
        _require(t.weight_decay >= 0 and t.grad_clip >= 0, f"{w}.train.weight_decay/grad_clip", "must be >= 0")
        _require(2 <= t.valid_steps <= dif.num_steps, f"{w}.train.valid_steps", f"must be in 2..{dif.num_steps}")
        _require(i.schedule in SCHEDULES, f"{w}.infer.schedule", f"{i.schedule!r} not in {SCHEDULES}")
        _require(i.schedule not in ("official", "searched") or t.valid_steps in (6, dif.num_steps)
                 and (i.schedule == "official" or t.valid_steps == dif.num_steps), f"{w}.train.valid_steps",
                 f"validation under schedule {i.schedule!r} needs valid_steps = "
                 f"{'6 or ' if i.schedule == 'official' else ''}{dif.num_steps} (the full schedule)")
        _require(i.clip_x0 in CLIP_X0, f"{w}.infer.clip_x0", f"{i.clip_x0!r} not in {CLIP_X0}")
        _require(i.schedule != "official" or i.steps in (6, dif.num_steps), f"{w}.infer.steps",
                 f"schedule 'official' has betas for 6 steps only (or the full {dif.num_steps}), got {i.steps}")
        _require(2 <= i.steps <= dif.num_steps, f"{w}.infer.steps", f"must be in 2..{dif.num_steps}")
        _require(i.schedule != "betas" or len(i.betas) >= 1, f"{w}.infer.betas", "schedule: betas needs a list")
        _require(i.vocoder in VOCODERS, f"{w}.infer.vocoder", f"{i.vocoder!r} not in {VOCODERS}")
        for key in ("batch_size", "griffin_lim_iters", "vocoder_steps"):
            _require(getattr(i, key) >= 1, f"{w}.infer.{key}", "must be >= 1")
        _require(i.search_max_candidates >= 0, f"{w}.infer.search_max_candidates", "must be >= 0")
        for where, dev in ((f"{w}.train.device", t.device), (f"{w}.infer.device", i.device)):
            _require(dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit()), where,
                     f"{dev!r} not auto|cpu|cuda|cuda:N")


def load_acoustic_config(path: str = "params.yaml", overrides: list[str] | dict[str, Any] | None = None
                         ) -> AcousticConfig:
    """params.yaml (+ key=value overrides) -> AcousticConfig; errors name the file and key."""
    from priorgrad.core.config import load_raw

    p = Path(path)
    raw = load_raw(p, overrides)
    return AcousticConfig.from_dict(raw, source=str(p))
