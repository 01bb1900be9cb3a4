"""The evaluate stage: every training run at every budget of the ladder x every T_infer, scored on the test
split, beside each prior's own noise (the floor).

    python -m experiments.evaluate --params params.yaml --features data/features \
        --sweep runs/sweep --out runs/eval

Writes (eval/contract.py) scores.csv, summary.json, comparisons.json, rtf.csv, audio/ with its
index.json, provenance.json and metrics.json (the headline numbers, a DVC metrics file), and logs each
run's test scores to its MLflow run through the Tracker interface. Work (synthesised audio, score
cache) is kept under ``OUT/work`` keyed by checkpoint, settings and code, so a re-run only does what
changed. This module is the vocoder's family descriptor (VOCODER: how it synthesises and scores); the
driver shared with the acoustic stage (``eval_driver``: trials, the one judging rule, the stage files,
MLflow) does the rest. The parts: ``testset`` (inputs and references), ``synthesis`` (cached synthesis and
floors), ``scoring`` (one eval run over everything), ``eval.aggregate`` (statistics and the one judging
rule, shared with the report), ``examples`` (kept audio), ``provenance``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any

from eval.contract import KIND_MODEL, KIND_PRIOR_NOISE, audio_setting_dir, prior_noise_dir
from experiments.eval_driver import load_trials, run_family
from experiments.eval_family import (EvalFamily, EvalRun, Examples, FamilyScores, RunScores, budgets,
                                     checkpoint_path)
from experiments.spec import EvaluateConfig, evaluate_config, sweep_config
from experiments.testset import EvaluateError, inputs_key, prepare_test_set
from priorgrad.core import registry
from priorgrad.core.config import Params
from priorgrad.core.logs import setup_logging

log = logging.getLogger("experiments.evaluate")

__all__ = ["EvaluateError", "VOCODER", "load_trials", "run_evaluate", "main"]

Job = tuple[dict[str, Any], Path]  # (row keys, generated dir)


def configure(params_path: Path, params: Params) -> EvaluateConfig:
    cfg = evaluate_config(params)
    sweep_config(params)  # the floors' draw count (sweep.seeds): a params error before any synthesis
    return cfg


def score(run: EvalRun) -> FamilyScores:
    """Synthesis of every run (budget x T_infer) and every prior's noise, then ONE eval run over all of it."""
    from eval.registry import METRICS
    from experiments.provenance import provenance
    from experiments.scoring import score_all

    cfg: EvaluateConfig = run.settings
    features: Path = run.sources
    mel_dir, ref_dir, utts = prepare_test_set(run.params, cfg, features, run.work)
    inputs = inputs_key(utts, cfg, features)
    jobs, rtf, devices = _synthesise_runs(run, mel_dir, inputs)
    jobs += _synthesise_floors(run, mel_dir, inputs)
    records = score_all([d for _, d in jobs], ref_dir, utts, cfg, run.work)
    rows = [{**{k: v for k, v in keys.items() if k != "trial"}, "utt": rec["utt"], "metric": m, "value": rec.get(m)}
            for keys, gen_dir in jobs for rec in records[gen_dir.name] for m in cfg.metrics]
    return FamilyScores(
        rows=rows, higher={m: METRICS[m].higher_is_better for m in cfg.metrics}, rtf=rtf,
        examples=Examples(ref_dir, utts, cfg.n_audio_examples, _example_sets(jobs)),
        provenance=provenance(run.params, run.root, features, cfg.metrics, devices),
        run_scores=partial(_run_scores, jobs, records, cfg))


def _synthesise_runs(run: EvalRun, mel_dir: Path, inputs: dict[str, Any]
                     ) -> tuple[list[Job], dict[tuple, list[float]], set[str]]:
    """Every trial at every budget and T_infer: (jobs, RTFs per system setting and device, devices)."""
    from experiments.synthesis import synthesize_checkpoint

    t_infer = run.settings.t_infer
    jobs: list[Job] = []
    rtf: dict[tuple, list[float]] = defaultdict(list)
    devices: set[str] = set()
    n_jobs = sum(len(t["checkpoints"]) for t in run.trials) * len(t_infer)
    for trial in run.trials:
        system = registry.system_of(trial["prior"])
        for budget, ckpt in budgets(trial):
            for t in t_infer:
                log.info("[%d/%d] %s at budget %s, T=%d: synthesis", len(jobs) + 1, n_jobs, trial["trial"], budget, t)
                gen_dir, timing = synthesize_checkpoint(f"{trial['trial']}-b{budget}", checkpoint_path(run.root, ckpt),
                                                        t, mel_dir, inputs, run.params, run.work)
                keys = {"system": system, "prior": trial["prior"], "size": trial["size"],
                        "n_params": trial["n_params"], "seed": trial["seed"], "budget": int(budget), "t_infer": t,
                        "kind": KIND_MODEL, "trial": trial["trial"]}
                jobs.append((keys, gen_dir))
                rtf[(system, trial["size"], trial["n_params"], t, timing["device"])].append(float(timing["rtf"]))
                devices.add(str(timing["device"]))
    return jobs, rtf, devices


def _synthesise_floors(run: EvalRun, mel_dir: Path, inputs: dict[str, Any]) -> list[Job]:
    """Every prior's own noise (the floor): as many draws as training runs per system (sweep.seeds)."""
    from experiments.synthesis import synthesize_prior_noise

    n_draws = len(sweep_config(run.params).seeds)
    jobs: list[Job] = []
    for prior in sorted({t["prior"] for t in run.trials}):
        system = registry.system_of(prior)
        any_run = next(t for t in run.trials if t["prior"] == prior)
        ckpt = checkpoint_path(run.root, next(iter(any_run["checkpoints"].values())))
        for draw in range(n_draws):
            gen_dir = synthesize_prior_noise(system, ckpt, draw, mel_dir, inputs, run.params, run.work)
            jobs.append(({"system": system, "prior": prior, "size": "", "n_params": 0, "seed": draw, "budget": 0,
                          "t_infer": 0, "kind": KIND_PRIOR_NOISE}, gen_dir))
    return jobs


def _run_scores(jobs: list[Job], records: dict[str, list[dict[str, Any]]], cfg: EvaluateConfig,
                trial: dict[str, Any]) -> RunScores:
    """A trial's records and eval summary at each (budget, T_infer), for its MLflow run."""
    from eval.registry import resolve
    from eval.runner import summarize_records

    out: RunScores = {}
    for keys, gen_dir in jobs:
        if keys["kind"] == KIND_MODEL and keys["trial"] == trial["trial"]:
            mine = records[gen_dir.name]
            out[(keys["budget"], keys["t_infer"])] = (mine, summarize_records(
                mine, resolve(cfg.metrics), seed=cfg.bootstrap_seed, n_boot=cfg.n_boot))
    return out


def _example_sets(jobs: list[Job]) -> list[dict[str, Any]]:
    """One kept set per system and setting: the lowest seed's (noise draw 0 for the floors)."""
    lowest: dict[tuple, Job] = {}
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


VOCODER = EvalFamily(name="vocoder", configure=configure, score=score, row_kinds=(KIND_MODEL, KIND_PRIOR_NOISE))


def run_evaluate(params_path: Path, features: Path, sweep_dir: Path, out: Path) -> dict[str, Any]:
    return run_family(VOCODER, params_path, sweep_dir, out, features)


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
