"""The paper-style results table: system x training steps x T_infer x network size, mean +- 95% CI.

Rows follow the paper's grouping (size, then training budget, then T_infer, DiffWave before
PriorGrad) so the two systems at one setting sit next to each other, then one "prior noise" row per
prior (its own sample scored without denoising: the floor). Every cell's CI is eval.aggregate's
two-level bootstrap (seeds, then utterances), and each row shows its seeds and utterances. Per column
the best trained system is bold; a PriorGrad cell carries a marker only when its comparison with
DiffWave at the same setting is judged by the one rule (eval.aggregate.judge), its 95% CI excludes 0
and its estimate lies beyond the metric's equivalence margin (eval.aggregate.outcome); a system
setting at its own floor on a primary metric (eval.aggregate.floor_status, the test the claims' floor
gate uses) is flagged.

The same table serves every family: the pairs are registry.comparisons(family), the headline pair
marked with filled triangles, a second pair (the acoustic B2 comparison) with open ones.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from eval.aggregate import (AT_FLOOR, FLOOR, FLOOR_NOT_JUDGED, MEAN_REFERENCE, NEGLIGIBLE, NOT_JUDGED, RECORDING,
                            SYSTEM_LABELS,
                            SYSTEM_ORDER, floor_label, floor_status, outcome)
from priorgrad.core import registry
from reports.metrics_info import MetricInfo, metric_info

MARK_BETTER = "\u25b2"   # PriorGrad significantly better than DiffWave at this setting
MARK_WORSE = "\u25bc"    # PriorGrad significantly worse
MARK_BETTER_2 = "\u25b3"  # the treatment significantly better than a family's second baseline (acoustic: B2)
MARK_WORSE_2 = "\u25bd"
MARK_BETTER_3 = "\u21e7"  # a third pair (vocoder: SpecGrad - PriorGrad; the second is SpecGrad - DiffWave)
MARK_WORSE_3 = "\u21e9"
# per registry.comparisons(family) pair that was run (ResultsTable.pairs), in order
PAIR_MARKS = [(MARK_BETTER, MARK_WORSE), (MARK_BETTER_2, MARK_WORSE_2), (MARK_BETTER_3, MARK_WORSE_3)]
FLOOR_FLAG = "not better than its prior noise"
FLOOR_FLAGS = {"vocoder": FLOOR_FLAG, "acoustic": "not better than its floor (its prior draw)"}
# the acoustic mean (regression) reference row (kind mean_reference): shown, never a floor, never flagged
MEAN_REFERENCE_LABEL = "mean (regression) reference: mu_ph alone, not a floor"
# the acoustic E3 table's recordings row (kind recording): the recogniser's WER / CER on real speech, the floor
# of what it can measure; shown, never compared
RECORDING_LABEL = "recordings (what the recogniser and DNSMOS give real speech; not a system)"


def fmt_params(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 1_000:
        return f"{n / 1e3:.1f}K"
    return str(n)


def significance(row: pd.Series | dict) -> str:
    """'better' / 'worse' (for a, PriorGrad) / 'negligible' / 'ns' / 'not judged' of a comparisons.json
    record, by the one rule of eval.aggregate.outcome (a comparison that breaks the rule is never significant;
    a significant one inside the equivalence margin is negligible and gets no marker)."""
    o = outcome(dict(row))
    return {"a better": "better", "b better": "worse", NOT_JUDGED: "not judged", NEGLIGIBLE: "negligible"}.get(o, "ns")


@dataclass
class Cell:
    text: str                 # "3.12 ± 0.05" or "n/a"
    mean: float | None
    ci: str                   # "95% CI [3.07, 3.17], 3 seeds x 8 utterances" for a tooltip
    best: bool = False
    marker: str = ""          # MARK_BETTER / MARK_WORSE / "" (the family's headline pair)
    other_markers: list[str] = field(default_factory=list)   # the family's further pairs (MARK_*_2)
    n_failed: int = 0
    floor_flag: bool = False  # at its own floor on this metric (eval.aggregate.floor_status, judged comparison)


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
    n_seeds: int
    is_floor: bool = False       # shown without a setting (a floor, or the mean reference)
    is_reference: bool = False   # the acoustic mean (regression) reference: not a floor, never compared
    cells: list[Cell] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)   # e.g. "not better than its prior noise (MR-STFT)"


@dataclass
class ResultsTable:
    metrics: list[MetricInfo]
    rows: list[Row]
    unlisted_metrics: list[str]      # scored but not among report.metrics (named in a note, not hidden)
    n_significant: int
    n_not_judged: int = 0            # PriorGrad cells whose comparison with DiffWave breaks the rule
    floor_beaten: list[str] = field(default_factory=list)      # settings that beat their floor on every primary
    floor_not_beaten: list[str] = field(default_factory=list)
    floor_not_judged: list[str] = field(default_factory=list)
    floor_flag: str = FLOOR_FLAG
    pairs: list[tuple[str, str]] = field(default_factory=list)   # (treatment, baseline), headline first


def metric_directions(summary: pd.DataFrame) -> dict[str, bool]:
    """metric -> higher_is_better from summary.json, failing on a metric recorded both ways."""
    out: dict[str, bool] = {}
    for metric, grp in summary.groupby("metric", sort=True):
        vals = set(grp["higher_is_better"].astype(bool))
        if len(vals) != 1:
            raise ValueError(f"summary.json: metric {metric!r} has inconsistent higher_is_better values")
        out[str(metric)] = vals.pop()
    return out


def models(summary: pd.DataFrame) -> pd.DataFrame:
    """The trained systems' rows of summary.json (without the prior-noise floors)."""
    return summary[summary["kind"] == "model"] if "kind" in summary.columns else summary


def size_order(summary: pd.DataFrame) -> list[str]:
    """Sizes from the largest network to the smallest (the paper lists base before small)."""
    sizes = models(summary).groupby("size")["n_params"].max().reset_index()
    sizes = sizes.sort_values(["n_params", "size"], ascending=[False, True])
    return list(sizes["size"])


def _cell(info: MetricInfo, r) -> Cell:
    if r is None or pd.isna(r["mean"]):
        return Cell("n/a", None, "", n_failed=int(r["n_failed"]) if r is not None else 0)
    half = (r["ci_high"] - r["ci_low"]) / 2 if not pd.isna(r["ci_low"]) else float("nan")
    text = f"{info.fmt(r['mean'])} \u00b1 {info.fmt(half)}" if not math.isnan(half) else info.fmt(r["mean"])
    ci = (f"95% CI [{info.fmt(r['ci_low'])}, {info.fmt(r['ci_high'])}], {int(r['n_seeds'])} seed(s) x "
          f"{int(r['n'])} utterances")
    if int(r["n_dropped"]):
        ci += f"; {int(r['n_dropped'])} utterance(s) dropped: {r['dropped']}"
    return Cell(text, float(r["mean"]), ci, n_failed=int(r["n_failed"]))


def build_results_table(summary: pd.DataFrame, comparisons: pd.DataFrame, wanted: list[str],
                        primary: list[str] | None = None, family: str = "vocoder") -> ResultsTable:
    """Model rows (size, budget, T_infer; baselines before the treatment) then one floor row per system."""
    run = set(models(summary).get("system", []))
    # only the pairs whose systems were both run: no empty markers or legend for a system outside the sweep
    pairs = [p for p in registry.comparisons(family) if set(p) <= run]
    floor_flag = FLOOR_FLAGS[family]
    directions = metric_directions(summary)
    present = [m for m in wanted if m in directions]
    if not present:
        raise ValueError(f"summary.json scores none of the report's metrics {wanted} "
                         f"(it has {sorted(directions)}); set report.metrics in params.yaml")
    primary = [m for m in (primary or []) if m in directions]
    infos = [metric_info(m, directions[m]) for m in present]
    unlisted = sorted(set(directions) - set(present))
    if "kind" not in comparisons.columns:
        comparisons = comparisons.assign(kind="systems")

    sig: dict[tuple, str] = {}
    floor: dict[tuple, str] = {}
    for _, c in comparisons.iterrows():
        k = (str(c["size"]), int(c["budget"]), int(c["t_infer"]), str(c["metric"]))
        if c["kind"] == "systems":
            sig[(str(c["a"]), str(c["b"])) + k] = significance(c)
        else:
            floor[(str(c["a"]),) + k] = floor_status(c)

    msum = models(summary)
    rank = {s: i for i, s in enumerate(size_order(summary))}
    keys = msum[["system", "size", "n_params", "budget", "t_infer"]].drop_duplicates()
    keys = keys.assign(_size=keys["size"].map(rank), _sys=keys["system"].map(SYSTEM_ORDER))
    keys = keys.sort_values(["_size", "budget", "t_infer", "_sys"], kind="mergesort")
    by_key = {k: g for k, g in msum.groupby(["system", "size", "budget", "t_infer"], sort=True)}

    rows: list[Row] = []
    n_sig = n_nj = 0
    beaten, not_beaten, floor_nj = [], [], []
    for _, k in keys.iterrows():
        system, size, budget, t = str(k["system"]), str(k["size"]), int(k["budget"]), int(k["t_infer"])
        grp = by_key[(k["system"], k["size"], k["budget"], k["t_infer"])]
        by_metric = {str(r["metric"]): r for _, r in grp.iterrows()}
        if not any(info.key in by_metric for info in infos):
            continue  # none of this table's metrics is scored at this setting (E3: the largest budget, one T only)
        cells: list[Cell] = []
        for info in infos:
            cell = _cell(info, by_metric.get(info.key))
            for j, (treatment, baseline) in enumerate(pairs):
                if cell.mean is None or system != treatment:
                    continue
                s = sig.get((treatment, baseline, size, budget, t, info.key), "ns")
                better, worse = PAIR_MARKS[min(j, len(PAIR_MARKS) - 1)]
                mark = {"better": better, "worse": worse}.get(s, "")
                if j == 0:
                    cell.marker = mark
                elif mark:
                    cell.other_markers.append(mark)
                n_sig += s in ("better", "worse")
                n_nj += s == "not judged"
            f = floor.get((system, size, budget, t, info.key))
            cell.floor_flag = f == AT_FLOOR
            cells.append(cell)
        setting = f"{SYSTEM_LABELS[system]} {size} {budget} steps T={t}"
        row = Row(system, SYSTEM_LABELS[system], size, int(k["n_params"]), fmt_params(int(k["n_params"])), budget,
                  t, max((int(r["n"]) for r in by_metric.values()), default=0),
                  max((int(r["n_seeds"]) for r in by_metric.values()), default=0), cells=cells)
        # the primaries scored at this setting (E3's only at the largest budget and e3_t_infer)
        here = [m for m in primary if m in by_metric]
        fl = [floor.get((system, size, budget, t, m)) for m in here]
        if here and all(f is not None for f in fl):
            # a judged primary on which the setting does not beat its floor settles it (even when another
            # primary could not be judged); only otherwise does a not-judged primary leave it open
            bad = [metric_info(m, directions[m]).label for m, f in zip(here, fl) if f == AT_FLOOR]
            if bad:
                row.flags.append(f"{floor_flag} ({', '.join(bad)})")
                not_beaten.append(setting)
            elif FLOOR_NOT_JUDGED in fl:
                floor_nj.append(setting)
            else:
                beaten.append(setting)
        rows.append(row)

    fsum = summary[summary["kind"] == FLOOR] if "kind" in summary.columns else summary.iloc[0:0]
    for system in sorted(set(fsum["system"]), key=lambda s: SYSTEM_ORDER.get(s, 9)):
        grp = fsum[fsum["system"] == system]
        by_metric = {str(r["metric"]): r for _, r in grp.iterrows()}
        rows.append(Row(system, floor_label(system), "", 0, "", 0, 0,
                        max(int(r["n"]) for r in by_metric.values()),
                        max(int(r["n_seeds"]) for r in by_metric.values()), is_floor=True,
                        cells=[_cell(info, by_metric.get(info.key)) for info in infos]))
    for kind, label in ((MEAN_REFERENCE, MEAN_REFERENCE_LABEL), (RECORDING, RECORDING_LABEL)):
        msum = summary[summary["kind"] == kind] if "kind" in summary.columns else summary.iloc[0:0]
        by_metric = {str(r["metric"]): r for _, r in msum.iterrows()}
        if any(info.key in by_metric for info in infos):  # the recordings: E3's metrics only
            rows.append(Row(str(msum["system"].iloc[0]), label, "", 0, "", 0, 0,
                            max(int(r["n"]) for r in by_metric.values()),
                            max(int(r["n_seeds"]) for r in by_metric.values()), is_floor=True, is_reference=True,
                            cells=[_cell(info, by_metric.get(info.key)) for info in infos]))

    # Best per column among the trained systems, in the metric's own direction (ties are all marked).
    for j, info in enumerate(infos):
        means = [r.cells[j].mean for r in rows if r.cells[j].mean is not None and not r.is_floor]
        if not means:
            continue
        best = max(means) if info.higher_is_better else min(means)
        for r in rows:
            if not r.is_floor and r.cells[j].mean is not None and info.fmt(r.cells[j].mean) == info.fmt(best):
                r.cells[j].best = True
    return ResultsTable(infos, rows, unlisted, n_sig, n_nj, beaten, not_beaten, floor_nj, floor_flag,
                        [tuple(p) for p in pairs])
