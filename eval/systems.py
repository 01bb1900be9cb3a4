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

import csv
import io
import logging
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from eval.files import write_json
from eval.pair import SPEC_LENGTH_POLICY, LengthPolicy
from eval.registry import METRICS
from priorgrad.fileio import write_text_atomic

log = logging.getLogger(__name__)

SCORE_COLUMNS = ["system", "utt", "metric", "value", "error"]
SUMMARY_COLUMNS = ["system", "metric", "n", "n_failed", "mean", "std", "ci_low", "ci_high", "higher_is_better",
                   "unit"]
COMPARISON_COLUMNS = ["metric", "a", "b", "n", "mean_diff", "ci_low", "ci_high", "p_wilcoxon", "higher_is_better",
                      "better", "error"]
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def compare_records(a_recs: Sequence[Mapping[str, Any]], b_recs: Sequence[Mapping[str, Any]],
                    names: Sequence[str], seed: int = 0, n_boot: int = 2000) -> dict[str, dict[str, Any]]:
    """Paired comparison (a - b) per metric, utterances paired by id; 'better' only if the CI excludes 0.

    A metric that cannot be compared (no utterance scored in both) gets null statistics and ``error``.
    This is the one place the command line calls eval.stats' comparison functions.
    """
    from eval.stats import paired_comparison, verdict

    out: dict[str, dict[str, Any]] = {}
    for name in names:
        a = {r["utt"]: r.get(name) for r in a_recs}
        b = {r["utt"]: r.get(name) for r in b_recs}
        hib = METRICS[name].higher_is_better
        try:
            res = paired_comparison(a, b, seed=seed, n_boot=n_boot)
        except ValueError as e:
            log.warning("%s: cannot compare (%s)", name, e)
            out[name] = {"n": 0, "mean_diff": None, "ci_low": None, "ci_high": None, "p_wilcoxon": None,
                         "higher_is_better": hib, "better": None, "error": str(e)}
            continue
        out[name] = {**res, "higher_is_better": hib, "better": verdict(res, hib)}
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


def _csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r[k]) for k in columns})
    return buf.getvalue()


def score_systems(ref_dir: str | os.PathLike | None, systems: Mapping[str, str | os.PathLike], baseline: str,
                  metrics: str | Sequence[str], out_dir: str | os.PathLike, workers: int = 1, *,
                  cache_path: str | os.PathLike | None = None, use_cache: bool = True, seed: int = 0,
                  n_boot: int = 2000, length_policy: LengthPolicy = SPEC_LENGTH_POLICY,
                  progress: bool | None = None) -> dict[str, Any]:
    """Score every system against ``ref_dir``, write the tables; returns {"summary", "comparisons"}.

    One score cache (default ``OUT/cache.sqlite``) serves all systems, so a re-run with one more
    system scores only that one.
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
            seed=seed, n_boot=n_boot, progress=progress, length_policy=length_policy)
    names: list[str] = list(summaries[baseline])

    score_rows = [{"system": s, "utt": r["utt"], "metric": m, "value": r.get(m), "error": r["errors"].get(m)}
                  for s, recs in records.items() for r in recs for m in names]
    summary_rows = [{"system": s, "metric": m, **{k: summ[m].get(k) for k in SUMMARY_COLUMNS[2:]}}
                    for s, summ in summaries.items() for m in names]
    comparisons: dict[str, dict[str, dict[str, Any]]] = {}
    for name in systems:
        if name != baseline:
            comparisons[name] = compare_records(records[name], records[baseline], names, seed=seed, n_boot=n_boot)
    comparison_rows = [{"metric": m, "a": s, "b": baseline, **res}
                       for s, per_metric in comparisons.items() for m, res in per_metric.items()]
    write_text_atomic(out_dir / "scores.csv", _csv(score_rows, SCORE_COLUMNS))
    write_text_atomic(out_dir / "summary.csv", _csv(summary_rows, SUMMARY_COLUMNS))
    write_text_atomic(out_dir / "comparisons.csv", _csv(comparison_rows, COMPARISON_COLUMNS))
    write_json(out_dir / "comparisons.json", {
        "baseline": baseline, "difference": "a - b, b = baseline, paired by utterance",
        "length_policy": length_policy.info(), "reference_dir": None if ref_dir is None else str(ref_dir),
        "systems": {s: str(d) for s, d in systems.items()}, "comparisons": comparisons})
    return {"summary": summaries, "comparisons": comparisons}

