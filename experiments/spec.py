"""The pipeline's own params sections (sweep, tracking, evaluate, sizes): validation and trial expansion.

`priorgrad.core.config` keeps these sections as raw dicts (``Params.extra``); they are checked here, with
errors that name the key, so a typo never falls back silently to a default.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from priorgrad.core import registry
from priorgrad.core.config import Params, params_hash
from priorgrad.core.schema import ConfigError, build_section

# Core sections that decide what a trial trains: a change in any of them gives a new trial directory,
# so a stale checkpoint is never resumed under new settings. Thread count and device are left out:
# they change speed, not the result.
TRAINING_SECTIONS = ("audio", "corpus", "prior", "model", "diffusion", "train")
SIZE_KEYS = ("residual_layers", "residual_channels", "dilation_cycle")
# The keys each trial sets from sweep: and sizes: (params.yaml marks them "(per trial)").
TRIAL_KEYS = ("prior.type", "train.seed", "train.max_steps", "train.keep_steps",
              *(f"model.{k}" for k in SIZE_KEYS))
# Speed-only options (priorgrad.vocoder.fast_train, model.fused_gate): same maths up to rounding, so, like the
# thread count and device, they do not make a new trial (and a trial may resume with them switched).
SPEED_ONLY_TRAIN = ("features_on_device", "compile", "cuda_graphs")
SPEED_ONLY_MODEL = ("fused_gate",)


@dataclass
class SweepConfig:
    name: str
    backend: str
    priors: list[str]
    sizes: list[str]
    seeds: list[int]
    budgets: list[int]
    validation_metrics: list[str]
    cpus_per_trial: float
    gpus_per_trial: float
    max_concurrent_trials: int
    max_failures: int
    num_cpus: int
    ray_address: str | None


@dataclass
class TrackingConfig:
    enabled: bool
    uri: str | None
    experiment_prefix: str
    n_audio_samples: int
    timeout_s: float


@dataclass
class EvaluateConfig:
    t_infer: list[int]
    metrics: list[str]
    n_utterances: int
    max_frames: int
    n_audio_examples: int
    workers: int
    bootstrap_seed: int
    n_boot: int


def _section(cls: type, raw: Any, name: str) -> Any:
    cfg = build_section(cls, raw, f"params: {name}")
    for f in dataclasses.fields(cls):
        value = getattr(cfg, f.name)
        if isinstance(value, list):
            if not value:
                raise ConfigError(f"params: {name}.{f.name}: expected a non-empty list")
            if len(set(value)) != len(value):
                raise ConfigError(f"params: {name}.{f.name}: duplicate entries in {value!r}")
    return cfg


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
    known_priors = registry.prior_names("vocoder")
    bad = [p for p in s.priors if p not in known_priors]
    if bad:
        raise ConfigError(f"params: sweep.priors: {bad} not registered vocoder priors ({known_priors})")
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
    """One training run of the sweep: a prior, a named size and a seed, trained to the largest budget.

    The budgets of sweep.budgets are checkpoints of this one run (train.keep_steps), not separate runs:
    a shorter budget's model is a prefix of the longer run, so retraining it would only cost time.
    """

    name: str
    prior: str
    size: str
    seed: int
    budgets: list[int]
    overrides: dict[str, Any]
    params_hash: str
    family: str  # "vocoder" or "acoustic" (priorgrad.core.registry.FAMILIES): which trainer runs it

    @property
    def budget(self) -> int:
        return max(self.budgets)

    @property
    def system(self) -> str:
        return registry.system_of(self.prior, self.family)

    @property
    def dirname(self) -> str:
        # The hash keeps trials of different settings (and code) apart, so a resumed run never mixes them.
        return f"{self.name}-{self.params_hash}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Trial":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


def trial_params(params: Params, overrides: dict[str, Any]) -> Params:
    """The base params with a trial's dotted overrides applied (validated again by the core).

    Keys may be nested ("acoustic.model.prior"); each must already exist, so a typo cannot add one."""
    d = params.to_dict()
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        cur = d
        for k in parents:
            cur = cur[k]
        if key not in cur:
            raise ConfigError(f"trial override {dotted}: not a key of params.yaml")
        cur[key] = copy.deepcopy(value)
    return Params.from_dict(d, source=f"trial overrides {overrides}")


def prior_section_for_hash(prior: dict[str, Any]) -> dict[str, Any]:
    """The ``prior`` section as the trial's training identity sees it: a prior's own options subsection
    (``prior.<name>``, e.g. ``prior.specgrad``) counts only for that prior, and the keys its registry entry
    ``ignores`` (SpecGrad: std_min, max_energy) not at all, so changing one prior's options retrains only
    the trials that read them (DiffWave's and PriorGrad's hashes stay what they were before SpecGrad)."""
    name = prior["type"]
    ignores = set(registry.prior(name, "vocoder").ignores)
    return {k: v for k, v in prior.items()
            if k not in ignores and not (isinstance(v, dict) and k != name and k in registry.prior_names("vocoder"))}


def training_hash(params: Params) -> str:
    """Identity of a trial's result: its training settings and the code that trains it."""
    from priorgrad.core.fingerprint import training_fingerprint

    d = params.to_dict()
    d["train"] = {k: v for k, v in d["train"].items() if k not in ("threads", "device") + SPEED_ONLY_TRAIN}
    d["model"] = {k: v for k, v in d["model"].items() if k not in SPEED_ONLY_MODEL}
    d["prior"] = prior_section_for_hash(d["prior"])
    d = {k: d.get(k) for k in TRAINING_SECTIONS}
    d["code"] = training_fingerprint()
    return params_hash(d)


def expand_trials(params: Params) -> list[Trial]:
    """prior x size x seed, in a stable order (sizes outermost, priors innermost); each to the top budget."""
    s = sweep_config(params)
    sizes = sizes_of(params)
    budgets = sorted(s.budgets)
    trials = []
    for size, seed, prior in itertools.product(s.sizes, s.seeds, s.priors):
        overrides: dict[str, Any] = {"prior.type": prior, "train.seed": seed, "train.max_steps": budgets[-1],
                                     "train.keep_steps": budgets}
        overrides.update({f"model.{k}": v for k, v in sizes[size].items()})
        assert set(overrides) == set(TRIAL_KEYS), "TRIAL_KEYS must list every per-trial key"
        tp = trial_params(params, overrides)
        name = f"{registry.system_of(prior)}-{size}-s{seed}"
        trials.append(Trial(name, prior, size, seed, budgets, overrides, training_hash(tp), "vocoder"))
    return trials


def sweep_id(name: str, trials: list[Trial]) -> str:
    """Identifies one sweep: its name and its trials' settings. Names the MLflow and the Tune experiments."""
    return params_hash({"name": name, "trials": sorted(t.dirname for t in trials)})


def project_root(start: Path | None = None) -> Path:
    """The directory holding dvc.yaml / params.yaml (DVC runs stages there)."""
    p = (start or Path.cwd()).resolve()
    for cand in (p, *p.parents):
        if (cand / "dvc.yaml").exists() or (cand / "params.yaml").exists():
            return cand
    return p
