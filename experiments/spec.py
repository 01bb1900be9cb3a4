"""The pipeline's own params sections (sweep, tracking, evaluate, sizes): validation and trial expansion.

`priorgrad.config` keeps these sections as raw dicts (``Params.extra``); they are checked here, with
errors that name the key, so a typo never falls back silently to a default.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from priorgrad.config import ConfigError, Params, params_hash

# Core sections that decide what a trial trains: a change in any of them gives a new trial directory,
# so a stale checkpoint is never resumed under new settings. Thread count and device are left out:
# they change speed, not the result.
TRAINING_SECTIONS = ("audio", "corpus", "prior", "model", "diffusion", "train")
SYSTEM_OF_PRIOR = {"energy": "priorgrad", "standard": "diffwave"}
SIZE_KEYS = ("residual_layers", "residual_channels", "dilation_cycle")
# Speed-only options (priorgrad.fast_train, model.fused_gate): same maths up to rounding, so, like the
# thread count and device, they do not make a new trial (and a trial may resume with them switched).
SPEED_ONLY_TRAIN = ("features_on_device", "compile", "cuda_graphs")
SPEED_ONLY_MODEL = ("fused_gate",)


@dataclass
class SweepConfig:
    name: str = "default"
    backend: str = "ray"
    priors: list[str] = field(default_factory=lambda: ["standard", "energy"])
    sizes: list[str] = field(default_factory=lambda: ["tiny"])
    seeds: list[int] = field(default_factory=lambda: [0])
    budgets: list[int] = field(default_factory=lambda: [1000])
    validation_metrics: list[str] = field(default_factory=lambda: ["mrstft"])
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent_trials: int = 2
    max_failures: int = 1
    num_cpus: int = 0
    ray_address: str | None = None


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str | None = None
    experiment_prefix: str = "priorgrad-bench"
    n_audio_samples: int = 2
    timeout_s: float = 5.0


@dataclass
class EvaluateConfig:
    t_infer: list[int] = field(default_factory=lambda: [6, 12, 50])
    metrics: list[str] = field(default_factory=lambda: ["ls_mae", "mrstft", "pesq_wb", "stoi"])
    n_utterances: int = 0
    max_frames: int = 0
    n_audio_examples: int = 3
    workers: int = 2
    bootstrap_seed: int = 0
    n_boot: int = 2000


def _typed(value: Any, default: Any, key: str) -> Any:
    """Check one value against the type of its default; the error names the key."""
    if default is None or key.endswith("ray_address") or key.endswith(".uri"):
        if value is None:
            return None
        if not isinstance(value, str):
            raise ConfigError(f"params: {key}: expected a string or null, got {value!r}")
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"params: {key}: expected true/false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"params: {key}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"params: {key}: expected a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"params: {key}: expected a non-empty string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list) or not value:
            raise ConfigError(f"params: {key}: expected a non-empty list, got {value!r}")
        kind = type(default[0]) if default else str
        for x in value:
            if isinstance(x, bool) or not isinstance(x, kind):
                raise ConfigError(f"params: {key}: every entry must be {kind.__name__}, got {x!r}")
        if len(set(value)) != len(value):
            raise ConfigError(f"params: {key}: duplicate entries in {value!r}")
        return list(value)
    return value


def _section(cls: type, raw: Any, name: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"params: {name}: must be a mapping, got {type(raw).__name__}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ConfigError(f"params: {name}: unknown key(s) {unknown} (known: {sorted(fields)})")
    defaults = cls()
    return cls(**{k: _typed(v, getattr(defaults, k), f"{name}.{k}") for k, v in raw.items()})


def sizes_of(params: Params) -> dict[str, dict[str, int]]:
    raw = params.extra.get("sizes")
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("params: sizes: must be a mapping of size name -> {residual_layers, residual_channels, "
                          "dilation_cycle}")
    out: dict[str, dict[str, int]] = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"params: sizes.{name}: must be a mapping, got {spec!r}")
        unknown = sorted(set(spec) - set(SIZE_KEYS))
        missing = sorted(set(SIZE_KEYS) - set(spec))
        if unknown or missing:
            raise ConfigError(f"params: sizes.{name}: unknown {unknown} / missing {missing} keys (need {list(SIZE_KEYS)})")
        for k, v in spec.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"params: sizes.{name}.{k}: expected a positive integer, got {v!r}")
        out[str(name)] = dict(spec)
    return out


def sweep_config(params: Params) -> SweepConfig:
    s = _section(SweepConfig, params.extra.get("sweep"), "sweep")
    if s.backend not in ("ray", "sequential"):
        raise ConfigError(f"params: sweep.backend: {s.backend!r} must be 'ray' or 'sequential'")
    bad = [p for p in s.priors if p not in SYSTEM_OF_PRIOR]
    if bad:
        raise ConfigError(f"params: sweep.priors: {bad} not in {sorted(SYSTEM_OF_PRIOR)}")
    known = sizes_of(params)
    bad = [z for z in s.sizes if z not in known]
    if bad:
        raise ConfigError(f"params: sweep.sizes: {bad} not defined under sizes: (known: {sorted(known)})")
    if any(b < 1 for b in s.budgets):
        raise ConfigError(f"params: sweep.budgets: every budget must be >= 1 training step, got {s.budgets}")
    if s.cpus_per_trial <= 0:
        raise ConfigError(f"params: sweep.cpus_per_trial: must be > 0, got {s.cpus_per_trial}")
    if s.gpus_per_trial < 0:
        raise ConfigError(f"params: sweep.gpus_per_trial: must be >= 0, got {s.gpus_per_trial}")
    if s.max_concurrent_trials < 1:
        raise ConfigError(f"params: sweep.max_concurrent_trials: must be >= 1, got {s.max_concurrent_trials}")
    if s.max_failures < -1:
        raise ConfigError(f"params: sweep.max_failures: must be >= -1 (-1 = retry forever), got {s.max_failures}")
    if s.num_cpus < 0:
        raise ConfigError(f"params: sweep.num_cpus: must be >= 0 (0 = all cores), got {s.num_cpus}")
    if not s.name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"params: sweep.name: {s.name!r} may hold letters, digits, - and _ only")
    _check_metric_names(s.validation_metrics, "sweep.validation_metrics")
    return s


def tracking_config(params: Params) -> TrackingConfig:
    t = _section(TrackingConfig, params.extra.get("tracking"), "tracking")
    if t.n_audio_samples < 0:
        raise ConfigError(f"params: tracking.n_audio_samples: must be >= 0, got {t.n_audio_samples}")
    if t.timeout_s <= 0:
        raise ConfigError(f"params: tracking.timeout_s: must be > 0, got {t.timeout_s}")
    return t


def evaluate_config(params: Params) -> EvaluateConfig:
    e = _section(EvaluateConfig, params.extra.get("evaluate"), "evaluate")
    if any(t < 1 for t in e.t_infer):
        raise ConfigError(f"params: evaluate.t_infer: every schedule length must be >= 1, got {e.t_infer}")
    for key in ("n_utterances", "max_frames", "n_audio_examples", "bootstrap_seed"):
        if getattr(e, key) < 0:
            raise ConfigError(f"params: evaluate.{key}: must be >= 0, got {getattr(e, key)}")
    if e.workers < 1:
        raise ConfigError(f"params: evaluate.workers: must be >= 1, got {e.workers}")
    if e.n_boot < 100:
        raise ConfigError(f"params: evaluate.n_boot: must be >= 100 bootstrap resamples, got {e.n_boot}")
    _check_metric_names(e.metrics, "evaluate.metrics")
    return e


def _check_metric_names(names: list[str], key: str) -> None:
    try:
        from eval.registry import METRICS
    except ImportError:  # eval not installed: the stage that scores will say so
        return
    bad = [m for m in names if m not in METRICS]
    if bad:
        raise ConfigError(f"params: {key}: unknown metric(s) {bad} (known: {sorted(METRICS)})")


@dataclass
class Trial:
    """One point of the sweep: a prior, a named size, a seed and a training-step budget."""

    name: str
    prior: str
    size: str
    seed: int
    budget: int
    overrides: dict[str, Any]
    params_hash: str

    @property
    def system(self) -> str:
        return SYSTEM_OF_PRIOR[self.prior]

    @property
    def dirname(self) -> str:
        # The hash keeps trials of different settings apart, so a resumed run never mixes them.
        return f"{self.name}-{self.params_hash}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Trial":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


def trial_params(params: Params, overrides: dict[str, Any]) -> Params:
    """The base params with a trial's dotted overrides applied (validated again by the core)."""
    d = params.to_dict()
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        d[section][key] = copy.deepcopy(value)
    return Params.from_dict(d, source=f"trial overrides {overrides}")


def training_hash(params: Params) -> str:
    d = params.to_dict()
    d["train"] = {k: v for k, v in d["train"].items() if k not in ("threads", "device") + SPEED_ONLY_TRAIN}
    d["model"] = {k: v for k, v in d["model"].items() if k not in SPEED_ONLY_MODEL}
    return params_hash(d, sections=TRAINING_SECTIONS)


def expand_trials(params: Params) -> list[Trial]:
    """prior x size x seed x budget, in a stable order (sizes and budgets outermost, priors innermost)."""
    s = sweep_config(params)
    sizes = sizes_of(params)
    trials = []
    for size, budget, seed, prior in itertools.product(s.sizes, s.budgets, s.seeds, s.priors):
        overrides: dict[str, Any] = {"prior.type": prior, "train.seed": seed, "train.max_steps": budget}
        overrides.update({f"model.{k}": v for k, v in sizes[size].items()})
        tp = trial_params(params, overrides)
        name = f"{SYSTEM_OF_PRIOR[prior]}-{size}-s{seed}-b{budget}"
        trials.append(Trial(name, prior, size, seed, budget, overrides, training_hash(tp)))
    return trials


def sweep_id(params: Params, trials: list[Trial]) -> str:
    """Identifies one sweep: its trials' settings. Names the MLflow experiment and the Tune experiment."""
    s = sweep_config(params)
    return params_hash({"name": s.name, "trials": sorted(t.dirname for t in trials)})


def project_root(start: Path | None = None) -> Path:
    """The directory holding dvc.yaml / params.yaml (DVC runs stages there)."""
    p = (start or Path.cwd()).resolve()
    for cand in (p, *p.parents):
        if (cand / "dvc.yaml").exists() or (cand / "params.yaml").exists():
            return cand
    return p
