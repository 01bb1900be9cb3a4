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
from priorgrad.core.config import Params
from priorgrad.core.schema import ConfigError, build_section

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
# (nor the time-aligned audio metrics) is defined for it. It is not a mel condition of ``conditions``; the
# stage synthesises it apart (``e3_t_infer``) and scores it with the length-free metrics below.
E3 = "E3"
UNSCORED_CONDITIONS = (E3,)

# E3's duration metrics (computed by the stage from the predicted and the reference durations per phoneme):
# name -> (higher is better, unit, description). The total length ratio has no direction (1 is best, both
# sides are wrong), so its distance |ln ratio| is what is judged, as gv_dist for gv_ratio.
DURATION_METRICS: dict[str, tuple[bool, str, str]] = {
    "dur_mae_ms": (False, "ms", "mean over phonemes of |predicted - reference duration| (frames x hop / rate)"),
    "len_dist": (False, "|ln ratio|", "|ln(total predicted frames / total reference frames)| of the utterance "
                 "(0 = the recording's length; e^x - 1 is the relative length error)"),
}
# eval metrics E3 may score: the WORLD metrics eval aligns by DTW (``--align dtw``), and the reference-free
# ones (the recogniser's WER / CER against the corpus text, DNSMOS). The sample-aligned metrics (PESQ, STOI,
# MR-STFT, LS-MAE) need files of the reference's length, which predicted durations do not give.
E3_DTW_METRICS = ("mcd", "f0_rmse", "vuv_error")


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
    e3_t_infer: int               # sampling steps of condition E3 (0 = no E3), at each run's largest budget only
    e3_metrics: list[str]         # eval package keys scored on E3's vocoded audio (DTW / reference-free)
    e3_floor_metrics: list[str]   # of e3_metrics, those the floors (prior draws) are scored on (the primary's gate)
    e3_recording_metrics: list[str]  # reference-free eval keys the recordings' E3 words are scored with (kind recording)
    e3_max_frames: int            # E3's scored audio: the first whole words within this many reference frames (0 = all)
    e3_against_recording: bool    # also score e3's DTW metrics against the recording ('@rec')


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
            raise ConfigError(f"{_key('conditions')}: {c} (predicted durations) is not a mel condition: its mels "
                              f"differ in length from the ground truth, so mel L1/CD, the variance ratio and the "
                              f"time-aligned audio metrics are undefined; use "
                              f"{[x for x in ACOUSTIC_CONDITIONS if x not in UNSCORED_CONDITIONS]} here and set "
                              f"{SECTION}.e3_t_infer to score E3 with the length-free metrics (e3_metrics)")
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
    if cfg.e3_t_infer != 0 and cfg.e3_t_infer < 2:
        raise ConfigError(f"{_key('e3_t_infer')}: the sampling steps of E3 must be >= 2 (or 0: no E3), got "
                          f"{cfg.e3_t_infer}")
    for m in _check_list(cfg, "e3_metrics", allow_empty=True):
        if m not in METRICS:
            raise ConfigError(f"{_key('e3_metrics')}: unknown eval metric {m!r} (known: {sorted(METRICS)})")
        if METRICS[m].needs_reference and m not in E3_DTW_METRICS:
            raise ConfigError(f"{_key('e3_metrics')}: {m} needs files of the reference's length (sample-aligned), "
                              f"which E3's predicted durations do not give; E3 takes the DTW-aligned "
                              f"{list(E3_DTW_METRICS)} and reference-free metrics (wer, cer, dnsmos_*)")
    bad = [m for m in _check_list(cfg, "e3_floor_metrics", allow_empty=True) if m not in cfg.e3_metrics]
    if bad:
        raise ConfigError(f"{_key('e3_floor_metrics')}: {bad} not in {SECTION}.e3_metrics {cfg.e3_metrics}")
    for m in _check_list(cfg, "e3_recording_metrics", allow_empty=True):
        if m not in METRICS or METRICS[m].needs_reference:
            raise ConfigError(f"{_key('e3_recording_metrics')}: {m!r} is not a reference-free eval metric (the "
                              f"recordings are scored on what needs no reference audio: wer, cer, dnsmos_*)")
    if cfg.e3_max_frames < 0:
        raise ConfigError(f"{_key('e3_max_frames')}: must be >= 0, got {cfg.e3_max_frames}")
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
    return out + e3_metric_names(cfg)


def e3_metric_names(cfg: AcousticEvaluateConfig) -> list[str]:
    """E3's qualified metrics (none when e3_t_infer is 0): duration error, then the eval metrics."""
    if not cfg.e3_t_infer:
        return []
    return [qualified_metric(E3, m) for m in DURATION_METRICS] + \
        [qualified_metric(E3, m, r) for m in cfg.e3_metrics for r in e3_references(cfg, m)] + \
        [qualified_metric(E3, m) for m in cfg.e3_recording_metrics if m not in cfg.e3_metrics]


def e3_references(cfg: AcousticEvaluateConfig, metric: str) -> tuple[str, ...]:
    """E3's references of an eval metric: vocoder(GT mel), and the recording with e3_against_recording."""
    return tuple(r for r in references(metric) if r == "" or cfg.e3_against_recording)


def metric_info(name: str) -> dict[str, Any]:
    """Direction, unit and description of a qualified (or plain) acoustic metric name."""
    condition, base, reference = split_metric(name)
    if base in MEL_METRICS:
        fn, higher, unit, desc = MEL_METRICS[base]
        return {"higher_is_better": higher, "unit": unit, "description": desc, "implementation": fn,
                "version": "1", "condition": condition, "reference": "ground-truth mel"}
    if base in DURATION_METRICS:
        higher, unit, desc = DURATION_METRICS[base]
        return {"higher_is_better": higher, "unit": unit, "description": desc,
                "implementation": "experiments.acoustic_synthesis:duration_scores", "version": "1",
                "condition": condition, "reference": "the ground-truth durations (the features' alignment)"}
    from eval.registry import METRICS

    if base not in METRICS:
        raise ValueError(f"unknown acoustic metric {name!r} (mel: {sorted(MEL_METRICS)}; duration: "
                         f"{sorted(DURATION_METRICS)}; audio: eval/registry.py)")
    m = METRICS[base]
    desc = m.description
    if condition == E3 and base in E3_DTW_METRICS:
        desc += " (whole utterances, on the DTW path: eval --align dtw)"
    if not m.needs_reference:
        ref = "the corpus text" if m.needs_text else "none (reference-free)"
    else:
        ref = "the recording" if reference == "rec" else "vocoder(ground-truth mel)"
    return {"higher_is_better": m.higher_is_better, "unit": m.unit, "description": desc,
            "implementation": m.implementation, "version": m.version, "condition": condition, "reference": ref}


def higher_is_better(names: list[str]) -> dict[str, bool]:
    return {n: bool(metric_info(n)["higher_is_better"]) for n in names}


def mlflow_name(metric: str) -> str:
    """A metric name MLflow accepts as part of a key ('@' is not allowed): 'E1/pesq_wb@rec' -> 'E1/pesq_wb_at_rec'."""
    from eval.aggregate import mlflow_key  # the one rule, shared with the comparison tags (mlflow_tags)

    return mlflow_key(metric)
