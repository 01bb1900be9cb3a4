"""The paper-style results table: system x training steps x T_infer x network size, mean +- 95% CI.

Rows follow the paper's grouping (size, then training budget, then T_infer, DiffWave before
PriorGrad) so the two systems at one setting sit next to each other. Per column the best mean is
marked, and a PriorGrad cell carries a marker when its paired difference to DiffWave at the same
setting has a 95% CI that excludes 0 (from comparisons.json).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from eval.stats import verdict
from reports.metrics_info import MetricInfo, metric_info

SYSTEM_LABELS = {"diffwave": "DiffWave", "priorgrad": "PriorGrad"}
SYSTEM_ORDER = {"diffwave": 0, "priorgrad": 1}
MARK_BETTER = "\u25b2"   # PriorGrad significantly better than DiffWave at this setting
MARK_WORSE = "\u25bc"    # PriorGrad significantly worse


def fmt_params(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 1_000:
        return f"{n / 1e3:.1f}K"
    return str(n)


def significance(row: pd.Series | dict) -> str:
    """'better' / 'worse' (for PriorGrad, a = priorgrad) / 'ns' from a comparisons.json record.

    The rule is eval's own (eval.stats.verdict: the CI of a - b excludes 0); a missing CI (NaN)
    is 'ns'."""
    winner = verdict({"ci_low": float(row["ci_low"]), "ci_high": float(row["ci_high"])},
                     bool(row["higher_is_better"]))
    return {"a": "better", "b": "worse"}.get(winner, "ns")


@dataclass
class Cell:
    text: str                 # "3.12 ± 0.05" or "n/a"
    mean: float | None
    ci: str                   # "[3.07, 3.17]" for a tooltip
    best: bool = False
    marker: str = ""          # MARK_BETTER / MARK_WORSE / ""
    n_failed: int = 0


@dataclass
class Row:
    system: str
    system_label: str
    size: str
    n_params: int
    params_label: str
    budget: int
    t_infer: int
    n: int
    cells: list[Cell] = field(default_factory=list)


@dataclass
class ResultsTable:
    metrics: list[MetricInfo]
    rows: list[Row]
    unlisted_metrics: list[str]      # scored but not among report.metrics (named in a note, not hidden)
    n_significant: int


def metric_directions(summary: pd.DataFrame) -> dict[str, bool]:
    """metric -> higher_is_better from summary.json, failing on a metric recorded both ways."""
    out: dict[str, bool] = {}
    for metric, grp in summary.groupby("metric", sort=True):
        vals = set(grp["higher_is_better"].astype(bool))
        if len(vals) != 1:
            raise ValueError(f"summary.json: metric {metric!r} has inconsistent higher_is_better values")
        out[str(metric)] = vals.pop()
    return out


def size_order(summary: pd.DataFrame) -> list[str]:
    """Sizes from the largest network to the smallest (the paper lists base before small)."""
    sizes = summary.groupby("size")["n_params"].max().reset_index()
    sizes = sizes.sort_values(["n_params", "size"], ascending=[False, True])
    return list(sizes["size"])


def build_results_table(summary: pd.DataFrame, comparisons: pd.DataFrame, wanted: list[str]) -> ResultsTable:
    directions = metric_directions(summary)
    present = [m for m in wanted if m in directions]
    if not present:
        raise ValueError(f"summary.json scores none of the report's metrics {wanted} "
                         f"(it has {sorted(directions)}); set report.metrics in params.yaml")
    infos = [metric_info(m, directions[m]) for m in present]
    unlisted = sorted(set(directions) - set(present))

    sig: dict[tuple, str] = {}
    for _, c in comparisons.iterrows():
        sig[(str(c["size"]), int(c["budget"]), int(c["t_infer"]), str(c["metric"]))] = significance(c)

    rank = {s: i for i, s in enumerate(size_order(summary))}
    keys = summary[["system", "size", "n_params", "budget", "t_infer"]].drop_duplicates()
    keys = keys.assign(_size=keys["size"].map(rank), _sys=keys["system"].map(SYSTEM_ORDER))
    keys = keys.sort_values(["_size", "budget", "t_infer", "_sys"], kind="mergesort")
    by_key = {k: g for k, g in summary.groupby(["system", "size", "budget", "t_infer"], sort=True)}

    rows: list[Row] = []
    n_sig = 0
    for _, k in keys.iterrows():
        grp = by_key[(k["system"], k["size"], k["budget"], k["t_infer"])]
        by_metric = {str(r["metric"]): r for _, r in grp.iterrows()}
        cells: list[Cell] = []
        for info in infos:
            r = by_metric.get(info.key)
            if r is None or pd.isna(r["mean"]):
                failed = int(r["n_failed"]) if r is not None else 0
                cells.append(Cell("n/a", None, "", n_failed=failed))
                continue
            half = (r["ci_high"] - r["ci_low"]) / 2 if not pd.isna(r["ci_low"]) else float("nan")
            text = f"{info.fmt(r['mean'])} \u00b1 {info.fmt(half)}" if not math.isnan(half) else info.fmt(r["mean"])
            ci = f"95% CI [{info.fmt(r['ci_low'])}, {info.fmt(r['ci_high'])}], n={int(r['n'])}"
            cell = Cell(text, float(r["mean"]), ci, n_failed=int(r["n_failed"]))
            if k["system"] == "priorgrad":
                s = sig.get((str(k["size"]), int(k["budget"]), int(k["t_infer"]), info.key), "ns")
                cell.marker = {"better": MARK_BETTER, "worse": MARK_WORSE}.get(s, "")
                n_sig += s != "ns"
            cells.append(cell)
        n = max((int(r["n"]) for r in by_metric.values()), default=0)
        rows.append(Row(str(k["system"]), SYSTEM_LABELS[str(k["system"])], str(k["size"]), int(k["n_params"]),
                        fmt_params(int(k["n_params"])), int(k["budget"]), int(k["t_infer"]), n, cells))

    # Best per column, in the metric's own direction (ties are all marked).
    for j, info in enumerate(infos):
        means = [r.cells[j].mean for r in rows if r.cells[j].mean is not None]
        if not means:
            continue
        best = max(means) if info.higher_is_better else min(means)
        for r in rows:
            if r.cells[j].mean is not None and info.fmt(r.cells[j].mean) == info.fmt(best):
                r.cells[j].best = True
    return ResultsTable(infos, rows, unlisted, n_sig)
