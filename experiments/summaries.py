"""summary.json, comparisons.json and metrics.json of the evaluate stage from the tidy score rows."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from experiments.spec import EvaluateConfig
from priorgrad import registry


def _per_utt_mean(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """utt -> mean over seeds of the scored values (None when every seed failed)."""
    by_utt: dict[str, list[float]] = defaultdict(list)
    seen: set[str] = set()
    for r in rows:
        seen.add(r["utt"])
        if r["value"] is not None:
            by_utt[r["utt"]].append(r["value"])
    return {u: (float(np.mean(by_utt[u])) if by_utt[u] else None) for u in sorted(seen)}


def aggregate(rows: list[dict[str, Any]], higher: dict[str, bool], cfg: EvaluateConfig
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """summary.json rows (per system/size/budget/T/metric) and comparisons.json rows."""
    from eval.stats import paired_comparison, summarize

    base, proposed = registry.baseline_and_proposed("vocoder")
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["system"], r["prior"], r["size"], r["n_params"], r["budget"], r["t_infer"], r["metric"])].append(r)
    summary, per_utt = [], {}
    for key in sorted(groups, key=lambda k: (k[2], k[4], k[5], k[6], k[0])):
        system, prior, size, n_params, budget, t, metric = key
        g = groups[key]
        utt_means = _per_utt_mean(g)
        per_utt[(system, size, budget, t, metric)] = utt_means
        # CIs are over utterances (each averaged over seeds): utterances are the sampling unit.
        stats = summarize(list(utt_means.values()), seed=cfg.bootstrap_seed, n_boot=cfg.n_boot)
        summary.append({"system": system, "prior": prior, "size": size, "n_params": n_params, "budget": budget,
                        "t_infer": t, "metric": metric, "n": stats["n"],
                        "n_failed": sum(1 for r in g if r["value"] is None), "n_seeds": len({r["seed"] for r in g}),
                        "mean": stats["mean"], "std": stats["std"], "ci_low": stats["ci_low"],
                        "ci_high": stats["ci_high"], "higher_is_better": higher[metric]})
    comparisons = []
    for (system, size, budget, t, metric), a in sorted(per_utt.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][3], kv[0][4])):
        if system != proposed or (base, size, budget, t, metric) not in per_utt:
            continue
        b = per_utt[(base, size, budget, t, metric)]
        row = {"size": size, "budget": budget, "t_infer": t, "metric": metric, "higher_is_better": higher[metric],
               "a": proposed, "b": base}
        try:
            row.update(paired_comparison(a, b, seed=cfg.bootstrap_seed, n_boot=cfg.n_boot))
        except ValueError as e:  # no utterance scored in both: say so instead of inventing a number
            row.update({"n": 0, "mean_diff": None, "ci_low": None, "ci_high": None, "p_wilcoxon": None,
                        "error": str(e)})
        comparisons.append(row)
    return summary, comparisons


def headline(comparisons: list[dict[str, Any]], summary: list[dict[str, Any]]) -> dict[str, Any]:
    """metrics.json for `dvc metrics show`: per setting and metric, both means and the paired difference."""
    base, proposed = registry.baseline_and_proposed("vocoder")
    means = {(s["system"], s["size"], s["budget"], s["t_infer"], s["metric"]): s["mean"] for s in summary}
    out: dict[str, Any] = {}
    for c in comparisons:
        setting = f"{c['size']}-b{c['budget']}-T{c['t_infer']}"
        out.setdefault(setting, {})[c["metric"]] = {
            proposed: means.get((proposed, c["size"], c["budget"], c["t_infer"], c["metric"])),
            base: means.get((base, c["size"], c["budget"], c["t_infer"], c["metric"])),
            "diff": c.get("mean_diff"), "ci_low": c.get("ci_low"), "ci_high": c.get("ci_high")}
    return out
