"""params.yaml -> typed, validated configuration.

params.yaml is the single source of configuration. The dataclass defaults below are the spec's
(paper/official-code) values; params.yaml may override them for a CPU profile, and every override is
visible there. Unknown keys are rejected so that a typo never silently falls back to a default.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from priorgrad.audio import PRESETS


class ConfigError(ValueError):
    """Invalid configuration; the message names the key (and file when known)."""


@dataclass
class AudioConfig:
    preset: str = "hifigan"          # mel front-end preset: hifigan | diffwave
    sample_rate: int = 22050         # Hz; must equal the preset's rate
    allow_resample: bool = False     # resample files at another rate (soxr HQ) instead of rejecting them


@dataclass
class CorpusConfig:
    source: str = "synthetic"        # "synthetic" (eSpeak NG, made locally) or a path to an LJSpeech-layout dir
    n_utterances: int = 300          # synthetic corpus size
    seed: int = 0                    # synthetic corpus seed
    n_valid: int = 5                 # validation utterances (official LJSpeech split: 5)
    n_test: int = 95                 # test utterances (official LJSpeech split: 95)
    split_seed: int = 0              # seed of the deterministic train/valid/test split
    official_split: str = "auto"     # auto | yes | no: official LJSpeech lists when the corpus is full LJSpeech


@dataclass
class PriorConfig:
    type: str = "energy"             # energy (PriorGrad) | standard (DiffWave, N(0, I))
    std_min: float = 0.1             # floor of sigma
    max_energy: float | None = 4.0   # official override of E_max (frame energy clipped to it); null = dataset E_max
    condition_on_sigma: bool = False  # ablation: feed sigma to the network as an extra conditioning channel


@dataclass
class ModelConfig:
    residual_layers: int = 30        # L
    residual_channels: int = 64      # C
    dilation_cycle: int = 10         # dilation 2^(i mod cycle)
    upsample_factors: list[int] = field(default_factory=lambda: [16, 16])  # product must equal hop_length


@dataclass
class DiffusionConfig:
    num_steps: int = 50              # training T
    beta_start: float = 1e-4
    beta_end: float = 0.05
    loss: str = "l2"                 # l2 (PriorGrad's Sigma^-1-weighted MSE; plain MSE when sigma = 1) | l1


@dataclass
class TrainConfig:
    batch_size: int = 16
    learning_rate: float = 2e-4      # Adam, constant
    crop_frames: int = 62            # random crop in mel frames (62 x 256 = 15,872 samples)
    max_steps: int = 1_000_000
    seed: int = 0
    precision: str = "fp32"          # fp32 | bf16 | fp16 (fp16 uses a grad scaler)
    device: str = "auto"             # auto (cuda if present) | cpu | cuda | cuda:N
    threads: int = 0                 # torch intra-op threads on CPU; 0 = torch's default
    validate_every: int = 5000       # steps between validations (also at step 0)
    valid_utterances: int = 5        # size of the fixed validation subset
    valid_max_frames: int = 0        # crop each validation utterance to this many frames; 0 = full length
    valid_infer_steps: int = 6       # inference schedule of the validation synthesis (6, 12, 50 or any S)
    checkpoint_every: int = 5000     # steps between checkpoints (also written at the end)
    log_every: int = 100             # steps between training-loss logs
    keep_checkpoints: int = 1        # step-numbered checkpoints kept besides last.pt


@dataclass
class InferConfig:
    steps: int = 6                   # inference schedule: 6, 12 (fast schedules), 50 (training) or any S
    batch_size: int = 8              # utterances per batch
    seed: int = 0                    # per-utterance seeds derive from this and the utterance id
    device: str = "auto"


CORE_SECTIONS: dict[str, type] = {
    "audio": AudioConfig,
    "corpus": CorpusConfig,
    "prior": PriorConfig,
    "model": ModelConfig,
    "diffusion": DiffusionConfig,
    "train": TrainConfig,
    "infer": InferConfig,
}
# Sections owned by other packages (validated there); kept as raw dicts.
EXTRA_SECTIONS = ("sweep", "tracking", "evaluate", "report", "sizes",
                  "acoustic", "acoustic_sizes")  # acoustic: validated by priorgrad/acoustic


@dataclass
class Params:
    audio: AudioConfig = field(default_factory=AudioConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def hop_length(self) -> int:
        return PRESETS[self.audio.preset].hop_length

    @property
    def n_mels(self) -> int:
        return PRESETS[self.audio.preset].n_mels

    def to_dict(self) -> dict[str, Any]:
        d = {name: dataclasses.asdict(getattr(self, name)) for name in CORE_SECTIONS}
        d.update(copy.deepcopy(self.extra))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "params") -> "Params":
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: top level must be a mapping, got {type(d).__name__}")
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in d.items():
            if key in CORE_SECTIONS:
                kwargs[key] = _build_section(CORE_SECTIONS[key], value, f"{source}: {key}")
            elif key in EXTRA_SECTIONS:
                extra[key] = copy.deepcopy(value)
            else:
                raise ConfigError(f"{source}: unknown section {key!r} "
                                  f"(known: {sorted(list(CORE_SECTIONS) + list(EXTRA_SECTIONS))})")
        params = cls(**kwargs, extra=extra)
        validate(params, source)
        return params


def _build_section(cls: type, value: Any, where: str) -> Any:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a mapping, got {type(value).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} (known: {sorted(fields)})")
    out = {}
    defaults = cls()
    for name, v in value.items():
        out[name] = _coerce(v, getattr(defaults, name), f"{where}.{name}")
    return cls(**out)


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Type-check a value against its default's type (YAML gives int for 1 where float is meant)."""
    if value is None:
        if where.endswith(".max_energy"):
            return None
        raise ConfigError(f"{where}: must not be null")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float) or default is None:
        if isinstance(value, str):
            # PyYAML (YAML 1.1) reads "1e-3" as a string: accept numeric text for number keys
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ConfigError(f"{where}: must be finite, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in value):
            raise ConfigError(f"{where}: expected a list of integers, got {value!r}")
        return list(value)
    return value


def _require(cond: bool, source: str, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{source}: {key}: {msg}")


def validate(p: Params, source: str = "params") -> None:
    """Invariants across keys; each failure names the key."""
    _require(p.audio.preset in PRESETS, source, "audio.preset", f"{p.audio.preset!r} not in {sorted(PRESETS)}")
    preset = PRESETS[p.audio.preset]
    _require(p.audio.sample_rate == preset.sample_rate, source, "audio.sample_rate",
             f"{p.audio.sample_rate} != the {preset.name} preset's {preset.sample_rate} Hz")
    _require(p.prior.type in ("energy", "standard"), source, "prior.type",
             f"{p.prior.type!r} must be 'energy' (PriorGrad) or 'standard' (DiffWave)")
    _require(0.0 < p.prior.std_min <= 1.0, source, "prior.std_min", f"{p.prior.std_min} must be in (0, 1]")
    _require(p.prior.max_energy is None or p.prior.max_energy > 0, source, "prior.max_energy",
             f"{p.prior.max_energy} must be positive or null")
    m = p.model
    _require(m.residual_layers >= 1, source, "model.residual_layers", "must be >= 1")
    _require(m.residual_channels >= 1, source, "model.residual_channels", "must be >= 1")
    _require(m.dilation_cycle >= 1, source, "model.dilation_cycle", "must be >= 1")
    _require(len(m.upsample_factors) >= 1 and all(f >= 2 and f % 2 == 0 for f in m.upsample_factors), source,
             "model.upsample_factors", f"{m.upsample_factors}: each factor must be an even integer >= 2")
    _require(math.prod(m.upsample_factors) == preset.hop_length, source, "model.upsample_factors",
             f"{m.upsample_factors} multiply to {math.prod(m.upsample_factors)}, "
             f"but hop_length is {preset.hop_length}")
    d = p.diffusion
    _require(d.num_steps >= 2, source, "diffusion.num_steps", "must be >= 2")
    _require(0 < d.beta_start < d.beta_end < 1, source, "diffusion.beta_start/beta_end",
             f"need 0 < beta_start ({d.beta_start}) < beta_end ({d.beta_end}) < 1")
    _require(d.loss in ("l1", "l2"), source, "diffusion.loss", f"{d.loss!r} must be l1 or l2")
    t = p.train
    for key in ("batch_size", "crop_frames", "validate_every", "checkpoint_every", "log_every", "valid_infer_steps"):
        _require(getattr(t, key) >= 1, source, f"train.{key}", f"{getattr(t, key)} must be >= 1")
    _require(t.max_steps >= 0, source, "train.max_steps", "must be >= 0")
    _require(t.learning_rate > 0, source, "train.learning_rate", "must be > 0")
    _require(t.precision in ("fp32", "bf16", "fp16"), source, "train.precision", f"{t.precision!r} not fp32|bf16|fp16")
    _require(t.valid_utterances >= 1, source, "train.valid_utterances", "must be >= 1")
    _require(t.valid_max_frames >= 0, source, "train.valid_max_frames", "must be >= 0")
    _require(t.threads >= 0, source, "train.threads", "must be >= 0")
    _require(t.keep_checkpoints >= 0, source, "train.keep_checkpoints", "must be >= 0")
    _require(_valid_device(t.device), source, "train.device", f"{t.device!r} not auto|cpu|cuda|cuda:N")
    _require(_valid_device(p.infer.device), source, "infer.device", f"{p.infer.device!r} not auto|cpu|cuda|cuda:N")
    _require(p.infer.steps >= 1, source, "infer.steps", "must be >= 1")
    _require(p.infer.batch_size >= 1, source, "infer.batch_size", "must be >= 1")
    c = p.corpus
    _require(c.n_utterances >= 3, source, "corpus.n_utterances", "must be >= 3")
    _require(c.n_valid >= 1 and c.n_test >= 1, source, "corpus.n_valid/n_test", "must be >= 1")
    _require(c.official_split in ("auto", "yes", "no"), source, "corpus.official_split", "must be auto|yes|no")
    _require(c.source == "synthetic" or len(c.source) > 0, source, "corpus.source", "must be 'synthetic' or a path")


def _valid_device(dev: str) -> bool:
    if dev in ("auto", "cpu", "cuda"):
        return True
    return dev.startswith("cuda:") and dev[5:].isdigit()


def _set_dotted(d: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    cur = d
    for k in keys[:-1]:
        cur = cur.setdefault(k, {})
        if not isinstance(cur, dict):
            raise ConfigError(f"override {dotted}: {k} is not a section")
    cur[keys[-1]] = value


def load_params(path: str | Path = "params.yaml", overrides: dict[str, Any] | list[str] | None = None) -> Params:
    """Load and validate params.yaml; overrides are {"train.max_steps": 10} or ["train.max_steps=10"]."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: parameters file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({e})") from e
    if overrides:
        items = overrides.items() if isinstance(overrides, dict) else (_parse_override(o) for o in overrides)
        for k, v in items:
            _set_dotted(raw, k, v)
    return Params.from_dict(raw, source=str(path))


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value")
    k, v = text.split("=", 1)
    return k.strip(), yaml.safe_load(v)


def params_hash(params: Params | dict[str, Any], sections: tuple[str, ...] | None = None) -> str:
    """Short stable hash of (some sections of) the parameters: names runs and keys caches."""
    d = params.to_dict() if isinstance(params, Params) else params
    if sections is not None:
        d = {k: d.get(k) for k in sections}
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
