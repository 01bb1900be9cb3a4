"""Several systems against one reference set: score each, one tidy table, paired comparisons to a baseline.

    python -m eval score-many --ref refs/ --gen hifigan=demo/hifigan --gen wavegrad=demo/wavegrad \
        --gen ours=gen/ --baseline hifigan --out cmp/ --length-tolerance 4hops

Writes ``OUT/<system>/{scores.jsonl,summary.json}`` (exactly what ``python -m eval score`` writes),
``OUT/scores.csv`` (tidy: system, utt, metric, value, error; one row per system x utterance x metric,
value empty where the metric failed and error giving why), ``OUT/summary.csv`` (system x metric: n,
n_failed, mean, std, CI) and ``OUT/comparisons.json`` / ``comparisons.csv`` (every other system
against the baseline, paired by utterance, a - b).

All statistics go through ``compare_records`` -> ``eval.stats`` (one call site), so a change of the
comparison method there reaches ``compare`` and ``score-many`` alike.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from eval.files import write_json
from eval.pair import SPEC_LENGTH_POLICY, Alignment, LengthPolicy
from eval.registry import METRICS
from priorgrad.core.fileio import format_csv, write_text_atomic

log = logging.getLogger(__name__)

SCORE_COLUMNS = ["system", "utt", "metric", "value", "error"]
SUMMARY_COLUMNS = ["system", "metric", "n", "n_failed", "mean", "std", "ci_low", "ci_high", "higher_is_better",
                   "unit"]
COMPARISON_COLUMNS = ["metric", "a", "b", "n", "n_seeds_a", "n_seeds_b", "mean_diff", "ci_low", "ci_high", "p_boot",
                      "higher_is_better", "judged", "not_judged", "margin", "outcome", "better", "error"]
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def compare_records(a_runs: Sequence[Sequence[Mapping[str, Any]]], b_runs: Sequence[Sequence[Mapping[str, Any]]],
                    names: Sequence[str], seed: int = 0, n_boot: int = 2000, min_seeds: int = 3,
                    min_n: int = 8, margins: Mapping[str, float] | None = None) -> dict[str, dict[str, Any]]:
    """a - b per metric; each side is a list of runs (one per training seed), each run its per-utterance records.

    The two-level bootstrap (seeds of each system, then the utterances both share) and the project's one
    judging rule (eval.aggregate): with fewer than ``min_seeds`` seeds per system or ``min_n`` utterances
    scored for every seed of both, the result is shown with judged = false and ``better`` null (one set of
    published samples is ONE trained network: its CI describes those samples, not the method). Otherwise
    ``better`` is "a"/"b" when the 95% CI excludes 0 and the estimate lies beyond the metric's equivalence
    margin (``margins``; inside it ``outcome`` is "negligible difference" and ``better`` null; a metric
    without a margin has no negligible zone). A metric that cannot be compared (no utterance
    scored for every seed of both) gets null statistics and ``error``. This is the one place the command
    line compares systems.
    """
    import numpy as np

    from eval.aggregate import NOT_JUDGED, Cell, Rule, ScoreCube, contrast, model_key, outcome

    runs = {"a": list(a_runs), "b": list(b_runs)}
    utts = sorted({r["utt"] for side in runs.values() for run in side for r in run})
    index = {u: i for i, u in enumerate(utts)}
    cells = {}
    for side, side_runs in runs.items():
        for name in names:
            values = np.full((len(side_runs), len(utts)), np.nan)
            present = np.zeros_like(values, dtype=bool)
            for s_i, run in enumerate(side_runs):
                for r in run:
                    present[s_i, index[r["utt"]]] = True
                    if r.get(name) is not None:
                        values[s_i, index[r["utt"]]] = float(r[name])
            cells[model_key(side, "", 0, 0, name)] = Cell(np.arange(len(side_runs)), values, present, side, 0)
    cube = ScoreCube(utts, cells, {m: METRICS[m].higher_is_better for m in names})
    margins = dict(margins or {})
    rule = Rule(min_seeds=min_seeds, min_utts=min_n, n_boot=n_boot, seed=seed, level=0.95, margins=margins)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        hib = METRICS[name].higher_is_better
        base = {"n_seeds_a": len(runs["a"]), "n_seeds_b": len(runs["b"]), "higher_is_better": hib,
                "margin": margins.get(name)}
        res = contrast(cube, [(1.0, model_key("a", "", 0, 0, name)), (-1.0, model_key("b", "", 0, 0, name))], rule)
        if res["estimate"] is None:
            why = "no utterance is scored for every seed of both systems"
            log.warning("%s: cannot compare (%s)", name, why)
            out[name] = {**base, "n": 0, "mean_diff": None, "ci_low": None, "ci_high": None, "p_boot": None,
                         "judged": False, "not_judged": why, "outcome": NOT_JUDGED, "better": None, "error": why}
            continue
        row = {**base, "n": res["n"], "n_dropped": res["n_dropped"], "dropped": res["dropped"],
               "mean_diff": res["estimate"], "ci_low": res["ci_low"], "ci_high": res["ci_high"],
               "p_boot": res["p"], "judged": res["judged"], "not_judged": res["not_judged"]}
        row["outcome"] = outcome(row)   # the one rule (eval.aggregate.outcome), as the report's markers
        row["better"] = {"a better": "a", "b better": "b"}.get(row["outcome"])
        out[name] = row
    return out


def parse_systems(items: Sequence[str]) -> dict[str, Path]:
    """``NAME=DIR`` (or a bare DIR, named by its folder) -> {name: dir}; names must be unique."""
    systems: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).name, item
        if not _NAME.fullmatch(name):
            raise ValueError(f"--gen {item!r}: system name {name!r} must be letters, digits, '_', '.', '+', '-'")
        if name in systems:
            raise ValueError(f"--gen {item!r}: system name {name!r} given twice (use NAME=DIR to tell them apart)")
        systems[name] = Path(path)
    if len(systems) < 2:
        raise ValueError("score-many needs at least two --gen systems (one of them the baseline)")
    return systems


def score_systems(ref_dir: str | os.PathLike | None, systems: Mapping[str, str | os.PathLike], baseline: str,
                  metrics: str | Sequence[str], out_dir: str | os.PathLike, workers: int = 1, *,
                  cache_path: str | os.PathLike | None = None, use_cache: bool = True, seed: int = 0,
                  n_boot: int = 2000, length_policy: LengthPolicy = SPEC_LENGTH_POLICY,
                  progress: bool | None = None, alignment: Alignment | None = None, pair_by: str | None = None,
                  texts: Mapping[str, str] | None = None, text_source: str | None = None,
                  margins: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Score every system against ``ref_dir``, write the tables; returns {"summary", "comparisons", "records"}
    (records: each system's per-utterance records, as ``score_dirs`` returns them).

    One score cache (default ``OUT/cache.sqlite``) serves all systems, so a re-run with one more
    system scores only that one. ``alignment``, ``pair_by`` and ``texts`` are ``score_dirs``' and apply
    to every system (``--align dtw`` for text-to-speech systems' published samples).
    """
    from eval.runner import EvalInputError, score_dirs

    out_dir = Path(out_dir)
    if baseline not in systems:
        raise EvalInputError(f"--baseline {baseline!r} is not one of the systems ({', '.join(systems)})")
    cache = Path(cache_path) if cache_path is not None else out_dir / "cache.sqlite"
    records: dict[str, list[dict[str, Any]]] = {}
    summaries: dict[str, dict[str, dict[str, Any]]] = {}
    for name, gen_dir in systems.items():
        log.info("system %s: %s", name, gen_dir)
        records[name], summaries[name] = score_dirs(
            ref_dir, gen_dir, metrics, out_dir / name, workers=workers, cache_path=cache, use_cache=use_cache,
            seed=seed, n_boot=n_boot, progress=progress, length_policy=length_policy, alignment=alignment,
            pair_by=pair_by, texts=texts, text_source=text_source)
    names: list[str] = list(summaries[baseline])

    score_rows = [{"system": s, "utt": r["utt"], "metric": m, "value": r.get(m), "error": r["errors"].get(m)}
                  for s, recs in records.items() for r in recs for m in names]
    summary_rows = [{"system": s, "metric": m, **{k: summ[m].get(k) for k in SUMMARY_COLUMNS[2:]}}
                    for s, summ in summaries.items() for m in names]
    comparisons: dict[str, dict[str, dict[str, Any]]] = {}
    for name in systems:
        if name != baseline:
            # each folder is one trained network (one "seed"): the CI describes these samples; the one rule
            # marks the comparison "not judged" as a statement about methods
            comparisons[name] = compare_records([records[name]], [records[baseline]], names, seed=seed,
                                                n_boot=n_boot, margins=margins)
    comparison_rows = [{"metric": m, "a": s, "b": baseline, **res}
                       for s, per_metric in comparisons.items() for m, res in per_metric.items()]
    write_text_atomic(out_dir / "scores.csv", format_csv(score_rows, SCORE_COLUMNS))
    write_text_atomic(out_dir / "summary.csv", format_csv(summary_rows, SUMMARY_COLUMNS))
    write_text_atomic(out_dir / "comparisons.csv", format_csv(comparison_rows, COMPARISON_COLUMNS))
    doc: dict[str, Any] = {
        "baseline": baseline, "difference": "a - b, b = baseline, paired by utterance",
        "length_policy": length_policy.info(), "reference_dir": None if ref_dir is None else str(ref_dir),
        "systems": {s: str(d) for s, d in systems.items()}, "comparisons": comparisons}
    # only when given, so a plain run's file is as before
    if alignment is not None:
        doc["alignment"] = alignment.info()
    if pair_by is not None:
        doc["pair_by"] = pair_by
    write_json(out_dir / "comparisons.json", doc)
    return {"summary": summaries, "comparisons": comparisons, "records": records}

