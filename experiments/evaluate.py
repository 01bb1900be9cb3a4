"""The evaluate stage: every training run at every budget of the ladder x every T_infer, scored on the test
split, beside each prior's own noise (the floor).

    python -m experiments.evaluate --params params.yaml --features data/features \
        --sweep runs/sweep --out runs/eval

Writes (eval/contract.py) scores.csv, summary.json, comparisons.json, rtf.csv, audio/ with its
index.json, provenance.json and metrics.json (the headline numbers, a DVC metrics file), and logs each
run's test scores to its MLflow run through the Tracker interface. Work (synthesised audio, score
cache) is kept under ``OUT/work`` keyed by checkpoint, settings and code, so a re-run only does what
changed. The parts: ``testset`` (inputs and references), ``synthesis`` (cached synthesis and floors),
``scoring`` (one eval run over everything), ``eval.aggregate`` (statistics and the one judging rule,
shared with the report), ``examples`` (kept audio),
``provenance``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from eval.contract import (COMPARISONS_JSON, KIND_MODEL, KIND_PRIOR_NOISE, METRICS_JSON, PROVENANCE_JSON,
                                  RTF_COLUMNS, RTF_CSV, SCORE_COLUMNS, SCORES_CSV, SUMMARY_JSON, TRIALS_JSON,
                                  audio_setting_dir, prior_noise_dir, write_csv)
from experiments.spec import evaluate_config, project_root, sweep_config, tracking_config
from experiments.testset import EvaluateError, inputs_key, prepare_test_set
from priorgrad.core import registry
from priorgrad.core.config import load_params
from priorgrad.core.fileio import write_json_atomic
from priorgrad.core.logs import setup_logging

log = logging.getLogger("experiments.evaluate")

__all__ = ["EvaluateError", "load_trials", "run_evaluate", "main"]


def load_trials(sweep_dir: Path) -> list[dict[str, Any]]:
    path = sweep_dir / TRIALS_JSON
    if not path.exists():
        raise EvaluateError(f"{path}: sweep trial list not found (run the sweep stage first)")
    trials = json.loads(path.read_text())
    if not isinstance(trials, list) or not trials:
        raise EvaluateError(f"{path}: expected a non-empty list of trials")
    for t in trials:
        missing = [k for k in ("trial", "prior", "size", "n_params", "seed", "checkpoints") if k not in t]
        if missing:
            raise EvaluateError(f"{path}: trial {t.get('trial')!r} lacks {missing}")
        if t["prior"] not in registry.PRIORS:
            raise EvaluateError(f"{path}: trial {t['trial']}: unknown prior {t['prior']!r}")
        if not isinstance(t["checkpoints"], dict) or not t["checkpoints"]:
            raise EvaluateError(f"{path}: trial {t['trial']}: 'checkpoints' must map budgets to checkpoint paths")
    return trials


def _score_rows(base: dict[str, Any], records: list[dict[str, Any]], metrics: list[str]) -> list[dict[str, Any]]:
    return [{**base, "utt": rec["utt"], "metric": m, "value": rec.get(m)} for rec in records for m in metrics]


def log_run_scores(uri: str, trial: dict[str, Any],
                   per_budget_t: dict[tuple[int, int], tuple[list[dict[str, Any]], dict[str, Any]]],
                   comparisons_path: Path, comparisons: list[dict[str, Any]], timeout_s: float) -> None:
    """A run's test scores into its own MLflow run (through the Tracker interface): test/T<t>/<metric> at
    step = budget, so each run's scores form a curve over the budget ladder; and, as tags
    ``b<budget>/cmp/T<t>/<metric>``, the one rule's outcome of every comparison the run is part of."""
    from eval.aggregate import mlflow_tags

    if not trial.get("mlflow_run_id"):
        return
    from eval.mlflow_log import log_test_scores
    from experiments.trackers import MLflowTracker

    tracker = MLflowTracker.for_run(uri, trial["mlflow_run_id"], timeout_s=timeout_s)
    if not tracker.active:
        return
    for budget in sorted({b for b, _ in per_budget_t}):
        per_t = {t: v for (b, t), v in per_budget_t.items() if b == budget}
        log_test_scores(tracker, per_t, comparisons_path, step=budget,
                        title=f"{trial['trial']} at {budget} steps: test scores vs T_infer")
        tags = mlflow_tags(comparisons, registry.system_of(trial["prior"]), trial["size"], budget)
        tracker.set_tags({f"b{budget}/{k}": v for k, v in tags.items()})
    tracker.close()


def run_evaluate(params_path: Path, features: Path, sweep_dir: Path, out: Path) -> dict[str, Any]:
    from eval.registry import METRICS, resolve
    from eval.runner import summarize_records
    from experiments.examples import copy_examples
    from experiments.provenance import provenance
    from experiments.scoring import score_all
    from eval.aggregate import aggregate, headline
    from eval.rule import load_rule
    from experiments.synthesis import synthesize_checkpoint, synthesize_prior_noise

    params = load_params(params_path)
    cfg = evaluate_config(params)
    rule = load_rule(params_path, "vocoder")  # the one judging rule, as the report applies it
    tcfg = tracking_config(params)
    n_draws = len(sweep_config(params).seeds)  # as many noise draws as training runs per system
    root = project_root(params_path.resolve().parent)
    trials = load_trials(sweep_dir)
    work = out / "work"
    mel_dir, ref_dir, utts = prepare_test_set(params, cfg, features, work)
    inputs = inputs_key(utts, cfg, features)

    # 1. synthesis: every run at every budget and T_infer, then every prior's noise
    jobs: list[tuple[dict[str, Any], Path]] = []  # (row keys, generated dir)
    rtf: dict[tuple, list[float]] = defaultdict(list)
    devices: set[str] = set()
    n_jobs = sum(len(t["checkpoints"]) for t in trials) * len(cfg.t_infer)
    for trial in trials:
        system = registry.system_of(trial["prior"])
        for budget, ckpt in sorted(trial["checkpoints"].items(), key=lambda kv: int(kv[0])):
            path = Path(ckpt) if Path(ckpt).is_absolute() else root / ckpt
            for t in cfg.t_infer:
                log.info("[%d/%d] %s at budget %s, T=%d: synthesis", len(jobs) + 1, n_jobs, trial["trial"], budget, t)
                gen_dir, timing = synthesize_checkpoint(f"{trial['trial']}-b{budget}", path, t, mel_dir, inputs,
                                                        params, work)
                keys = {"system": system, "prior": trial["prior"], "size": trial["size"],
                        "n_params": trial["n_params"], "seed": trial["seed"], "budget": int(budget), "t_infer": t,
                        "kind": KIND_MODEL, "trial": trial["trial"]}
                jobs.append((keys, gen_dir))
                rtf[(system, trial["size"], trial["n_params"], t, timing["device"])].append(float(timing["rtf"]))
                devices.add(str(timing["device"]))
    for prior in sorted({t["prior"] for t in trials}):
        system = registry.system_of(prior)
        any_run = next(t for t in trials if t["prior"] == prior)
        ckpt = Path(next(iter(any_run["checkpoints"].values())))
        ckpt = ckpt if ckpt.is_absolute() else root / ckpt
        for draw in range(n_draws):
            gen_dir = synthesize_prior_noise(system, ckpt, draw, mel_dir, inputs, params, work)
            jobs.append(({"system": system, "prior": prior, "size": "", "n_params": 0, "seed": draw, "budget": 0,
                          "t_infer": 0, "kind": KIND_PRIOR_NOISE}, gen_dir))

    # 2. scoring: one eval run over every generated set
    records = score_all([d for _, d in jobs], ref_dir, utts, cfg, work)
    rows: list[dict[str, Any]] = []
    per_run: dict[str, dict[tuple[int, int], tuple[list, dict[str, Any]]]] = defaultdict(dict)
    for keys, gen_dir in jobs:
        mine = records[gen_dir.name]
        rows += _score_rows({k: v for k, v in keys.items() if k != "trial"}, mine, cfg.metrics)
        if keys["kind"] == KIND_MODEL:
            per_run[keys["trial"]][(keys["budget"], keys["t_infer"])] = (mine, summarize_records(
                mine, resolve(cfg.metrics), seed=cfg.bootstrap_seed, n_boot=cfg.n_boot))

    # 3. statistics and outputs
    import pandas as pd

    higher = {m: METRICS[m].higher_is_better for m in cfg.metrics}
    summary, comparisons = aggregate(pd.DataFrame(rows, columns=SCORE_COLUMNS), higher, rule)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / SCORES_CSV, rows, SCORE_COLUMNS)
    write_json_atomic(out / SUMMARY_JSON, summary)
    write_json_atomic(out / COMPARISONS_JSON, comparisons)
    write_csv(out / RTF_CSV, [{"system": s, "size": z, "n_params": n, "t_infer": t, "rtf": float(np.mean(v)),
                               "device": d} for (s, z, n, t, d), v in sorted(rtf.items())], RTF_COLUMNS)
    copy_examples(out, ref_dir, utts, cfg.n_audio_examples, _example_sets(jobs))
    write_json_atomic(out / PROVENANCE_JSON, provenance(params, root, features, cfg.metrics, devices))
    write_json_atomic(out / METRICS_JSON, headline(summary, comparisons))
    if tcfg.enabled:
        from experiments.trackers import default_tracking_uri

        uri = default_tracking_uri(root, tcfg.uri)
        for trial in trials:  # tracking loss is reported by the tracker, never fatal
            log_run_scores(uri, trial, per_run[trial["trial"]], out / COMPARISONS_JSON, comparisons, tcfg.timeout_s)
    return {"n_rows": len(rows), "n_comparisons": len(comparisons)}


def _example_sets(jobs: list[tuple[dict[str, Any], Path]]) -> list[dict[str, Any]]:
    """One kept set per system and setting: the lowest seed's (noise draw 0 for the floors)."""
    lowest: dict[tuple, tuple[dict[str, Any], Path]] = {}
    for keys, gen_dir in jobs:
        k = (keys["kind"], keys["system"], keys["size"], keys["budget"], keys["t_infer"])
        if k not in lowest or keys["seed"] < lowest[k][0]["seed"]:
            lowest[k] = (keys, gen_dir)
    sets = []
    for (kind, system, size, budget, t), (keys, gen_dir) in sorted(lowest.items()):
        name = prior_noise_dir(system) if kind == KIND_PRIOR_NOISE else audio_setting_dir(system, size, budget, t)
        sets.append({"dir": name, "src": str(gen_dir), "kind": kind, "system": system, "prior": keys["prior"],
                     "size": size, "budget": budget, "t_infer": t, "seed": keys["seed"]})
    return sets


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--features", type=Path, required=True, help="features dir (priorgrad preprocess --out)")
    ap.add_argument("--sweep", type=Path, required=True, help="sweep output dir (holds trials.json)")
    ap.add_argument("--out", type=Path, required=True, help="evaluation output dir, e.g. runs/eval")
    args = ap.parse_args(argv)
    setup_logging()
    try:
        run_evaluate(args.params, args.features, args.sweep, args.out)
    except (EvaluateError, FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
