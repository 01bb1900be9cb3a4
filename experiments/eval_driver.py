"""The one evaluate driver: a family's trials scored, judged by the one rule, written as the stage files.

The family (experiments.eval_family.EvalFamily) synthesises and scores; the driver does what both stages
share: the trial list, the judging rule (eval.rule, as the report applies it), the files of eval/contract.py
(scores.csv, summary.json, comparisons.json, rtf.csv, audio/, provenance.json, metrics.json) and each run's
test scores into its MLflow run.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from eval.contract import (COMPARISONS_JSON, METRICS_JSON, PROVENANCE_JSON, RTF_COLUMNS, RTF_CSV, SCORE_COLUMNS,
                           SCORES_CSV, SUMMARY_JSON, TRIALS_JSON, write_csv)
from experiments.eval_family import EvalFamily, EvalRun, FamilyScores
from experiments.testset import EvaluateError
from priorgrad.core import registry
from priorgrad.core.fileio import write_json_atomic

log = logging.getLogger("experiments.eval_driver")

REQUIRED = ("trial", "prior", "size", "n_params", "seed", "checkpoints")


def _sweep_stage(family: str) -> str:
    return "sweep" if family == "vocoder" else f"{family} sweep"  # the stage names of dvc.yaml


def load_trials(sweep_dir: Path, family: str = "vocoder") -> list[dict[str, Any]]:
    """A family's sweep trials.json, checked: every error names the file and the trial."""
    path = sweep_dir / TRIALS_JSON
    if not path.exists():
        stage = _sweep_stage(family)
        raise EvaluateError(f"{path}: {stage} trial list not found (run the {stage} stage first)")
    try:
        trials = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise EvaluateError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(trials, list) or not trials:
        raise EvaluateError(f"{path}: expected a non-empty list of trials")
    known = registry.prior_names(family)
    for t in trials:
        _check_trial(path, t, family, known)
    names = [t["trial"] for t in trials]
    if len(set(names)) != len(names):
        raise EvaluateError(f"{path}: duplicate trial names")
    return trials


def _check_trial(path: Path, t: Any, family: str, known: list[str]) -> None:
    if not isinstance(t, dict):
        raise EvaluateError(f"{path}: every trial must be an object, got {t!r}")
    missing = [k for k in REQUIRED if k not in t]
    if missing:
        raise EvaluateError(f"{path}: trial {t.get('trial')!r} lacks {missing}")
    if (t.get("family") or family) != family:  # unnamed (older sweeps, gpu_comparison imports): the caller's
        raise EvaluateError(f"{path}: trial {t['trial']}: family {t['family']!r}, expected {family!r} "
                            f"(each family's trials go to its own evaluate stage)")
    if t["prior"] not in known:
        raise EvaluateError(f"{path}: trial {t['trial']}: unknown {family} prior {t['prior']!r} (known: {known})")
    if not isinstance(t["checkpoints"], dict) or not t["checkpoints"]:
        raise EvaluateError(f"{path}: trial {t['trial']}: 'checkpoints' must map budgets to checkpoint paths")


def run_family(family: EvalFamily, params_path: Path, sweep_dir: Path, out: Path, sources: Any) -> dict[str, Any]:
    """The stage: settings (validated first, so a params error costs nothing), rule, trials, the family's
    scores, the stage files, MLflow. Returns {"n_rows", "n_comparisons", ...the family's extra}."""
    from eval.rule import load_rule
    from experiments.spec import project_root, tracking_config
    from priorgrad.core.config import load_params

    params = load_params(params_path)
    settings = family.configure(params_path, params)
    rule = load_rule(params_path, family.name)  # the one judging rule, as the report applies it
    tcfg = tracking_config(params)
    root = project_root(params_path.resolve().parent)
    trials = load_trials(sweep_dir, family.name)
    scores = family.score(EvalRun(params_path, params, settings, sources, root, trials, sweep_dir / TRIALS_JSON,
                                  out / "work"))
    comparisons = write_outputs(family, out, scores, rule)
    if tcfg.enabled:
        from experiments.eval_tracking import log_run_scores
        from experiments.trackers import default_tracking_uri

        uri = default_tracking_uri(root, tcfg.uri)
        for trial in trials:  # tracking loss is reported by the tracker, never fatal
            log_run_scores(uri, trial, family, scores.run_scores, out / COMPARISONS_JSON, comparisons,
                           tcfg.timeout_s)
    return {"n_rows": len(scores.rows), "n_comparisons": len(comparisons), **scores.extra}


def write_outputs(family: EvalFamily, out: Path, scores: FamilyScores, rule: Any) -> list[dict[str, Any]]:
    """Statistics (eval.aggregate, the report's own) and the stage files; returns the comparisons."""
    import pandas as pd

    from eval.aggregate import aggregate, headline
    from experiments.examples import copy_examples

    bad = sorted({r["kind"] for r in scores.rows} - set(family.row_kinds))
    if bad:  # a family's rows are the kinds it declares: the report reads each kind its own way
        raise EvaluateError(f"{family.name} evaluate: rows of undeclared kind(s) {bad}")
    rows = [{c: r[c] for c in SCORE_COLUMNS} for r in scores.rows]
    summary, comparisons = aggregate(pd.DataFrame(rows, columns=SCORE_COLUMNS), scores.higher, rule,
                                     family=family.name)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / SCORES_CSV, rows, SCORE_COLUMNS)
    write_json_atomic(out / SUMMARY_JSON, summary)
    write_json_atomic(out / COMPARISONS_JSON, comparisons)
    write_csv(out / RTF_CSV, [{"system": s, "size": z, "n_params": n, "t_infer": t, "rtf": float(np.mean(v)),
                               "device": d} for (s, z, n, t, d), v in sorted(scores.rtf.items())], RTF_COLUMNS)
    ex = scores.examples
    copy_examples(out, ex.ref_dir, ex.utts, ex.n, ex.sets)
    write_json_atomic(out / PROVENANCE_JSON, scores.provenance)
    write_json_atomic(out / METRICS_JSON, headline(summary, comparisons))
    return comparisons
