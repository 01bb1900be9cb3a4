"""Verdicts on the paper's claims, only as far as the 95% confidence intervals allow.

Each claim is tested on a set of paired comparisons (PriorGrad - DiffWave on the same utterances, at
equal size, training steps and T_infer) from comparisons.json. A comparison counts for a system only
when its CI excludes 0. The rule, stated in the report too:
  supported     - no comparison favours DiffWave, and at least `min_fraction` of them (and at
                  least one) favour PriorGrad;
  refuted       - the mirror image;
  inconclusive  - anything else (no significant difference, too few, or both directions).
A comparison over fewer than `min_n` utterances is shown but not judged: a percentile bootstrap
over a handful of values gives intervals that are too narrow to trust. No correction for multiple comparisons is applied; the counts are shown so a reader can judge.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from reports.metrics_info import metric_info
from reports.tables import fmt_params, significance


@dataclass
class Evidence:
    size: str
    n_params: str
    budget: int
    t_infer: int
    metric: str
    n: int
    mean_diff: str
    ci: str
    p: str
    outcome: str          # "PriorGrad better" | "DiffWave better" | "no significant difference"


@dataclass
class Claim:
    key: str
    title: str
    scope: str            # which comparisons were used, in words
    verdict: str          # supported | refuted | inconclusive
    reason: str
    wins: int = 0
    losses: int = 0
    total: int = 0
    evidence: list[Evidence] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _verdict(wins: int, losses: int, total: int, min_fraction: float, unjudged: int = 0,
             min_n: int = 0) -> tuple[str, str]:
    counts = (f"{wins} of {total} comparisons favour PriorGrad with a 95% CI excluding 0, "
              f"{losses} favour DiffWave, {total - wins - losses - unjudged} show no significant difference")
    if unjudged:
        counts += f", {unjudged} not judged (fewer than {min_n} utterances)"
    if total == 0:
        return "inconclusive", "no comparisons in these runs cover this claim"
    if unjudged == total:
        return "inconclusive", (f"none of the {total} comparisons has {min_n} or more utterances, so none is judged "
                                "(score more test utterances: evaluate.n_utterances)")
    need = max(1, math.ceil(min_fraction * total))
    if losses == 0 and wins >= need:
        return "supported", counts
    if wins == 0 and losses >= need:
        return "refuted", counts
    if wins and losses:
        return "inconclusive", counts + " (significant in both directions)"
    return "inconclusive", counts + f" (the rule needs {need} of {total} in one direction and none against)"


def _evidence(comps: pd.DataFrame, n_params: dict[str, int], min_n: int) -> tuple[list[Evidence], int, int, int]:
    rows, wins, losses, unjudged = [], 0, 0, 0
    for _, c in comps.iterrows():
        info = metric_info(str(c["metric"]), bool(c["higher_is_better"]))
        s = significance(c) if int(c["n"]) >= min_n else "few"
        wins += s == "better"
        losses += s == "worse"
        unjudged += s == "few"
        ok = not pd.isna(c["ci_low"])
        rows.append(Evidence(
            size=str(c["size"]), n_params=fmt_params(n_params.get(str(c["size"]), 0)),
            budget=int(c["budget"]), t_infer=int(c["t_infer"]), metric=info.heading, n=int(c["n"]),
            mean_diff=f"{c['mean_diff']:+.{info.decimals + 1}f}" if not pd.isna(c["mean_diff"]) else "n/a",
            ci=f"[{c['ci_low']:+.{info.decimals + 1}f}, {c['ci_high']:+.{info.decimals + 1}f}]" if ok else "n/a",
            p=f"{c['p_wilcoxon']:.3g}" if not pd.isna(c["p_wilcoxon"]) else "n/a",
            outcome={"better": "PriorGrad better", "worse": "DiffWave better",
                     "few": f"not judged (n < {min_n})"}.get(s, "no significant difference")))
    return rows, wins, losses, unjudged


def _sort(comps: pd.DataFrame, n_params: dict[str, int], metrics: list[str]) -> pd.DataFrame:
    order = {m: i for i, m in enumerate(metrics)}
    return comps.assign(_np=comps["size"].map(lambda s: -n_params.get(s, 0)),
                        _m=comps["metric"].map(order)).sort_values(
        ["_np", "size", "budget", "t_infer", "_m"], kind="mergesort").drop(columns=["_np", "_m"])


def _make(key: str, title: str, scope: str, comps: pd.DataFrame, n_params: dict[str, int],
          metrics: list[str], min_fraction: float, min_n: int) -> Claim:
    comps = _sort(comps, n_params, metrics)
    ev, wins, losses, unjudged = _evidence(comps, n_params, min_n)
    verdict, reason = _verdict(wins, losses, len(ev), min_fraction, unjudged, min_n)
    return Claim(key, title, scope, verdict, reason, wins, losses, len(ev), ev)


def steps_to_reach(convergence: pd.DataFrame, metric: str, higher_is_better: bool) -> list[str]:
    """Descriptive convergence numbers per size: the step at which PriorGrad's seed-mean curve first
    reaches DiffWave's final seed-mean value (longest budget). Not a test: no CI, stated as such."""
    out: list[str] = []
    df = convergence[convergence["metric"].str.removeprefix("valid/") == metric]
    for size in sorted(df["size"].unique()):
        d = df[df["size"] == size]
        d = d[d["budget"] == d["budget"].max()]
        curves = d.groupby(["prior", "step"])["value"].mean()
        if "standard" not in curves.index.get_level_values(0) or "energy" not in curves.index.get_level_values(0):
            continue
        std, eng = curves.loc["standard"], curves.loc["energy"]
        last = int(std.index.max())
        target = float(std.loc[last])
        info = metric_info(metric, higher_is_better)
        reached = eng[(eng >= target) if higher_is_better else (eng <= target)]
        when = f"step {int(reached.index.min())}" if not reached.empty else "not within the run"
        out.append(f"{size}: DiffWave's {info.label} at its final step {last} is {info.fmt(target)} "
                   f"(seed mean); PriorGrad first reaches it at {when} "
                   f"(its own final value {info.fmt(float(eng.loc[eng.index.max()]))}).")
    return out


def evaluate_claims(comparisons: pd.DataFrame, summary: pd.DataFrame, convergence: pd.DataFrame,
                    metrics: list[str], few_steps: list[int], min_fraction: float,
                    convergence_metric: str | None, min_n: int = 0) -> list[Claim]:
    comps = comparisons[comparisons["metric"].isin(metrics)]
    n_params = {str(s): int(n) for s, n in summary.groupby("size")["n_params"].max().items()}
    claims: list[Claim] = []

    # 1. Faster convergence: at equal training steps PriorGrad is better. Tested at the longest
    #    inference schedule so the few-step effect (claim 2) does not leak into it.
    t_full = int(comps["t_infer"].max()) if not comps.empty else 0
    c1 = _make("convergence", "Faster convergence: at equal training steps PriorGrad scores better",
               f"all sizes and training budgets, at T_infer = {t_full} (the longest schedule run)",
               comps[comps["t_infer"] == t_full], n_params, metrics, min_fraction, min_n)
    if convergence_metric is not None:
        hib = False
        if convergence_metric in set(summary["metric"]):
            hib = bool(summary.loc[summary["metric"] == convergence_metric, "higher_is_better"].iloc[0])
        else:
            hib = metric_info(convergence_metric).higher_is_better
        c1.notes = steps_to_reach(convergence, convergence_metric, hib)
    claims.append(c1)

    # 2. Better at few inference steps.
    few = sorted(t for t in set(comps["t_infer"]) if t in few_steps)
    c2 = _make("few_steps", "Better quality at few inference steps",
               f"T_infer in {few} (few-step schedules among {sorted(set(int(t) for t in few_steps))} that were run), "
               "all sizes and budgets" if few else f"no run used a few-step schedule {sorted(few_steps)}",
               comps[comps["t_infer"].isin(few)], n_params, metrics, min_fraction, min_n)
    claims.append(c2)

    # 3. Robust to a smaller network: PriorGrad still better at the smallest size.
    sizes = sorted(n_params, key=lambda s: (n_params[s], s))
    if len(sizes) >= 2:
        small = sizes[0]
        c3 = _make("small_size", "Robust at small network size: PriorGrad stays better with fewer parameters",
                   f"the smallest network run ({small}, {fmt_params(n_params[small])} parameters), "
                   "all budgets and T_infer", comps[comps["size"] == small], n_params, metrics, min_fraction,
                   min_n)
    else:
        c3 = Claim("small_size", "Robust at small network size: PriorGrad stays better with fewer parameters",
                   "needs at least two network sizes", "inconclusive",
                   f"only one network size ({', '.join(sizes) or 'none'}) was run")
    claims.append(c3)
    return claims
