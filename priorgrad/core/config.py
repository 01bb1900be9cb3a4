"""params.yaml -> typed, validated configuration.

params.yaml (with the profile overlay it names, see priorgrad.core.schema) is the only place a value is
set: the dataclasses below declare each key's type and meaning, never its value. A missing key, an
unknown key and a value of the wrong type are errors naming the key, so a deleted or misspelt key can
never fall back to a hidden default. Sections owned by other packages (sweep, evaluate, report, ...)
are kept raw here and validated by their owners with the same ``build_section``.
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

from priorgrad.core import registry
from priorgrad.core.audio import PRESETS
from priorgrad.core.schema import PROFILE_KEY, ConfigError, build_section, read_params

__all__ = ["ConfigError", "Params", "load_params", "params_hash"]


@dataclass
class AudioConfig:
    preset: str                      # mel front-end preset: hifigan | diffwave
    sample_rate: int                 # Hz; must equal the preset's rate
    allow_resample: bool             # resample files at another rate (soxr HQ) instead of rejecting them


@dataclass
class CorpusConfig:
    source: str                      # "synthetic" (eSpeak NG, made locally) or a path to an LJSpeech-layout dir
    n_utterances: int                # synthetic corpus size
    seed: int                        # synthetic corpus seed
    n_valid: int                     # validation utterances (official LJSpeech split: 5)
    n_test: int                      # test utterances (official LJSpeech split: 95)
    split_seed: int                  # seed of the deterministic train/valid/test split
    official_split: str              # auto | yes | no: official LJSpeech lists when the corpus is full LJSpeech


# the SpecGrad filter's gain normalisation (priorgrad/vocoder/specgrad.py): none = the front-end's STFT magnitude
# units (the public implementations); psd = divided by the front-end's white-noise magnitude, so |m|^2 is
# the speech's power spectral density and the noise's power follows the speech's frame by frame
SPECGRAD_GAINS = ("none", "psd")


@dataclass
class SpecGradConfig:
    lifter_order: int                # r: cepstral coefficients kept (quefrencies |q| < r)
    mel_floor: float                 # clamp of the pseudo-inverse mel amplitude before the log (front-end units)
    gain: str                        # none | psd (SPECGRAD_GAINS)
    floor: float                     # added to |m| after the gain: |m| >= floor, so 1/m <= 1/floor
    n_fft: int                       # the filter STFT's FFT size (hop = the preset's; frames = mel frames)
    win_length: int                  # its Hann window length (<= n_fft, > hop)
    min_phase: bool                  # minimum-phase filter (true) or zero phase (the ablation)


def check_specgrad(s: SpecGradConfig, source: str = "params") -> None:
    """Value checks of prior.specgrad (types are build_section's); each failure names the key.

    Kept here, torch-free, so that load_params rejects a bad value before any stage runs; the builder in
    priorgrad/vocoder/specgrad.py calls it too."""
    k = "prior.specgrad"
    _require(s.lifter_order >= 1, source, f"{k}.lifter_order", f"{s.lifter_order} must be >= 1")
    _require(s.mel_floor > 0, source, f"{k}.mel_floor", f"{s.mel_floor} must be > 0 (the log of the envelope)")
    _require(s.gain in SPECGRAD_GAINS, source, f"{k}.gain", f"{s.gain!r} not one of {list(SPECGRAD_GAINS)}")
    _require(s.floor > 0, source, f"{k}.floor", f"{s.floor} must be > 0 (whitening divides by m)")
    _require(s.n_fft >= 2 and s.n_fft % 2 == 0, source, f"{k}.n_fft", f"{s.n_fft} must be an even number >= 2")
    _require(1 <= s.win_length <= s.n_fft, source, f"{k}.win_length",
             f"{s.win_length} must be in [1, n_fft ({s.n_fft})]")


@dataclass
class PriorConfig:
    type: str                        # a prior of priorgrad.core.registry: energy (PriorGrad) | standard (DiffWave)
    std_min: float                   # floor of sigma
    max_energy: float | str | None   # E_max override (frame energy clipped to it); null = dataset E_max;
    #                                  "preset" = the audio preset's tuned value (hifigan 4.0, diffwave null)
    condition_on_sigma: bool         # ablation: feed sigma to the network as an extra conditioning channel
    specgrad: SpecGradConfig         # the SpecGrad filtered-noise prior's options (used when type is specgrad)


@dataclass
class ModelConfig:
    residual_layers: int             # L
    residual_channels: int           # C
    dilation_cycle: int              # dilation 2^(i mod cycle)
    upsample_factors: list[int]      # product must equal hop_length
    fused_gate: bool                 # sigmoid*tanh gate as one compiled kernel (same maths; speed only)


@dataclass
class DiffusionConfig:
    num_steps: int                   # training T
    beta_start: float
    beta_end: float
    loss: str                        # l2 (PriorGrad's Sigma^-1-weighted MSE; plain MSE when sigma = 1) | l1


@dataclass
class TrainConfig:
    batch_size: int
    learning_rate: float             # Adam, constant
    crop_frames: int                 # random crop in mel frames
    max_steps: int
    seed: int
    precision: str                   # fp32 | bf16 | fp16 (fp16 uses a grad scaler)
    device: str                      # auto (cuda if present) | cpu | cuda | cuda:N
    threads: int                     # torch intra-op threads on CPU; 0 = torch's default
    validate_every: int              # steps between validations (also at step 0)
    valid_utterances: int            # size of the fixed validation subset
    valid_max_frames: int            # crop each validation utterance to this many frames; 0 = full length
    valid_infer_steps: int           # inference schedule of the validation synthesis (6, 12, 50 or any S)
    checkpoint_every: int            # steps between checkpoints (also written at the end)
    log_every: int                   # steps between training-loss logs
    keep_checkpoints: int            # step-numbered checkpoints kept besides last.pt
    keep_steps: list[int]            # steps whose checkpoints are always kept (the sweep's budget ladder)
    features_on_device: bool         # all training audio/mel/sigma resident on train.device; crops gathered there
    compile: bool                    # torch.compile the model for the training step
    cuda_graphs: bool                # capture the whole training step in one CUDA graph (CUDA only)
    crop: str                        # official (sample offset, mel recomputed on the crop, epoch shuffle) | frames
    deterministic: bool              # CUDA deterministic algorithms (bit-identical resume on one GPU model)


@dataclass
class InferConfig:
    steps: int                       # inference schedule: 6, 12 (fast schedules), 50 (training) or any S
    batch_size: int                  # utterances per batch
    seed: int                        # per-utterance seeds derive from this and the utterance id
    device: str


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
                  "acoustic", "acoustic_sizes",  # acoustic: validated by priorgrad/acoustic
                  "acoustic_sweep",     # experiments/spec.py (the acoustic family descriptor)
                  "acoustic_evaluate",  # experiments/acoustic_eval_config.py
                  "acoustic_report")    # reports/config.py


@dataclass
class Params:
    profile: str                     # the profile overlay params.yaml names (recorded, not re-applied)
    audio: AudioConfig
    corpus: CorpusConfig
    prior: PriorConfig
    model: ModelConfig
    diffusion: DiffusionConfig
    train: TrainConfig
    infer: InferConfig
    extra: dict[str, Any] = field(default_factory=dict)  # raw sections of other packages (not a default value)

    @property
    def hop_length(self) -> int:
        return PRESETS[self.audio.preset].hop_length

    @property
    def n_mels(self) -> int:
        return PRESETS[self.audio.preset].n_mels

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {PROFILE_KEY: self.profile}
        d.update({name: dataclasses.asdict(getattr(self, name)) for name in CORE_SECTIONS})
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
                kwargs[key] = build_section(CORE_SECTIONS[key], value, f"{source}: {key}")
            elif key in EXTRA_SECTIONS:
                extra[key] = copy.deepcopy(value)
            elif key != PROFILE_KEY:
                raise ConfigError(f"{source}: unknown section {key!r} "
                                  f"(known: {sorted([PROFILE_KEY, *CORE_SECTIONS, *EXTRA_SECTIONS])})")
        # Other packages' sections are required in params files (load_params), not in a checkpoint's copy.
        missing = [k for k in (PROFILE_KEY, *CORE_SECTIONS) if k not in d]
        if missing:
            raise ConfigError(f"{source}: missing section(s) {missing}")
        if not isinstance(d[PROFILE_KEY], str):
            raise ConfigError(f"{source}: {PROFILE_KEY}: expected a profile name, got {d[PROFILE_KEY]!r}")
        params = cls(profile=d[PROFILE_KEY], **kwargs, extra=extra)
        validate(params, source)
        return params


def _require(cond: bool, source: str, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{source}: {key}: {msg}")


def validate(p: Params, source: str = "params") -> None:
    """Invariants across keys; each failure names the key."""
    _require(p.audio.preset in PRESETS, source, "audio.preset", f"{p.audio.preset!r} not in {sorted(PRESETS)}")
    preset = PRESETS[p.audio.preset]
    _require(p.audio.sample_rate == preset.sample_rate, source, "audio.sample_rate",
             f"{p.audio.sample_rate} != the {preset.name} preset's {preset.sample_rate} Hz")
    vocoder_priors = registry.prior_names("vocoder")
    _require(p.prior.type in vocoder_priors, source, "prior.type",
             f"{p.prior.type!r} is not a registered vocoder prior ({vocoder_priors})")
    _require(0.0 < p.prior.std_min <= 1.0, source, "prior.std_min", f"{p.prior.std_min} must be in (0, 1]")
    me = p.prior.max_energy
    _require(me is None or me == "preset" or (isinstance(me, float) and me > 0), source,
             "prior.max_energy", f"{p.prior.max_energy} must be positive, null or 'preset'")
    check_specgrad(p.prior.specgrad, source)
    _require(p.prior.specgrad.lifter_order <= preset.n_fft // 2, source, "prior.specgrad.lifter_order",
             f"{p.prior.specgrad.lifter_order} exceeds half the front-end's FFT size ({preset.n_fft // 2})")
    _require(p.prior.specgrad.win_length > preset.hop_length, source, "prior.specgrad.win_length",
             f"{p.prior.specgrad.win_length} must exceed the hop ({preset.hop_length}) so windows cover every sample")
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
    _require(t.crop in ("official", "frames"), source, "train.crop", f"{t.crop!r} not official|frames")
    _require(t.valid_utterances >= 1, source, "train.valid_utterances", "must be >= 1")
    _require(t.valid_max_frames >= 0, source, "train.valid_max_frames", "must be >= 0")
    _require(t.threads >= 0, source, "train.threads", "must be >= 0")
    _require(t.keep_checkpoints >= 0, source, "train.keep_checkpoints", "must be >= 0")
    _require(all(k >= 0 for k in t.keep_steps), source, "train.keep_steps", f"{t.keep_steps}: steps must be >= 0")
    _require(not (t.cuda_graphs and t.precision == "fp16"), source, "train.cuda_graphs",
             "cannot be combined with train.precision fp16 (the fp16 grad scaler synchronises with the host "
             "every step); use bf16 or fp32")
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


def load_raw(path: str | Path = "params.yaml", overrides: dict[str, Any] | list[str] | None = None) -> dict[str, Any]:
    """params.yaml as a dict: its profile overlay applied, then ``overrides`` ({"train.max_steps": 10} or
    ["train.max_steps=10"]); a ``profile`` override picks the overlay. Every section's loader starts here."""
    items = list(overrides.items() if isinstance(overrides, dict) else map(_parse_override, overrides or []))
    profile = [v for k, v in items if k == PROFILE_KEY]
    raw = read_params(path, profile=str(profile[-1]) if profile else None)
    for k, v in items:
        if k != PROFILE_KEY:
            _set_dotted(raw, k, v)
    return raw


def load_params(path: str | Path = "params.yaml", overrides: dict[str, Any] | list[str] | None = None) -> Params:
    """Load and validate params.yaml with its profile overlay and command-line overrides (``load_raw``)."""
    raw = load_raw(path, overrides)
    missing = [k for k in EXTRA_SECTIONS if k not in raw]
    if missing:
        raise ConfigError(f"{path}: missing section(s) {missing}")
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
