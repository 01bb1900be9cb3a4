"""Typed, validated configuration of the acoustic data side: params.yaml sections acoustic.text,
acoustic.features (with its acoustic.features.mas aligner subsection) and acoustic.prior.

No dataclass here has defaults: every value comes from params.yaml; a missing key is an error naming
it, an unknown key is an error naming it, a wrong type or range is an error naming it. The model
side's subsections of ``acoustic:`` (model, diffusion, train, infer) are validated elsewhere and
ignored here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from priorgrad.core.schema import ConfigError, build_section
from priorgrad.core.schema import require as _require

DURATION_SOURCES = ("auto", "espeak", "mas")
DATA_SECTIONS = ("text", "features", "prior")


@dataclass
class TextConfig:
    voice: str                # eSpeak NG voice of text-to-phonemes (the corpus's voice: en-us)


@dataclass
class MasConfig:
    steps: int                # aligner training steps (each: prior loss + MAS on a batch)
    batch_size: int           # utterances per aligner step
    hidden: int               # encoder width (channels)
    layers: int               # encoder conv layers
    kernel: int               # encoder conv kernel (tokens; odd)
    learning_rate: float      # Adam learning rate
    seed: int                 # seed of initialisation and batches
    threads: int              # torch CPU threads (0 = torch default)


@dataclass
class FeaturesConfig:
    durations: str            # espeak | mas | auto (espeak when the corpus has phoneme events, else mas)
    f0_floor: float           # pyworld dio lower f0 bound (Hz)
    f0_ceil: float            # pyworld dio upper f0 bound (Hz)
    mas: MasConfig


@dataclass
class PhonemePriorConfig:
    std_min: float            # floor of s (ln-mel units)
    std_max: float            # ceiling of s; -1 = no ceiling
    min_frames: int           # tokens with fewer train frames back off (stress-stripped name, then all frames); 0 = off


@dataclass
class AcousticDataConfig:
    text: TextConfig
    features: FeaturesConfig
    prior: PhonemePriorConfig

    def to_dict(self) -> dict[str, Any]:
        return {k: dataclasses.asdict(getattr(self, k)) for k in DATA_SECTIONS}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "params") -> "AcousticDataConfig":
        """From a full params dict (reads its ``acoustic:`` section's text / features / prior)."""
        if not isinstance(d, dict) or "acoustic" not in d:
            raise ConfigError(f"{source}: missing section 'acoustic'")
        ac = d["acoustic"]
        if not isinstance(ac, dict):
            raise ConfigError(f"{source}: acoustic: must be a mapping")
        parts = {}
        for name, klass in (("text", TextConfig), ("features", FeaturesConfig), ("prior", PhonemePriorConfig)):
            if name not in ac:
                raise ConfigError(f"{source}: acoustic: missing subsection {name!r}")
            parts[name] = build_section(klass, ac[name], f"{source}: acoustic.{name}")
        cfg = cls(**parts)
        cfg.validate(source)
        return cfg

    def validate(self, source: str) -> None:
        w = f"{source}: acoustic"
        f, m, p = self.features, self.features.mas, self.prior
        _require(bool(self.text.voice.strip()), f"{w}.text.voice", "must not be empty")
        _require(f.durations in DURATION_SOURCES, f"{w}.features.durations", f"{f.durations!r} not in {DURATION_SOURCES}")
        _require(0 < f.f0_floor < f.f0_ceil, f"{w}.features.f0_floor/f0_ceil", "need 0 < f0_floor < f0_ceil")
        for key in ("steps", "batch_size", "hidden", "layers", "kernel"):
            _require(getattr(m, key) >= 1, f"{w}.features.mas.{key}", "must be >= 1")
        _require(m.kernel % 2 == 1, f"{w}.features.mas.kernel", "must be odd (same-length convolution)")
        _require(m.learning_rate > 0, f"{w}.features.mas.learning_rate", "must be > 0")
        _require(m.threads >= 0, f"{w}.features.mas.threads", "must be >= 0")
        _require(p.std_min > 0, f"{w}.prior.std_min", "must be > 0")
        _require(p.std_max == -1 or p.std_max >= p.std_min, f"{w}.prior.std_max", "must be -1 (off) or >= std_min")
        _require(p.min_frames >= 0, f"{w}.prior.min_frames", "must be >= 0")


def load_data_config(path: str | Path = "params.yaml", overrides: list[str] | dict[str, Any] | None = None
                     ) -> AcousticDataConfig:
    """params.yaml (+ key=value overrides) -> AcousticDataConfig; errors name the file and key."""
    from priorgrad.core.config import load_raw

    p = Path(path)
    raw = load_raw(p, overrides)
    return AcousticDataConfig.from_dict(raw, source=str(p))
