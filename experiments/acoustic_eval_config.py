"""params.yaml ``acoustic_evaluate:`` (the acoustic evaluate stage) and the acoustic side's metric names.

Torch-free, so the report can import the metric table (directions, units) without the model code.
Metric names are qualified (eval.contract.qualified_metric): "E1/mel_l1", "E1/pesq_wb" (vocoded,
against the same vocoder run on the ground-truth mel: the primary reference) and "E1/pesq_wb@rec"
(vocoded, against the recording).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from eval.contract import ACOUSTIC_CONDITIONS, qualified_metric, split_metric
from priorgrad.config import Params
from priorgrad.schema import ConfigError, build_section

SECTION = "acoustic_evaluate"

# The mel-domain metrics of spec section 11 (priorgrad/acoustic/metrics_mel.py): name -> (function,
# higher is better, unit, description). gv_ratio is 1 for as much variation as the recording; below 1 is
# an over-smoothed mel (what L1 rewards), so "higher is better" holds up to 1. A sampler that overshoots
# (ratio > 1) would be misread by that direction: gv_dist = |ln gv_ratio| is the same information as a distance
# (lower is better either way), the one to judge on; gv_ratio stays as the spec's diagnostic.
MEL_METRICS: dict[str, tuple[str, bool, str, str]] = {
    "mel_l1": ("priorgrad.acoustic.metrics_mel:mel_l1", False, "ln mel",
               "mean |gen - gt| over bins and frames (the official validation metric)"),
    "mel_cd": ("priorgrad.acoustic.metrics_mel:mel_cd", False, "dB",
               "mel cepstral distance: (10/ln10) sqrt(2 sum_{d=1..24} (c_d - c'_d)^2), c = DCT-II of the ln-mel"),
    "gv_ratio": ("priorgrad.acoustic.metrics_mel:gv_ratio", True, "ratio",
                 "mean over bins of var_frames(gen) / var_frames(gt) (1 = the recording's variation)"),
    "gv_dist": ("experiments.acoustic_eval_config:gv_dist", False, "|ln ratio|",
                "|ln gv_ratio|: 0 = the recording's variation; over- and under-smoothing both count"),
}


def gv_dist(gen: Any, gt: Any) -> float:
    """|ln gv_ratio|: the variance ratio as a distance with a direction (lower is better) in both cases."""
    import math

    from priorgrad.acoustic.metrics_mel import gv_ratio

    r = gv_ratio(gen, gt)
    return abs(math.log(r)) if r > 0 else float("inf")


def mel_metric_function(name: str) -> Callable[[Any, Any], float]:
    module, _, func = MEL_METRICS[name][0].partition(":")
    return getattr(importlib.import_module(module), func)


# E3 predicts durations, so its mels differ in length from the ground truth: none of the metrics above
# (nor the time-aligned audio metrics) is defined for it.
UNSCORED_CONDITIONS = ("E3",)


@dataclass
class AcousticEvaluateConfig:
    conditions: list[str]         # synthesis conditions scored in the mel domain (E1, E2)
    audio_conditions: list[str]   # of those, the ones vocoded and scored with the eval package
    t_infer: list[int]            # sampling steps (strided schedules of acoustic.infer.schedule)
    mel_metrics: list[str]        # MEL_METRICS keys
    audio_metrics: list[str]      # eval package keys (eval/registry.py)
    n_utterances: int             # first N test utterances (0 = all)
    max_frames: int               # scored / vocoded crop (frames; 0 = whole utterance)
    n_audio_examples: int         # test utterances kept as wav examples per set


@dataclass
class ScoringSettings:
    """What experiments.scoring needs (from evaluate:, shared with the vocoder's stage)."""
    metrics: list[str]
    workers: int
    bootstrap_seed: int
    n_boot: int


def _key(name: str) -> str:
    return f"params: {SECTION}.{name}"


def _check_list(cfg: AcousticEvaluateConfig, name: str, allow_empty: bool = False) -> list:
    value = getattr(cfg, name)
    if not value and not allow_empty:
        raise ConfigError(f"{_key(name)}: expected a non-empty list")
    if len(set(value)) != len(value):
        raise ConfigError(f"{_key(name)}: duplicate entries in {value!r}")
    return value


def acoustic_evaluate_config(params: Params) -> AcousticEvaluateConfig:
    """The validated section; every error names the key."""
    raw = params.extra.get(SECTION)
    if raw is None:
        raise ConfigError(f"params: missing section {SECTION!r}")
    cfg = build_section(AcousticEvaluateConfig, raw, f"params: {SECTION}")
    for c in _check_list(cfg, "conditions"):
        if c in UNSCORED_CONDITIONS:
            raise ConfigError(f"{_key('conditions')}: {c} (predicted durations) is not evaluated by this stage: its "
                              f"mels differ in length from the ground truth, so mel L1/CD, the variance ratio and "
                              f"the time-aligned audio metrics are undefined; use {[x for x in ACOUSTIC_CONDITIONS if x not in UNSCORED_CONDITIONS]}")
        if c not in ACOUSTIC_CONDITIONS:
            raise ConfigError(f"{_key('conditions')}: unknown condition {c!r} (known: {list(ACOUSTIC_CONDITIONS)})")
    bad = [c for c in _check_list(cfg, "audio_conditions", allow_empty=True) if c not in cfg.conditions]
    if bad:
        raise ConfigError(f"{_key('audio_conditions')}: {bad} not in {SECTION}.conditions {cfg.conditions}")
    if any(isinstance(t, bool) or not isinstance(t, int) or t < 2 for t in _check_list(cfg, "t_infer")):
        raise ConfigError(f"{_key('t_infer')}: every schedule length must be an integer >= 2, got {cfg.t_infer}")
    bad = [m for m in _check_list(cfg, "mel_metrics") if m not in MEL_METRICS]
    if bad:
        raise ConfigError(f"{_key('mel_metrics')}: unknown mel metric(s) {bad} (known: {sorted(MEL_METRICS)})")
    from eval.registry import METRICS

    bad = [m for m in _check_list(cfg, "audio_metrics", allow_empty=not cfg.audio_conditions) if m not in METRICS]
    if bad:
        raise ConfigError(f"{_key('audio_metrics')}: unknown eval metric(s) {bad} (known: {sorted(METRICS)})")
    for name in ("n_utterances", "max_frames", "n_audio_examples"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{_key(name)}: must be >= 0, got {getattr(cfg, name)}")
    return cfg


def scoring_settings(params: Params, cfg: AcousticEvaluateConfig) -> ScoringSettings:
    """The audio metrics with evaluate:'s workers and bootstrap settings (validated there)."""
    from experiments.spec import evaluate_config

    e = evaluate_config(params)
    return ScoringSettings(list(cfg.audio_metrics), e.workers, e.bootstrap_seed, e.n_boot)


def references(metric: str) -> tuple[str, ...]:
    """The references an audio metric is scored against: vocoder(GT mel) and the recording, or none."""
    from eval.registry import METRICS

    return ("", "rec") if METRICS[metric].needs_reference else ("",)


def metric_names(cfg: AcousticEvaluateConfig) -> list[str]:
    """Every qualified metric the stage writes, in table order (per condition: mel, then audio metrics)."""
    out = []
    for c in cfg.conditions:
        out += [qualified_metric(c, m) for m in cfg.mel_metrics]
        if c in cfg.audio_conditions:
            out += [qualified_metric(c, m, r) for m in cfg.audio_metrics for r in references(m)]
    return out


def metric_info(name: str) -> dict[str, Any]:
    """Direction, unit and description of a qualified (or plain) acoustic metric name."""
    condition, base, reference = split_metric(name)
    if base in MEL_METRICS:
        fn, higher, unit, desc = MEL_METRICS[base]
        return {"higher_is_better": higher, "unit": unit, "description": desc, "implementation": fn,
                "version": "1", "condition": condition, "reference": "ground-truth mel"}
    from eval.registry import METRICS

    if base not in METRICS:
        raise ValueError(f"unknown acoustic metric {name!r} (mel: {sorted(MEL_METRICS)}; audio: eval/registry.py)")
    m = METRICS[base]
    return {"higher_is_better": m.higher_is_better, "unit": m.unit, "description": m.description,
            "implementation": m.implementation, "version": m.version, "condition": condition,
            "reference": "the recording" if reference == "rec" else "vocoder(ground-truth mel)"}


def higher_is_better(names: list[str]) -> dict[str, bool]:
    return {n: bool(metric_info(n)["higher_is_better"]) for n in names}


def mlflow_name(metric: str) -> str:
    """A metric name MLflow accepts as part of a key ('@' is not allowed): 'E1/pesq_wb@rec' -> 'E1/pesq_wb_at_rec'."""
    return metric.replace("@", "_at_")
