"""The acoustic evaluate stage's audio scoring and rows: vocoding, one eval run over every vocoded set
against both references, E3's length-free scoring, then the scores.csv rows and each run's MLflow scores.

Reads and fills the ``Collected`` of experiments.acoustic_eval_jobs, in the stage's order.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from eval.contract import (KIND_MEAN_REFERENCE, KIND_PRIOR_NOISE, KIND_RECORDING, VOCODED_REFERENCE_AUDIO,
                           qualified_metric)
from experiments.acoustic_eval_config import (E3, E3_DTW_METRICS, AcousticEvaluateConfig, ScoringSettings,
                                              metric_info, mlflow_name, references)
from experiments.acoustic_eval_jobs import Collected, Context, Values
from experiments.eval_family import RunScores
from priorgrad.core import registry

log = logging.getLogger("experiments.acoustic_evaluate")

MEAN_REFERENCE_SET = "mean-reference"        # work/sets/: mu alone, vocoded
E3_REFERENCE_AUDIO = "reference-vocoded-E3"  # vocoder(GT mel of E3's scored words): E3's primary audio reference
E3_MEAN_REFERENCE_SET = f"{MEAN_REFERENCE_SET}-{E3}"
RECORDING = "recording"                      # E3's label of the whole recordings

Set = tuple[str, Path, Path]                 # (label, generated dir, reference dir)
E3Set = tuple[str, Path, list[str]]          # (label, wav dir, metrics)


def _audio_values(records: list[dict[str, Any]], condition: str, metrics: list[str], reference: str) -> Values:
    out: Values = {}
    for r in records:
        out[r["utt"]] = {qualified_metric(condition, m, reference): r.get(m) for m in metrics
                         if reference in references(m)}
    return out


def render(ctx: Context, acc: Collected) -> tuple[list[Set], list[E3Set]]:
    """Vocodes every queued set and the references (one process pool); returns the audio sets to score
    against both references and E3's sets (the floors: only the metrics their gate needs; the recordings:
    e3_recording_metrics)."""
    from experiments.acoustic_synthesis import mean_reference_e3

    cfg, test, sets_dir = ctx.cfg, ctx.test, ctx.run.work / "sets"
    if ctx.vocoder is None:
        return [], []
    ref_voc, mean_wav = sets_dir / VOCODED_REFERENCE_AUDIO, sets_dir / MEAN_REFERENCE_SET
    extra = [(VOCODED_REFERENCE_AUDIO, test.gt, ref_voc), (MEAN_REFERENCE_SET, test.mu, mean_wav)]
    if cfg.e3_t_infer:
        mean_e3 = mean_reference_e3(test, acc.ref_durs)
        extra += [(E3_REFERENCE_AUDIO, test.gt_e3, sets_dir / E3_REFERENCE_AUDIO),
                  (E3_MEAN_REFERENCE_SET, {u: test.crop_e3(u, mean_e3[u], acc.ref_durs[u]) for u in test.utts},
                   sets_dir / E3_MEAN_REFERENCE_SET)]
    rendered = ctx.vocoder.render_many(acc.to_render + extra)
    acc.voc_wall = sum(w for _, w, _ in rendered.values())  # the vocoder's RTF: every render behind the scores
    acc.voc_audio = sum(a for _, _, a in rendered.values())
    sets: list[Set] = []
    for (_, _, wav_dir) in acc.audio_jobs + acc.floor_audio:
        sets += [(wav_dir.name, wav_dir, ref_voc), (f"{wav_dir.name}@rec", wav_dir, test.recordings)]
    if cfg.audio_conditions:
        sets += [(MEAN_REFERENCE_SET, mean_wav, ref_voc), (f"{MEAN_REFERENCE_SET}@rec", mean_wav, test.recordings)]
    e3_sets: list[E3Set] = []
    if cfg.e3_t_infer:
        e3_sets = [(d.name, d, cfg.e3_metrics) for _, d in acc.e3_audio] + \
                  [(d.name, d, cfg.e3_floor_metrics) for _, d in acc.e3_floor_audio] + \
                  [(E3_MEAN_REFERENCE_SET, sets_dir / E3_MEAN_REFERENCE_SET, cfg.e3_metrics),
                   (RECORDING, test.recordings_e3, cfg.e3_recording_metrics)]
    return sets, e3_sets


def score_audio(ctx: Context, acc: Collected, sets: list[Set]) -> None:
    """One eval run over every vocoded set against both references; the values join the mel scores."""
    from experiments.scoring import score_sets

    cfg, scoring, test = ctx.cfg, ctx.settings.scoring, ctx.test
    if sets:
        log.info("scoring %d vocoded sets x %d utterances (%s)", len(sets), len(test.utts), ", ".join(scoring.metrics))
        records = score_sets(sets, test.utts, scoring, ctx.run.work)
    else:
        records = {}
    acc.per_job = {j: {u: dict(v) for u, v in mv.items()} for j, mv in acc.mel_vals.items()}
    both = (("", ""), ("rec", "@rec"))  # (reference, label suffix)
    for job, c, wav_dir in acc.audio_jobs:
        for ref, suffix in both:
            for u, vals in _audio_values(records[wav_dir.name + suffix], c, cfg.audio_metrics, ref).items():
                acc.per_job[job][u].update(vals)
    for fkey, c, wav_dir in acc.floor_audio:
        for ref, suffix in both:
            for u, vals in _audio_values(records[wav_dir.name + suffix], c, cfg.audio_metrics, ref).items():
                acc.floor_vals[fkey][u].update(vals)
    if sets:
        for c in cfg.audio_conditions:
            for ref, suffix in both:
                for u, vals in _audio_values(records[MEAN_REFERENCE_SET + suffix], c, cfg.audio_metrics,
                                             ref).items():
                    acc.ref_vals[u].update(vals)


def score_e3(sets: list[E3Set], test: Any, cfg: AcousticEvaluateConfig, scoring: ScoringSettings, ref_voc: Path,
             work: Path) -> dict[str, Values]:
    """{label: {utt: {qualified E3 metric: value}}} of E3's vocoded audio, each (label, wav dir, metrics) set
    scored on its own metrics: the DTW ones against vocoder(GT mel) and, with e3_against_recording, the
    recording ('@rec'); the reference-free ones (wer, cer against the corpus text; dnsmos) once. eval.pair's
    DTW alignment (``--align dtw``), never a re-implementation. One eval run per distinct metric list and
    reference, so a floor scored on the primary alone costs no recogniser time."""
    from eval.pair import parse_alignment
    from experiments.scoring import score_sets

    align = parse_alignment("dtw")
    out: dict[str, Values] = {label: {u: {} for u in test.utts} for label, _, _ in sets}
    runs: dict[tuple[tuple[str, ...], str], list[tuple[str, Path]]] = defaultdict(list)
    for label, d, metrics in sets:
        if metrics:
            runs[(tuple(metrics), "")].append((label, d))
        dtw = tuple(m for m in metrics if m in E3_DTW_METRICS)
        if dtw and cfg.e3_against_recording:
            runs[(dtw, "rec")].append((label, d))
    for i, ((metrics, ref), group) in enumerate(sorted(runs.items())):
        ref_dir = ref_voc if ref == "" else test.recordings_e3
        records = score_sets([(label, d, ref_dir) for label, d in group], test.utts,
                             ScoringSettings(list(metrics), scoring.workers, scoring.bootstrap_seed, scoring.n_boot),
                             work / f"e3-{i}", alignment=align, texts=test.texts)
        for label, _ in group:
            for u, v in _audio_values(records[label], E3, list(metrics), ref).items():
                out[label][u].update(v)
    return out


def score_e3_audio(ctx: Context, acc: Collected, e3_sets: list[E3Set]) -> None:
    """E3's vocoded runs, floors, mean reference and the whole recordings (kind recording), scored as E3 is."""
    cfg, test = ctx.cfg, ctx.test
    if not e3_sets:
        return
    t0 = time.perf_counter()
    e3_scores = score_e3(e3_sets, test, cfg, ctx.settings.scoring, ctx.run.work / "sets" / E3_REFERENCE_AUDIO,
                         ctx.run.work)
    log.info("E3: scored %d vocoded sets x %d utterances in %.1f s (%s; DTW-aligned: %s)", len(e3_sets),
             len(test.utts), time.perf_counter() - t0, ", ".join(cfg.e3_metrics),
             ", ".join(m for m in cfg.e3_metrics if m in E3_DTW_METRICS))
    for job, wav_dir in acc.e3_audio:
        for u, vals in e3_scores[wav_dir.name].items():
            acc.per_job[job][u].update(vals)
    for fkey, wav_dir in acc.e3_floor_audio:
        for u, vals in e3_scores[wav_dir.name].items():
            acc.floor_vals[fkey][u].update(vals)
    for u, vals in e3_scores[E3_MEAN_REFERENCE_SET].items():
        acc.ref_vals[u].update(vals)
    acc.rec_vals = e3_scores[RECORDING]
    # the recordings' own durations against themselves: 0 by construction, shown so the row is complete
    for u, ms in ctx.durations(test.durations).items():
        acc.rec_vals[u].update(ms)


def _rows(keys: dict[str, Any], per_utt: Values) -> list[dict[str, Any]]:
    return [{**keys, "utt": u, "metric": m, "value": v} for u, ms in per_utt.items() for m, v in ms.items()]


def merged_settings(acc: Collected) -> dict[tuple, Values]:
    """(trial, budget, T_infer) -> utt -> every score: the conditions of one setting share the row keys."""
    merged: dict[tuple, Values] = defaultdict(lambda: defaultdict(dict))
    for (trial_name, budget, t, _), per_utt in acc.per_job.items():
        for u, vals in per_utt.items():
            merged[(trial_name, budget, t)][u].update(vals)
    return merged


def score_rows(acc: Collected, merged: dict[tuple, Values]) -> list[dict[str, Any]]:
    """One row per (trial, budget, T, utterance, metric), then the floors, the mean reference and the recordings."""
    keys_of = {(j[0], j[1], j[2]): keys for j, keys in acc.jobs.items()}
    rows: list[dict[str, Any]] = []
    for k, per_utt in merged.items():
        rows += _rows(keys_of[k], per_utt)
    apart = {"size": "", "n_params": 0, "budget": 0, "t_infer": 0}  # rows of no trained setting
    for system in acc.systems:
        prior = registry.system(system).name
        for draw in range(acc.n_floor):
            rows += _rows({"system": system, "prior": prior, **apart, "seed": draw, "kind": KIND_PRIOR_NOISE},
                          acc.floor_vals[(system, draw)])
    ref = {"system": acc.ref_system, "prior": registry.system(acc.ref_system).name, **apart}
    for draw in range(acc.n_floor):  # deterministic: identical rows per seed index (seed variance 0 by construction)
        rows += _rows({**ref, "seed": draw, "kind": KIND_MEAN_REFERENCE}, acc.ref_vals)
        if acc.rec_vals:  # the recordings (E3 metrics only), under the same system as the mean reference; never compared
            rows += _rows({**ref, "seed": draw, "kind": KIND_RECORDING}, acc.rec_vals)
    return rows


def run_scores(merged: dict[tuple, Values], names: list[str], scoring: ScoringSettings,
               trial: dict[str, Any]) -> RunScores:
    """A run's MLflow scores: per (budget, T_infer), its records under MLflow names ('@rec' -> '_at_rec') and a
    summary of each metric scored at that setting (E3: the largest budget and e3_t_infer only)."""
    from eval.stats import summarize

    out: RunScores = {}
    for (_, b, t), per_utt in sorted(((k, v) for k, v in merged.items() if k[0] == trial["trial"]), key=lambda kv: kv[0]):
        records = [{"utt": u, **{mlflow_name(m): v for m, v in vals.items()}} for u, vals in per_utt.items()]
        summ = {}
        for m in names:
            if not any(mlflow_name(m) in r for r in records):
                continue  # not scored at this setting, not "failed"
            info = metric_info(m)
            summ[mlflow_name(m)] = {**summarize([r.get(mlflow_name(m)) for r in records],
                                                seed=scoring.bootstrap_seed, n_boot=scoring.n_boot),
                                    **{k: info[k] for k in ("higher_is_better", "unit", "implementation", "version")}}
        out[(b, t)] = (records, summ)
    return out
