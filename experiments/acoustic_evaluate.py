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
directions), ``acoustic_synthesis`` (test set, cached synthesis, floor, vocoding), ``acoustic_eval_jobs``
(what is synthesised: the conditions, E3, the floors, the mean reference), ``acoustic_eval_scoring``
(vocoding, one eval run, E3's scoring, the rows), ``acoustic_eval_outputs`` (kept audio, provenance). This
module is the acoustic family's descriptor (ACOUSTIC); the driver shared with the vocoder's stage
(``eval_driver``: trials, the one judging rule, the stage files, MLflow) does the rest.

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
import logging
import sys
from functools import partial
from pathlib import Path
from typing import Any

from eval.contract import KIND_MEAN_REFERENCE, KIND_MODEL, KIND_PRIOR_NOISE, KIND_RECORDING
from experiments.acoustic_eval_config import acoustic_evaluate_config, higher_is_better, metric_names, scoring_settings
from experiments.acoustic_eval_jobs import (AcousticSettings, AcousticSources, Collected, Context, mean_reference,
                                            synthesise_conditions, synthesise_e3, synthesise_floors)
from experiments.eval_driver import run_family
from experiments.eval_family import EvalFamily, EvalRun, FamilyScores
from experiments.testset import EvaluateError
from priorgrad.core.config import Params
from priorgrad.core.logs import setup_logging

log = logging.getLogger("experiments.acoustic_evaluate")

__all__ = ["ACOUSTIC", "EvaluateError", "run_acoustic_evaluate", "main"]


def configure(params_path: Path, params: Params) -> AcousticSettings:
    """acoustic_evaluate: with evaluate:'s scoring settings and acoustic.infer, checked against each other."""
    from priorgrad.acoustic.model_config import load_acoustic_config

    cfg = acoustic_evaluate_config(params)
    scoring = scoring_settings(params, cfg)
    acfg = load_acoustic_config(str(params_path))
    infer, d_steps = acfg.infer, acfg.diffusion.num_steps
    if infer.schedule == "betas":
        raise EvaluateError("params: acoustic.infer.schedule: 'betas' is one fixed schedule; the evaluate stage "
                            "samples at acoustic_evaluate.t_infer steps and needs strided, official, searched or uniform")
    if infer.schedule == "official" and set(cfg.t_infer) - {6, d_steps}:
        raise EvaluateError(f"params: acoustic_evaluate.t_infer {cfg.t_infer}: acoustic.infer.schedule 'official' has "
                            f"betas for 6 steps only (and the full {d_steps}); set t_infer to [6] or use strided / searched")
    if cfg.e3_t_infer and infer.schedule == "official" and cfg.e3_t_infer not in (6, d_steps):
        raise EvaluateError(f"params: acoustic_evaluate.e3_t_infer {cfg.e3_t_infer}: acoustic.infer.schedule "
                            f"'official' has betas for 6 steps only (and the full {d_steps})")
    return AcousticSettings(cfg, scoring, infer)


def score(run: EvalRun) -> FamilyScores:
    """Synthesis (the mel conditions, E3, the floors, the mean reference), vocoding, one eval run, the rows."""
    from experiments.acoustic_eval_outputs import examples, provenance
    from experiments.acoustic_eval_scoring import (merged_settings, render, run_scores, score_audio, score_e3_audio,
                                                   score_rows)
    from experiments.acoustic_synthesis import make_cached_vocoder, prepare_test_set, save_floor_mels
    from priorgrad.core.audio import get_preset

    settings: AcousticSettings = run.settings
    src: AcousticSources = run.sources
    cfg = settings.cfg
    preset = get_preset("hifigan")
    test = prepare_test_set(src.features, src.stats, src.recordings, cfg, preset.hop_length, preset.sample_rate,
                            run.work)
    vocoder = (make_cached_vocoder(settings.infer, src.vocoder_checkpoint, run.work, settings.scoring.workers)
               if cfg.audio_conditions or cfg.e3_t_infer else None)
    ctx, acc = Context(run, settings, src, test, preset, vocoder), Collected()
    for step in (synthesise_conditions, synthesise_e3, synthesise_floors, mean_reference):
        step(ctx, acc)
    save_floor_mels(test, run.work)
    sets, e3_sets = render(ctx, acc)
    score_audio(ctx, acc, sets)
    score_e3_audio(ctx, acc, e3_sets)
    merged = merged_settings(acc)
    names = metric_names(cfg)
    return FamilyScores(rows=score_rows(acc, merged), higher=higher_is_better(names), rtf=acc.rtf,
                        examples=examples(ctx, acc), provenance=provenance(ctx, acc, names),
                        run_scores=partial(run_scores, merged, names, settings.scoring),
                        extra={"vocoder_rendered_s": getattr(vocoder, "rendered_s", 0.0)})


ACOUSTIC = EvalFamily(name="acoustic", configure=configure, score=score,
                      row_kinds=(KIND_MODEL, KIND_PRIOR_NOISE, KIND_MEAN_REFERENCE, KIND_RECORDING),
                      name_every_pair=True)


def run_acoustic_evaluate(params_path: Path, features: Path, stats: Path, sweep_dir: Path, out: Path,
                          recordings: Path, vocoder_checkpoint: Path | None = None) -> dict[str, Any]:
    result = run_family(ACOUSTIC, params_path, sweep_dir, out,
                        AcousticSources(features, stats, recordings, vocoder_checkpoint))
    n_synth = sum(1 for _ in (out / "work" / "gen").glob("*/synthesis.json"))
    log.info("acoustic evaluation: %d rows, %d comparisons, %d synthesised sets in the cache", result["n_rows"],
             result["n_comparisons"], n_synth)
    return result


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
