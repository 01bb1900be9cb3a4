"""The acoustic evaluate stage: every acoustic training run at every budget of the ladder x T_infer x synthesis
condition, scored on the test split in the mel domain and, vocoded, with the eval package; beside each
system's floor (its own prior draw) and the mean (regression) reference (mu alone).

    python -m experiments.acoustic_evaluate --params params.yaml --features data/acoustic \
        --stats data/acoustic_stats/phoneme_stats.npz --sweep runs/acoustic/sweep --out runs/acoustic/eval \
        --recordings data/features

Writes the vocoder stage's files (eval/contract.py) with qualified metric names ("E1/mel_l1",
"E1/pesq_wb" against vocoder(ground-truth mel), "E1/pesq_wb@rec" against the recording): scores.csv,
summary.json, comparisons.json (every acoustic pair of the registry and every cell against its floor),
rtf.csv (mel synthesis), audio/ with index.json, provenance.json (with the vocoder and its RTF),
metrics.json; and logs each run's test scores to its MLflow run through the Tracker interface. Work (mels,
vocoded audio, score cache) is kept under ``OUT/work`` keyed by checkpoint, settings, inputs and code, so
a re-run only does what changed. The parts: ``acoustic_eval_config`` (params, metric names and
directions), ``acoustic_synthesis`` (test set, cached synthesis, floor, vocoding), ``scoring`` (one eval
run), ``eval.aggregate`` (statistics and the one judging rule), ``examples``, ``provenance``.

Floors (kind prior_noise), as the vocoder's: each system's own prior draw, mu_ph + s_ph n (PriorGrad-AM),
the learned mean + n (B2, from the k-th seed's run at its largest budget), n (B1); draw k (k = 0..K-1, K =
the most training seeds any system has) is seeded with acoustic.infer.seed + k, so draw 0 is exactly the
x_S the system's sampler starts from. The mean reference (kind mean_reference: mu_ph by the ground-truth
durations, under PriorGrad-AM) is deterministic, repeats the same values for seeds 0..K-1 and is never a
floor: L1 and cepstral distances favour a mean over any sampler of the true distribution.

Condition E3 (durations, f0 and energy all predicted: the model's text-to-speech) at each run's largest
budget and one schedule (acoustic_evaluate.e3_t_infer): whole utterances (their length is the model's),
vocoded like E1, scored with the length-free metrics: duration error against the reference durations per
phoneme ("E3/dur_mae_ms", "E3/len_dist"), eval's WORLD metrics on the DTW path ("E3/mcd", "E3/f0_rmse",
"E3/vuv_error", vs vocoder(whole GT mel) and '@rec') and the reference-free ones ("E3/wer", "E3/cer" of
pocketsphinx against the corpus text, "E3/dnsmos_ovrl"). Beside them: each system's floor (its prior draw
with its own predicted durations), the mean reference with PriorGrad-AM's predicted durations (its lowest
seed's run at the largest budget), and the whole recordings scored the same way (kind recording: the
recogniser's WER on real speech is the floor of what it can measure; never compared).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from experiments.acoustic_eval_config import (E3, E3_DTW_METRICS, AcousticEvaluateConfig, ScoringSettings,
                                              acoustic_evaluate_config, higher_is_better, metric_info, metric_names,
                                              mlflow_name, references, scoring_settings)
from eval.contract import (COMPARISONS_JSON, KIND_MEAN_REFERENCE, KIND_MODEL, KIND_PRIOR_NOISE, KIND_RECORDING,
                                  KIND_VOCODED_REFERENCE,
                                  METRICS_JSON, PROVENANCE_JSON, RTF_COLUMNS, RTF_CSV, SCORE_COLUMNS, SCORES_CSV,
                                  SUMMARY_JSON, TRIALS_JSON, VOCODED_REFERENCE_AUDIO, audio_setting_dir,
                                  qualified_metric, write_csv)
from experiments.testset import EvaluateError
from priorgrad import registry
from priorgrad.fileio import file_digest, write_json_atomic
from priorgrad.logs import setup_logging

log = logging.getLogger("experiments.acoustic_evaluate")

FAMILY = "acoustic"
REQUIRED = ("trial", "prior", "size", "n_params", "seed", "checkpoints")
MEAN_REFERENCE_SYSTEM = "priorgrad-am"  # mu_ph is PriorGrad-AM's prior mean: the reference rows sit under it
MEAN_REFERENCE_DIR = "mean-reference"   # audio/mean-reference/: mu alone, vocoded
E3_REFERENCE_AUDIO = "reference-vocoded-E3"  # vocoder(GT mel of E3's scored words): E3's primary audio reference

__all__ = ["EvaluateError", "load_trials", "run_acoustic_evaluate", "main"]


def floor_dir(system: str) -> str:
    """Folder of a system's floor examples under audio/ (its prior draw 0, the first audio condition)."""
    return f"{system}-floor"


def setting_dir(system: str, size: str, budget: int, t_infer: int, condition: str) -> str:
    return f"{audio_setting_dir(system, size, budget, t_infer)}-{condition}"


def load_trials(sweep_dir: Path) -> list[dict[str, Any]]:
    """The acoustic sweep's trials.json, checked: every error names the file and the trial."""
    path = sweep_dir / TRIALS_JSON
    if not path.exists():
        raise EvaluateError(f"{path}: acoustic sweep trial list not found (run the acoustic sweep stage first)")
    try:
        trials = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise EvaluateError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(trials, list) or not trials:
        raise EvaluateError(f"{path}: expected a non-empty list of trials")
    known = registry.prior_names(FAMILY)
    for t in trials:
        if not isinstance(t, dict):
            raise EvaluateError(f"{path}: every trial must be an object, got {t!r}")
        missing = [k for k in REQUIRED if k not in t]
        if missing:
            raise EvaluateError(f"{path}: trial {t.get('trial')!r} lacks {missing}")
        if t.get("family", FAMILY) != FAMILY:
            raise EvaluateError(f"{path}: trial {t['trial']}: family {t['family']!r}, expected {FAMILY!r} "
                                f"(the vocoder's trials go to experiments.evaluate)")
        if t["prior"] not in known:
            raise EvaluateError(f"{path}: trial {t['trial']}: unknown acoustic prior {t['prior']!r} (known: {known})")
        if not isinstance(t["checkpoints"], dict) or not t["checkpoints"]:
            raise EvaluateError(f"{path}: trial {t['trial']}: 'checkpoints' must map budgets to checkpoint paths")
    names = [t["trial"] for t in trials]
    if len(set(names)) != len(names):
        raise EvaluateError(f"{path}: duplicate trial names")
    return trials


def _rows(keys: dict[str, Any], per_utt: dict[str, dict[str, float | None]]) -> list[dict[str, Any]]:
    return [{**keys, "utt": u, "metric": m, "value": v} for u, ms in per_utt.items() for m, v in ms.items()]


def _audio_values(records: list[dict[str, Any]], condition: str, metrics: list[str], reference: str
                  ) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for r in records:
        out[r["utt"]] = {qualified_metric(condition, m, reference): r.get(m) for m in metrics
                         if reference in references(m)}
    return out


def score_e3(sets: list[tuple[str, Path, list[str]]], test, cfg: AcousticEvaluateConfig, scoring: ScoringSettings,
             ref_voc: Path, work: Path) -> dict[str, dict[str, dict[str, float | None]]]:
    """{label: {utt: {qualified E3 metric: value}}} of E3's vocoded audio, each (label, wav dir, metrics) set
    scored on its own metrics: the DTW ones against vocoder(GT mel) and, with e3_against_recording, the
    recording ('@rec'); the reference-free ones (wer, cer against the corpus text; dnsmos) once. eval.pair's
    DTW alignment (``--align dtw``), never a re-implementation. One eval run per distinct metric list and
    reference, so a floor scored on the primary alone costs no recogniser time."""
    from eval.pair import parse_alignment
    from experiments.scoring import score_sets

    align = parse_alignment("dtw")
    out: dict[str, dict[str, dict[str, float | None]]] = {label: {u: {} for u in test.utts} for label, _, _ in sets}
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


def run_acoustic_evaluate(params_path: Path, features: Path, stats: Path, sweep_dir: Path, out: Path,
                          recordings: Path, vocoder_checkpoint: Path | None = None) -> dict[str, Any]:
    from eval.aggregate import aggregate, headline
    from experiments.acoustic_synthesis import (duration_scores, load_e3, load_mels, make_cached_vocoder,
                                                mean_reference_e3, mel_scores, prepare_test_set, prior_draw_mels,
                                                save_floor_mels, synthesize_mels)
    from experiments.examples import copy_examples
    from experiments.scoring import score_sets
    from experiments.spec import project_root, tracking_config
    from priorgrad.acoustic.model_config import load_acoustic_config
    from priorgrad.audio import get_preset
    from priorgrad.config import load_params
    from eval.rule import load_rule

    params = load_params(params_path)
    cfg = acoustic_evaluate_config(params)
    scoring = scoring_settings(params, cfg)
    infer = load_acoustic_config(str(params_path)).infer
    if infer.schedule == "betas":
        raise EvaluateError("params: acoustic.infer.schedule: 'betas' is one fixed schedule; the evaluate stage "
                            "samples at acoustic_evaluate.t_infer steps and needs strided, official, searched or uniform")
    d_steps = load_acoustic_config(str(params_path)).diffusion.num_steps
    if infer.schedule == "official" and set(cfg.t_infer) - {6, d_steps}:
        raise EvaluateError(f"params: acoustic_evaluate.t_infer {cfg.t_infer}: acoustic.infer.schedule 'official' has "
                            f"betas for 6 steps only (and the full {d_steps}); set t_infer to [6] or use strided / searched")
    rule = load_rule(params_path, "acoustic")  # the one judging rule, as the report applies it
    tcfg = tracking_config(params)
    root = project_root(params_path.resolve().parent)
    trials = load_trials(sweep_dir)
    work = out / "work"
    preset = get_preset("hifigan")
    test = prepare_test_set(features, stats, recordings, cfg, preset.hop_length, preset.sample_rate, work)
    names = metric_names(cfg)
    vocoder = (make_cached_vocoder(infer, vocoder_checkpoint, work, scoring.workers)
               if cfg.audio_conditions or cfg.e3_t_infer else None)
    if cfg.e3_t_infer and infer.schedule == "official" and cfg.e3_t_infer not in (6, d_steps):
        raise EvaluateError(f"params: acoustic_evaluate.e3_t_infer {cfg.e3_t_infer}: acoustic.infer.schedule "
                            f"'official' has betas for 6 steps only (and the full {d_steps})")
    to_render: list[tuple[str, dict[str, np.ndarray], Path]] = []  # rendered together (one process pool)

    # 1. synthesis (+ mel scores, + vocoding of the audio conditions)
    rows: list[dict[str, Any]] = []
    mel_vals: dict[tuple, dict[str, dict[str, float | None]]] = {}   # job -> utt -> metric -> value
    audio_jobs: list[tuple[tuple, str, Path]] = []                     # (job, condition, wav dir)
    jobs: dict[tuple, dict[str, Any]] = {}                             # job -> row keys
    rtf: dict[tuple, list[float]] = defaultdict(list)
    devices: set[str] = set()
    voc_wall = voc_audio = 0.0
    n_jobs = sum(len(t["checkpoints"]) for t in trials) * len(cfg.t_infer) * len(cfg.conditions)
    i = 0
    for trial in trials:
        system = registry.system_of(trial["prior"], FAMILY)
        for budget, ckpt in sorted(trial["checkpoints"].items(), key=lambda kv: int(kv[0])):
            path = Path(ckpt) if Path(ckpt).is_absolute() else root / ckpt
            for t in cfg.t_infer:
                for c in cfg.conditions:
                    i += 1
                    log.info("[%d/%d] %s at budget %s, T=%d, %s: synthesis", i, n_jobs, trial["trial"], budget, t, c)
                    name = f"{trial['trial']}-b{budget}"
                    mel_dir, summary = synthesize_mels(name, path, t, c, test, features, infer, work)
                    if summary["prior"] != trial["prior"]:
                        raise EvaluateError(f"{path}: checkpoint of prior {summary['prior']!r}, but "
                                            f"{sweep_dir / TRIALS_JSON} says trial {trial['trial']} is {trial['prior']!r}")
                    job = (trial["trial"], int(budget), t, c)
                    jobs[job] = {"system": system, "prior": trial["prior"], "size": trial["size"],
                                 "n_params": trial["n_params"], "seed": trial["seed"], "budget": int(budget),
                                 "t_infer": t, "kind": KIND_MODEL}
                    mels = load_mels(mel_dir, test, f"{name} T={t} {c}")
                    mel_vals[job] = {u: {qualified_metric(c, m): v for m, v in ms.items()}
                                     for u, ms in mel_scores(mels, test, cfg.mel_metrics).items()}
                    rtf[(system, trial["size"], trial["n_params"], t, str(summary["device"]))].append(
                        float(summary["mel_rtf"]))
                    devices.add(str(summary["device"]))
                    if vocoder is not None and c in cfg.audio_conditions:
                        label = f"{name}-T{t}-{c}"
                        to_render.append((label, mels, work / "sets" / label))
                        audio_jobs.append((job, c, work / "sets" / label))

    # E3 (everything predicted) at each run's largest budget and e3_t_infer steps: whole utterances, duration
    # error here, vocoded like E1 and scored (length-free metrics) with the floors below
    e3_audio: list[tuple[tuple, Path]] = []        # (job, wav dir)
    e3_t = cfg.e3_t_infer
    for trial in (trials if e3_t else []):
        system = registry.system_of(trial["prior"], FAMILY)
        budget, ckpt = max(trial["checkpoints"].items(), key=lambda kv: int(kv[0]))
        path = Path(ckpt) if Path(ckpt).is_absolute() else root / ckpt
        name = f"{trial['trial']}-b{budget}"
        log.info("%s at budget %s, T=%d, E3: synthesis (predicted durations)", trial["trial"], budget, e3_t)
        mel_dir, summary = synthesize_mels(name, path, e3_t, E3, test, features, infer, work)
        job = (trial["trial"], int(budget), e3_t, E3)
        jobs[job] = {"system": system, "prior": trial["prior"], "size": trial["size"], "n_params": trial["n_params"],
                     "seed": trial["seed"], "budget": int(budget), "t_infer": e3_t, "kind": KIND_MODEL}
        mels, durs = load_e3(mel_dir, test, f"{name} T={e3_t} E3")
        mel_vals[job] = {u: {qualified_metric(E3, m): v for m, v in ms.items()}
                         for u, ms in duration_scores(durs, test, preset.hop_length, preset.sample_rate).items()}
        devices.add(str(summary["device"]))
        if vocoder is not None:
            label = f"{name}-T{e3_t}-{E3}"
            to_render.append((label, {u: test.crop_e3(u, mels[u], durs[u]) for u in test.utts}, work / "sets" / label))
            e3_audio.append((job, work / "sets" / label))

    # each system's floor: its own prior draws (mu + s n, learned mean + n, n), draw k = the seed index k (B2's
    # mean from the k-th seed's run at its largest budget); draw 0 is exactly the x_S its sampler starts from.
    n_floor = max(len({t["seed"] for t in trials if t["prior"] == p}) for p in {t["prior"] for t in trials})
    systems = sorted({registry.system_of(t["prior"], FAMILY) for t in trials})
    floor_vals: dict[tuple[str, int], dict[str, dict[str, float | None]]] = {}
    floor_audio: list[tuple[tuple[str, int], str, Path]] = []
    e3_floor_audio: list[tuple[tuple[str, int], Path]] = []
    ref_system = MEAN_REFERENCE_SYSTEM if MEAN_REFERENCE_SYSTEM in systems else systems[0]
    ref_durs: dict[str, np.ndarray] = {}
    for system in systems:
        runs = sorted((t for t in trials if registry.system_of(t["prior"], FAMILY) == system), key=lambda t: t["seed"])
        for draw in range(n_floor):
            trial = runs[draw % len(runs)]
            budget, ck = max(trial["checkpoints"].items(), key=lambda kv: int(kv[0]))
            path = Path(ck) if Path(ck).is_absolute() else root / ck
            vals: dict[str, dict[str, float | None]] = defaultdict(dict)
            for c in cfg.conditions:
                mels = load_mels(prior_draw_mels(f"{trial['trial']}-b{budget}", path, draw, c, test, features, infer,
                                                 work), test, f"{system} prior draw {draw} {c}")
                for u, ms in mel_scores(mels, test, cfg.mel_metrics).items():
                    vals[u].update({qualified_metric(c, m): v for m, v in ms.items()})
                if vocoder is not None and c in cfg.audio_conditions:
                    label = f"floor-{system}-d{draw}-{c}"
                    to_render.append((label, mels, work / "sets" / label))
                    floor_audio.append(((system, draw), c, work / "sets" / label))
            if e3_t:  # the floor of E3: the same prior draw laid out by the system's own predicted durations
                mels, durs = load_e3(prior_draw_mels(f"{trial['trial']}-b{budget}", path, draw, E3, test, features,
                                                     infer, work), test, f"{system} prior draw {draw} E3")
                for u, ms in duration_scores(durs, test, preset.hop_length, preset.sample_rate).items():
                    vals[u].update({qualified_metric(E3, m): v for m, v in ms.items()})
                if draw == 0 and system == ref_system:
                    ref_durs = durs  # the mean reference of E3 takes these durations
                if vocoder is not None and cfg.e3_floor_metrics:
                    label = f"floor-{system}-d{draw}-{E3}"
                    to_render.append((label, {u: test.crop_e3(u, mels[u], durs[u]) for u in test.utts},
                                      work / "sets" / label))
                    e3_floor_audio.append(((system, draw), work / "sets" / label))
            floor_vals[(system, draw)] = vals
    # the mean (regression) reference: mu alone, scored the same way (mel and vocoded); never a floor
    ref_mel = mel_scores(test.mu, test, cfg.mel_metrics)
    ref_vals = {u: {qualified_metric(c, m): v for c in cfg.conditions for m, v in ms.items()}
                for u, ms in ref_mel.items()}
    if e3_t:  # mu alone by PriorGrad-AM's predicted durations (those of its floor draw 0: its lowest seed's run)
        for u, ms in duration_scores(ref_durs, test, preset.hop_length, preset.sample_rate).items():
            ref_vals[u].update({qualified_metric(E3, m): v for m, v in ms.items()})
    save_floor_mels(test, work)
    sets = []  # (label, generated dir, reference dir) scored in one eval run
    e3_sets: list[tuple[str, Path]] = []  # (label, wav dir) of E3's whole utterances (score_e3)
    if vocoder is not None:
        ref_voc, mean_wav = work / "sets" / VOCODED_REFERENCE_AUDIO, work / "sets" / "mean-reference"
        extra = [(VOCODED_REFERENCE_AUDIO, test.gt, ref_voc), ("mean-reference", test.mu, mean_wav)]
        if e3_t:
            e3_ref_voc, e3_mean_wav = work / "sets" / E3_REFERENCE_AUDIO, work / "sets" / f"mean-reference-{E3}"
            mean_e3 = mean_reference_e3(test, ref_durs)
            extra += [(E3_REFERENCE_AUDIO, test.gt_e3, e3_ref_voc),
                      (f"mean-reference-{E3}", {u: test.crop_e3(u, mean_e3[u], ref_durs[u]) for u in test.utts},
                       e3_mean_wav)]
        rendered = vocoder.render_many(to_render + extra)
        voc_wall = sum(w for _, w, _ in rendered.values())  # the vocoder's RTF: every render behind the scores
        voc_audio = sum(a for _, _, a in rendered.values())
        for (job, c, wav_dir) in audio_jobs + floor_audio:
            sets += [(wav_dir.name, wav_dir, ref_voc), (f"{wav_dir.name}@rec", wav_dir, test.recordings)]
        if cfg.audio_conditions:
            sets += [("mean-reference", mean_wav, ref_voc), ("mean-reference@rec", mean_wav, test.recordings)]
        if e3_t:  # floors: only the metrics their gate needs; the recordings: e3_recording_metrics (WER, DNSMOS)
            e3_sets = [(d.name, d, cfg.e3_metrics) for _, d in e3_audio] + \
                      [(d.name, d, cfg.e3_floor_metrics) for _, d in e3_floor_audio] + \
                      [(e3_mean_wav.name, e3_mean_wav, cfg.e3_metrics),
                       ("recording", test.recordings_e3, cfg.e3_recording_metrics)]

    # 2. audio scoring: one eval run over every vocoded set against both references
    if sets:
        log.info("scoring %d vocoded sets x %d utterances (%s)", len(sets), len(test.utts), ", ".join(scoring.metrics))
        records = score_sets(sets, test.utts, scoring, work)
    else:
        records = {}
    per_job: dict[tuple, dict[str, dict[str, float | None]]] = {j: {u: dict(v) for u, v in mv.items()}
                                                                 for j, mv in mel_vals.items()}
    for job, c, wav_dir in audio_jobs:
        for ref, label in (("", wav_dir.name), ("rec", f"{wav_dir.name}@rec")):
            for u, vals in _audio_values(records[label], c, cfg.audio_metrics, ref).items():
                per_job[job][u].update(vals)
    for fkey, c, wav_dir in floor_audio:
        for ref, label in (("", wav_dir.name), ("rec", f"{wav_dir.name}@rec")):
            for u, vals in _audio_values(records[label], c, cfg.audio_metrics, ref).items():
                floor_vals[fkey][u].update(vals)
    if sets:
        for c in cfg.audio_conditions:
            for ref, label in (("", "mean-reference"), ("rec", "mean-reference@rec")):
                for u, vals in _audio_values(records[label], c, cfg.audio_metrics, ref).items():
                    ref_vals[u].update(vals)
    rec_vals: dict[str, dict[str, float | None]] = {}  # the whole recordings, scored as E3 is (kind recording)
    if e3_sets:
        t0 = time.perf_counter()
        e3_scores = score_e3(e3_sets, test, cfg, scoring, e3_ref_voc, work)
        log.info("E3: scored %d vocoded sets x %d utterances in %.1f s (%s; DTW-aligned: %s)", len(e3_sets),
                 len(test.utts), time.perf_counter() - t0, ", ".join(cfg.e3_metrics),
                 ", ".join(m for m in cfg.e3_metrics if m in E3_DTW_METRICS))
        for job, wav_dir in e3_audio:
            for u, vals in e3_scores[wav_dir.name].items():
                per_job[job][u].update(vals)
        for fkey, wav_dir in e3_floor_audio:
            for u, vals in e3_scores[wav_dir.name].items():
                floor_vals[fkey][u].update(vals)
        for u, vals in e3_scores[e3_mean_wav.name].items():
            ref_vals[u].update(vals)
        rec_vals = e3_scores["recording"]
        # the recordings' own durations against themselves: 0 by construction, shown so the row is complete
        for u, ms in duration_scores(test.durations, test, preset.hop_length, preset.sample_rate).items():
            rec_vals[u].update({qualified_metric(E3, m): v for m, v in ms.items()})

    # rows: one per (trial, budget, T, utterance, metric); conditions of one setting share the row keys
    merged: dict[tuple, dict[str, dict[str, float | None]]] = defaultdict(lambda: defaultdict(dict))
    for (trial_name, budget, t, c), per_utt in per_job.items():
        for u, vals in per_utt.items():
            merged[(trial_name, budget, t)][u].update(vals)
    keys_of = {(j[0], j[1], j[2]): jobs[j] for j in jobs}
    for k, per_utt in merged.items():
        rows += _rows(keys_of[k], per_utt)
    for system in systems:
        prior = registry.system(system).name
        for draw in range(n_floor):
            rows += _rows({"system": system, "prior": prior, "size": "", "n_params": 0, "seed": draw, "budget": 0,
                           "t_infer": 0, "kind": KIND_PRIOR_NOISE}, floor_vals[(system, draw)])
    for draw in range(n_floor):  # deterministic: identical rows per seed index (seed variance 0 by construction)
        rows += _rows({"system": ref_system, "prior": registry.system(ref_system).name, "size": "", "n_params": 0,
                       "seed": draw, "budget": 0, "t_infer": 0, "kind": KIND_MEAN_REFERENCE}, ref_vals)
        if rec_vals:  # the recordings (E3 metrics only), under the same system as the mean reference; never compared
            rows += _rows({"system": ref_system, "prior": registry.system(ref_system).name, "size": "",
                           "n_params": 0, "seed": draw, "budget": 0, "t_infer": 0, "kind": KIND_RECORDING}, rec_vals)
    rows = [{c: r[c] for c in SCORE_COLUMNS} for r in rows]

    # 3. statistics and outputs
    import pandas as pd

    summary, comparisons = aggregate(pd.DataFrame(rows, columns=SCORE_COLUMNS), higher_is_better(names), rule,
                                     family=FAMILY)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / SCORES_CSV, rows, SCORE_COLUMNS)
    write_json_atomic(out / SUMMARY_JSON, summary)
    write_json_atomic(out / COMPARISONS_JSON, comparisons)
    write_csv(out / RTF_CSV, [{"system": s, "size": z, "n_params": n, "t_infer": t, "rtf": float(np.mean(v)),
                               "device": d} for (s, z, n, t, d), v in sorted(rtf.items())], RTF_COLUMNS)
    _write_examples(out, test, cfg, audio_jobs + [(job, E3, d) for job, d in e3_audio], jobs, systems,
                    work if vocoder is not None else None, copy_examples)
    write_json_atomic(out / PROVENANCE_JSON, _provenance(params, root, features, stats, recordings, cfg, names,
                                                         infer, vocoder, voc_wall, voc_audio, devices))
    write_json_atomic(out / METRICS_JSON, headline(summary, comparisons))
    if tcfg.enabled:
        from experiments.trackers import default_tracking_uri

        uri = default_tracking_uri(root, tcfg.uri)
        for trial in trials:  # tracking loss is reported by the tracker, never fatal
            mine = {k: v for k, v in merged.items() if k[0] == trial["trial"]}
            log_run_scores(uri, trial, mine, names, scoring, out / COMPARISONS_JSON, comparisons, tcfg.timeout_s)
    n_synth = sum(1 for _ in (work / "gen").glob("*/synthesis.json"))
    log.info("acoustic evaluation: %d rows, %d comparisons, %d synthesised sets in the cache", len(rows),
             len(comparisons), n_synth)
    return {"n_rows": len(rows), "n_comparisons": len(comparisons), "vocoder_rendered_s": getattr(vocoder, "rendered_s", 0.0)}


def _write_examples(out: Path, test, cfg: AcousticEvaluateConfig, audio_jobs: list, jobs: dict, systems: list[str],
                    work: Path | None, copy_examples) -> None:
    """audio/: the recordings, vocoder(GT mel), one set per system and setting (its lowest seed's run),
    each system's floor; index.json says what each folder holds (every set has its condition; '' = the
    same audio under every condition)."""
    sets: list[dict[str, Any]] = []
    if work is not None:
        sets.append({"dir": VOCODED_REFERENCE_AUDIO, "src": str(work / "sets" / VOCODED_REFERENCE_AUDIO),
                     "kind": KIND_VOCODED_REFERENCE, "system": "", "prior": "", "size": "", "budget": 0,
                     "t_infer": 0, "seed": 0, "condition": ""})
        lowest: dict[tuple, tuple[dict[str, Any], str, Path]] = {}
        for job, c, wav_dir in audio_jobs:
            keys = jobs[job]
            k = (keys["system"], keys["size"], keys["budget"], keys["t_infer"], c)
            if k not in lowest or keys["seed"] < lowest[k][0]["seed"]:
                lowest[k] = (keys, c, wav_dir)
        for (system, size, budget, t, c), (keys, _, wav_dir) in sorted(lowest.items()):
            sets.append({"dir": setting_dir(system, size, budget, t, c), "src": str(wav_dir), "kind": KIND_MODEL,
                         "system": system, "prior": keys["prior"], "size": size, "budget": budget, "t_infer": t,
                         "seed": keys["seed"], "condition": c})
        c0 = cfg.audio_conditions[0] if cfg.audio_conditions else E3
        for system in systems:
            sets.append({"dir": floor_dir(system), "src": str(work / "sets" / f"floor-{system}-d0-{c0}"),
                         "kind": KIND_PRIOR_NOISE, "system": system, "prior": registry.system(system).name,
                         "size": "", "budget": 0, "t_infer": 0, "seed": 0, "condition": c0})
        ref_system = MEAN_REFERENCE_SYSTEM if MEAN_REFERENCE_SYSTEM in systems else systems[0]
        sets.append({"dir": MEAN_REFERENCE_DIR, "src": str(work / "sets" / "mean-reference"),
                     "kind": KIND_MEAN_REFERENCE, "system": ref_system, "prior": registry.system(ref_system).name,
                     "size": "", "budget": 0, "t_infer": 0, "seed": 0, "condition": ""})
    copy_examples(out, test.recordings, test.utts, cfg.n_audio_examples, sets)


def _provenance(params, root: Path, features: Path, stats: Path, recordings: Path, cfg: AcousticEvaluateConfig,
                names: list[str], infer, vocoder, voc_wall: float, voc_audio: float, devices: set[str]) -> dict[str, Any]:
    from experiments.provenance import provenance
    from priorgrad.fingerprint import acoustic_synthesis_fingerprint

    prov = provenance(params, root, recordings, cfg.audio_metrics, devices)
    pre = features / "acoustic_preprocess.json"
    prov["acoustic"] = {
        "features": str(features), "preprocess": json.loads(pre.read_text()) if pre.exists() else None,
        "phoneme_stats": {"path": str(stats), "digest": file_digest(stats, 12)},
        "code": {"synthesis": acoustic_synthesis_fingerprint()},
        "conditions": cfg.conditions, "audio_conditions": cfg.audio_conditions, "t_infer": cfg.t_infer,
        "schedule": infer.schedule, "seed": infer.seed, "batch_size": infer.batch_size,
        "n_utterances": cfg.n_utterances, "max_frames": cfg.max_frames,
        "e3": None if not cfg.e3_t_infer else {
            "t_infer": cfg.e3_t_infer, "budgets": "each run's largest", "metrics": cfg.e3_metrics,
            "max_frames": cfg.e3_max_frames, "floor_metrics": cfg.e3_floor_metrics,
            "recording_metrics": cfg.e3_recording_metrics,
            "against_recording": cfg.e3_against_recording,
            "scored": "the utterance's first whole words within e3_max_frames reference frames (the same words in "
                      "every set, at each set's own predicted length), vocoded like E1; DTW metrics vs vocoder(GT mel "
                      "of those words) and, with e3_against_recording, the recording ('@rec'); wer / cer vs the "
                      "corpus text of those words; dnsmos reference-free; duration error over the whole utterance",
            "floor": "each system's prior draw k laid out by its own predicted durations",
            "mean_reference": f"mu_ph by {MEAN_REFERENCE_SYSTEM}'s predicted durations (its floor draw 0's run)",
            "recording": "the whole recordings scored with the same metrics (kind recording; never compared)"},
        "floor": ("each system's own prior draw k = seed index k (mu_ph + s_ph n; learned mean + n; n), noise seeded "
                  "with acoustic.infer.seed + k: draw 0 is the sampler's x_S"),
        "mean_reference": "mu_ph gathered by the ground-truth durations (deterministic; never a floor)",
        "clip_x0": infer.clip_x0, "search_max_candidates": infer.search_max_candidates,
        "metrics": {n: metric_info(n) for n in names},
        "vocoder": None if vocoder is None else {
            **vocoder.settings, "kind": infer.vocoder, "rtf": voc_wall / voc_audio if voc_audio else None,
            "rtf_note": "wall seconds of the renders behind the scored audio (cached renders with their recorded "
                        "time) per second of audio", "same_seed_for_gt": True,
            "reference": "vocoder(ground-truth mel) is the primary audio reference; '@rec' = the recording"},
    }
    return prov


def log_run_scores(uri: str, trial: dict[str, Any], per_setting: dict[tuple, dict[str, dict[str, Any]]],
                   names: list[str], scoring, comparisons_path: Path, comparisons: list[dict[str, Any]],
                   timeout_s: float) -> None:
    """A run's test scores into its own MLflow run (through the Tracker interface), as the vocoder's
    experiments.evaluate.log_run_scores: ``test/T<t>/<condition>/<metric>`` ('@rec' -> '_at_rec') at step =
    budget, and, as tags ``b<budget>/cmp/<other system>/T<t>/<metric>``, the one rule's outcome of every
    comparison the run is part of (the acoustic family has two pairs, so the other system is in the key)."""
    if not trial.get("mlflow_run_id"):
        return
    from eval.aggregate import mlflow_tags
    from eval.mlflow_log import log_test_scores
    from eval.stats import summarize
    from experiments.trackers import MLflowTracker

    tracker = MLflowTracker.for_run(uri, trial["mlflow_run_id"], timeout_s=timeout_s)
    if not tracker.active:
        return
    system = registry.system_of(trial["prior"], FAMILY)
    for budget in sorted({b for _, b, _ in per_setting}):
        per_t = {}
        for (_, b, t), per_utt in sorted(per_setting.items()):
            if b != budget:
                continue
            records = [{"utt": u, **{mlflow_name(m): v for m, v in vals.items()}} for u, vals in per_utt.items()]
            summ = {}
            for m in names:
                if not any(mlflow_name(m) in r for r in records):
                    continue  # not scored at this setting (E3: the largest budget and e3_t_infer only), not "failed"
                info = metric_info(m)
                summ[mlflow_name(m)] = {**summarize([r.get(mlflow_name(m)) for r in records],
                                                    seed=scoring.bootstrap_seed, n_boot=scoring.n_boot),
                                        **{k: info[k] for k in ("higher_is_better", "unit", "implementation",
                                                                "version")}}
            per_t[t] = (records, summ)
        log_test_scores(tracker, per_t, comparisons_path, step=budget,
                        title=f"{trial['trial']} at {budget} steps: test scores vs T_infer")
        tags = mlflow_tags(comparisons, system, trial["size"], budget, name_every_pair=True)
        tracker.set_tags({f"b{budget}/{k}": v for k, v in tags.items()})
    tracker.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.acoustic_evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--features", type=Path, required=True, help="acoustic features dir (priorgrad acoustic preprocess --out)")
    ap.add_argument("--stats", type=Path, required=True, help="phoneme statistics (priorgrad acoustic prior-stats --out)")
    ap.add_argument("--sweep", type=Path, required=True, help="acoustic sweep output dir (holds trials.json)")
    ap.add_argument("--out", type=Path, required=True, help="evaluation output dir, e.g. runs/acoustic/eval")
    ap.add_argument("--recordings", type=Path, default=Path("data/features"),
                    help="the vocoder features dir the acoustic features came from (the recordings; default "
                         "data/features, the pipeline's)")
    ap.add_argument("--vocoder-checkpoint", type=Path, default=None,
                    help="a vocoder checkpoint of this project (acoustic.infer.vocoder: priorgrad)")
    args = ap.parse_args(argv)
    setup_logging()
    try:
        run_acoustic_evaluate(args.params, args.features, args.stats, args.sweep, args.out, args.recordings,
                              args.vocoder_checkpoint)
    except (EvaluateError, FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
