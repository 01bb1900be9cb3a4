"""Per-utterance scores -> per-system summaries and comparisons, with the one judging rule.

Input: the tidy scores of docs/interfaces.md (``runs/eval/scores.csv``): system, prior, size,
n_params, seed, budget, t_infer, utt, metric, value (NaN = failed utterance), kind ("model" or
"prior_noise"; the acoustic side also "mean_reference" and "recording": summarised, never compared). Budgets are checkpoints of ONE training run per (system, size, seed): the seed is
the unit of replication and the same seed at two budgets is the same run (eval/hierarchical.py).

Used by the evaluate stage (summary.json, comparisons.json, metrics.json, MLflow tags), the report
(tables, claims, floor flags) and ``python -m eval compare`` so that one rule decides everywhere:

    A comparison is judged only with at least ``min_seeds`` seeds of each system and ``min_utts``
    utterances scored for every seed of both systems; otherwise it is shown and marked "not judged".
    Utterances not scored for every seed of both systems are dropped from it, and counted. A judged
    comparison whose 95% CI excludes 0 names the better system only when its estimate lies beyond
    the metric's equivalence margin (report.equivalence_margins); inside it, it is a "negligible
    difference" (a metric without a margin has no negligible zone). A system setting is "above its
    floor" on a metric only when its comparison with its own floor (its own prior's sample scored
    without the model) names the system better by that same rule; otherwise it is "at floor", and a
    comparison of two systems on that metric there does not vote in a claim (floor_status).

Nothing here imports torch or matplotlib.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Mapping, Sequence

import numpy as np

from eval.hierarchical import Term, bootstrap_contrast
from eval.contract import KIND_MEAN_REFERENCE, KIND_MODEL, KIND_PRIOR_NOISE, KIND_RECORDING, SCORE_COLUMNS
from priorgrad.core import registry

# The systems come from the one registry (priorgrad.core.registry). BASELINE/TREATMENT are the vocoder family's
# headline pair; aggregate() takes any family's pairs (registry.comparisons).
BASELINE, TREATMENT = registry.baseline_and_proposed("vocoder")   # a - b = TREATMENT - BASELINE
SYSTEM_OF_PRIOR = {e.name: e.system for e in registry.PRIORS.values() if e.family == "vocoder"}
PRIOR_OF_SYSTEM = {e.system: e.name for e in registry.ENTRIES}          # every family's systems
SYSTEM_LABELS = {e.system: e.short for e in registry.ENTRIES}
SYSTEM_ORDER = {s: i for i, s in enumerate(registry.system_names())}
FLOOR = KIND_PRIOR_NOISE            # kind of the floor rows; b of a system-vs-floor comparison

MEAN_REFERENCE = KIND_MEAN_REFERENCE  # acoustic mu-alone reference: summarised, never compared (not a floor)
RECORDING = KIND_RECORDING            # acoustic E3: the recordings themselves (the recogniser's floor), never compared
KINDS = (KIND_MODEL, KIND_PRIOR_NOISE, KIND_MEAN_REFERENCE, KIND_RECORDING)

NOT_JUDGED = "not judged"
NO_DIFFERENCE = "no significant difference"
NEGLIGIBLE = "negligible difference"   # significant, but the estimate lies inside the equivalence margin

# a system setting against its own floor on one metric (floor_status)
ABOVE_FLOOR, AT_FLOOR, FLOOR_NOT_JUDGED, NO_FLOOR = "above floor", "at floor", "floor not judged", "no floor scored"


def floor_label(system: str) -> str:
    e = registry.system(system)
    if e.family == "vocoder":
        return f"{SYSTEM_LABELS[system]} prior noise ({e.floor}, no denoising)"
    return f"{SYSTEM_LABELS[system]} floor ({e.floor}, no decoder)"


@dataclass(frozen=True)
class Rule:
    """The judging rule and the bootstrap settings (params: report.min_seeds, report.claim_min_n,
    evaluate.n_boot, evaluate.bootstrap_seed, and the family's equivalence_margins); no defaults but the
    margins (none: no metric has a negligible zone), so a missing key is the caller's error."""
    min_seeds: int
    min_utts: int
    n_boot: int
    seed: int
    level: float
    margins: Mapping[str, float] = field(default_factory=dict, hash=False)   # metric -> equivalence margin

    def __post_init__(self) -> None:
        if self.min_seeds < 1 or self.min_utts < 1:
            raise ValueError(f"Rule: min_seeds and min_utts must be >= 1, got {self.min_seeds}, {self.min_utts}")
        if self.n_boot < 100:
            raise ValueError(f"Rule: n_boot must be >= 100, got {self.n_boot}")
        if not 0.5 <= self.level < 1.0:
            raise ValueError(f"Rule: level must be in [0.5, 1), got {self.level}")
        bad = {k: v for k, v in self.margins.items() if not float(v) > 0}
        if bad:
            raise ValueError(f"Rule: equivalence margins must be > 0, got {bad}")

    def text(self) -> str:
        return (f"a comparison is judged only with at least {self.min_seeds} training seeds per system and "
                f"{self.min_utts} test utterances scored for every seed of both systems")


def judge(seeds: dict[str, int], n_utts: int, rule: Rule) -> str:
    """'' when the rule allows judging, else the reason (the one rule of the module docstring)."""
    few = [f"{name}: {n} seed{'s' if n != 1 else ''}" for name, n in seeds.items() if n < rule.min_seeds]
    reasons = []
    if few:
        reasons.append(f"fewer than {rule.min_seeds} seeds ({'; '.join(few)})")
    if n_utts < rule.min_utts:
        reasons.append(f"{n_utts} utterance{'s' if n_utts != 1 else ''} < {rule.min_utts}")
    return ", ".join(reasons)


def direction(estimate_low: float, estimate_high: float, higher_is_better: bool) -> str | None:
    """'a' / 'b' (the better one) when the CI of a - b excludes 0, else None."""
    if estimate_low > 0:
        return "a" if higher_is_better else "b"
    if estimate_high < 0:
        return "b" if higher_is_better else "a"
    return None


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def outcome(row: Mapping[str, Any]) -> str:
    """'a better' | 'b better' | 'negligible difference' | 'no significant difference' | 'not judged' for
    a comparison row (its judged, ci_low, ci_high, mean_diff, higher_is_better and margin).

    The table markers, the floor check, the claims' floor gate, `eval compare`, `eval score-many` and the
    MLflow tags all read a comparison through this: significant (the 95% CI excludes 0) AND beyond the
    margin names a better system; significant inside the margin is negligible."""
    if not row.get("judged") or _missing(row.get("ci_low")):
        return NOT_JUDGED
    d = direction(float(row["ci_low"]), float(row["ci_high"]), bool(row["higher_is_better"]))
    if d is None:
        return NO_DIFFERENCE
    margin = row.get("margin")
    if not _missing(margin) and abs(float(row["mean_diff"])) <= float(margin):
        return NEGLIGIBLE
    return {"a": "a better", "b": "b better"}[d]


def floor_status(row: Mapping[str, Any] | None) -> str:
    """A system setting against its own floor (a floor comparison row, a - floor; None: no floor scored):
    'above floor' only when outcome() names the system better (significant and beyond the margin). The
    results table's floor flag and the claims' floor gate both read it, so they cannot disagree."""
    if row is None:
        return NO_FLOOR
    o = outcome(row)
    if o == NOT_JUDGED:
        return FLOOR_NOT_JUDGED
    return ABOVE_FLOOR if o == "a better" else AT_FLOOR


# --- the scores as matrices ---

@dataclass
class Cell:
    """One system (or floor) at one setting and metric: values[seed, utt] over the cube's utterances;
    NaN where the utterance failed or was not scored; `present` where a row exists at all."""
    seeds: np.ndarray
    values: np.ndarray
    present: np.ndarray
    prior: str
    n_params: int

    def __post_init__(self) -> None:
        # per utterance: scored for every seed / seen for some seed (computed once; contrasts reuse them)
        self.ok = np.all(np.isfinite(self.values), axis=0)
        self.seen = self.present.any(axis=0)


Key = tuple  # (kind, system, size, budget, t_infer, metric)


@dataclass
class ScoreCube:
    utts: list[str]
    cells: dict[Key, Cell]
    higher: dict[str, bool]
    n_params: dict[str, int] = field(default_factory=dict)

    def keys(self, kind: str = "model", **match: Any) -> list[Key]:
        names = ("kind", "system", "size", "budget", "t_infer", "metric")
        ordered = self.__dict__.get("_ordered")
        if ordered is None or len(ordered) != len(self.cells):
            ordered = self.__dict__["_ordered"] = sorted(self.cells, key=_key_order)
        where = [(names.index(n), v) for n, v in match.items()]
        return [k for k in ordered if k[0] == kind and all(k[i] == v for i, v in where)]

    @property
    def sizes(self) -> list[str]:
        """Model sizes from the smallest network to the largest."""
        return sorted(self.n_params, key=lambda s: (self.n_params[s], s))


def _key_order(k: Key) -> tuple:
    return (k[0], str(k[2]), int(k[3]), int(k[4]), str(k[5]), SYSTEM_ORDER.get(k[1], 9), str(k[1]))


def model_key(system: str, size: str, budget: int, t_infer: int, metric: str) -> Key:
    return ("model", system, str(size), int(budget), int(t_infer), metric)


def floor_key(system: str, metric: str) -> Key:
    return (FLOOR, system, "", 0, 0, metric)


def build_cube(scores, higher: dict[str, bool]) -> ScoreCube:
    """The tidy scores DataFrame -> ScoreCube; a duplicated score or unknown kind is a ValueError."""
    import pandas as pd

    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise ValueError(f"scores: missing columns {missing}")
    df = scores[SCORE_COLUMNS].copy()
    bad = sorted(set(df["kind"]) - set(KINDS))
    if bad:
        raise ValueError(f"scores: unknown kind {bad} (expected {list(KINDS)})")
    unknown = sorted(set(df["metric"]) - set(higher))
    if unknown:
        raise ValueError(f"scores: direction of metric(s) {unknown} unknown")
    df["size"] = df["size"].fillna("").astype(str)
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype("float64")
    keys = ["kind", "system", "size", "budget", "t_infer", "metric"]
    dup = df.duplicated(keys + ["seed", "utt"])
    if dup.any():
        r = df[dup].iloc[0]
        raise ValueError(f"scores: duplicate score for {dict(r[keys + ['seed', 'utt']])}")
    utts = sorted(set(df["utt"].astype(str)))
    u_index = {u: i for i, u in enumerate(utts)}
    cells: dict[Key, Cell] = {}
    for key, g in df.groupby(keys, sort=True):
        seeds = np.array(sorted(set(int(s) for s in g["seed"])))
        s_index = {s: i for i, s in enumerate(seeds)}
        values = np.full((len(seeds), len(utts)), np.nan)
        present = np.zeros((len(seeds), len(utts)), dtype=bool)
        si = g["seed"].map(lambda s: s_index[int(s)]).to_numpy()
        ui = g["utt"].map(lambda u: u_index[str(u)]).to_numpy()
        values[si, ui] = g["value"].to_numpy()
        present[si, ui] = True
        kind, system, size, budget, t, metric = key
        k = (kind, system, str(size), int(budget), int(t), metric)
        cells[k] = Cell(seeds, values, present, str(g["prior"].iloc[0]), int(g["n_params"].max()))
    n_params = {k[2]: c.n_params for k, c in cells.items() if k[0] == "model"}
    return ScoreCube(utts, cells, dict(higher), n_params)


# --- contrasts ---

def _group(key: Key) -> Hashable:
    """The run group whose seeds a cell's rows are: a system at a size (all budgets and T_infer), or a floor."""
    return (key[0], key[1], key[2])


def common_utterances(cube: ScoreCube, keys: Sequence[Key]) -> tuple[np.ndarray, int, str]:
    """(mask of utterances scored for every seed of every cell, number dropped, why).

    An utterance seen in any of the cells but failed (or absent) for some seed of one of them is
    dropped from the whole comparison, so neither system is favoured by the other's failures."""
    cells = [cube.cells[k] for k in keys]
    seen = np.logical_or.reduce([c.seen for c in cells])
    used = seen & np.logical_and.reduce([c.ok for c in cells])
    if used.sum() == seen.sum():
        return used, 0, ""
    why: list[str] = []
    for k, c in zip(keys, cells):
        bad = seen & ~c.ok
        if bad.any():
            name = f"{k[1]} {k[2]} b{k[3]} T{k[4]}" if k[0] == "model" else f"{k[1]} prior noise"
            why.append(f"{int(bad.sum())} failed or unscored for some seed of {name}")
    return used, int(seen.sum() - used.sum()), "; ".join(why)


def contrast(cube: ScoreCube, terms: Sequence[tuple[float, Key]], rule: Rule) -> dict[str, Any]:
    """A linear contrast sum(coef * cell mean) with its hierarchical CI and the rule's judgement.

    Utterances: those scored for every seed of every cell (shared by all terms). Seeds: each run
    group's own, drawn once per replicate for all its cells."""
    keys = [k for _, k in terms]
    for k in keys:
        if k not in cube.cells:
            raise KeyError(f"contrast: no scores for {k}")
    used, n_dropped, why = common_utterances(cube, keys)
    seeds: dict[str, int] = {}
    several_sizes = len({k[2] for k in keys if k[0] == "model"}) > 1
    for k in keys:
        if k[0] == "model":
            name = f"{k[1]} {k[2]}" if several_sizes else k[1]
        else:
            name = f"{k[1]} prior noise"
        seeds[name] = len(cube.cells[k].seeds)
    n_utts = int(used.sum())
    out: dict[str, Any] = {"n": n_utts, "n_dropped": n_dropped, "dropped": why, "seeds": seeds,
                           "n_seeds_min": min(seeds.values())}
    reason = judge(seeds, n_utts, rule)
    if n_utts == 0:
        out.update({"estimate": None, "ci_low": None, "ci_high": None, "p": None, "judged": False,
                    "not_judged": reason or "no utterance scored for every seed"})
        return out
    res = bootstrap_contrast([Term(c, _group(k), cube.cells[k].values[:, used]) for c, k in terms],
                             n_boot=rule.n_boot, seed=rule.seed, level=rule.level)
    out.update({"estimate": res["estimate"], "ci_low": res["ci_low"], "ci_high": res["ci_high"], "p": res["p"],
                "judged": not reason, "not_judged": reason})
    return out


# --- the evaluate stage's tables ---

def summarize_cell(cube: ScoreCube, key: Key, rule: Rule) -> dict[str, Any]:
    kind, system, size, budget, t, metric = key
    c = cube.cells[key]
    res = contrast(cube, [(1.0, key)], rule)
    per_seed = np.nanmean(c.values[:, np.all(np.isfinite(c.values), axis=0)], axis=1) if res["n"] else None
    return {"kind": kind, "system": system, "prior": c.prior, "size": size, "n_params": c.n_params, "budget": budget,
            "t_infer": t, "metric": metric, "higher_is_better": cube.higher[metric],
            "n": res["n"], "n_seeds": len(c.seeds), "n_failed": int((c.present & ~np.isfinite(c.values)).sum()),
            "n_dropped": res["n_dropped"], "dropped": res["dropped"],
            "mean": res["estimate"], "seed_sd": (float(np.std(per_seed, ddof=1)) if per_seed is not None
                                                 and len(per_seed) > 1 else None),
            "ci_low": res["ci_low"], "ci_high": res["ci_high"],
            "judged": res["judged"], "not_judged": res["not_judged"]}


def _comparison_row(cube: ScoreCube, a: Key, b: Key, rule: Rule) -> dict[str, Any]:
    res = contrast(cube, [(1.0, a), (-1.0, b)], rule)
    _, sys_a, size, budget, t, metric = a
    row = {"kind": "systems" if b[0] == "model" else "floor", "a": sys_a, "b": b[1] if b[0] == "model" else FLOOR,
           "prior_b": cube.cells[b].prior, "size": size, "budget": budget, "t_infer": t, "metric": metric,
           "higher_is_better": cube.higher[metric], "n": res["n"], "n_seeds_a": len(cube.cells[a].seeds),
           "n_seeds_b": len(cube.cells[b].seeds), "n_dropped": res["n_dropped"], "dropped": res["dropped"],
           "mean_diff": res["estimate"], "ci_low": res["ci_low"], "ci_high": res["ci_high"], "p_boot": res["p"],
           "judged": res["judged"], "not_judged": res["not_judged"], "margin": rule.margins.get(metric)}
    row["outcome"] = outcome(row)
    return row


def floor_row(cube: ScoreCube, key: Key, rule: Rule) -> dict[str, Any] | None:
    """The comparison of a system cell with its own floor (the row aggregate() writes), or None without one."""
    fk = floor_key(key[1], key[5])
    return _comparison_row(cube, key, fk, rule) if fk in cube.cells else None


def aggregate(scores, higher: dict[str, bool], rule: Rule,
              family: str = "vocoder") -> tuple[list[dict], list[dict]]:
    """summary rows (every system cell and every floor) and comparison rows: for each of the family's
    (treatment, baseline) pairs (registry.comparisons; vocoder: PriorGrad - DiffWave) at equal size,
    budget, T_infer and metric ("systems"), and every system cell against its own floor ("floor", a - floor)."""
    cube = scores if isinstance(scores, ScoreCube) else build_cube(scores, higher)
    summary = [summarize_cell(cube, k, rule) for k in cube.keys("model")] + \
              [summarize_cell(cube, k, rule) for k in cube.keys(FLOOR)] + \
              [summarize_cell(cube, k, rule) for k in cube.keys(MEAN_REFERENCE)] + \
              [summarize_cell(cube, k, rule) for k in cube.keys(RECORDING)]
    comparisons = []
    for treatment, baseline in registry.comparisons(family):
        for k in cube.keys("model", system=treatment):
            other = (k[0], baseline) + k[2:]
            if other in cube.cells:
                comparisons.append(_comparison_row(cube, k, other, rule))
    for k in cube.keys("model"):
        row = floor_row(cube, k, rule)
        if row is not None:
            comparisons.append(row)
    return summary, comparisons


def headline(summary: Iterable[dict], comparisons: Iterable[dict]) -> dict[str, Any]:
    """metrics.json for `dvc metrics show`: per setting and metric, both means, the difference, its CI,
    the seeds behind it and the rule's outcome, all numbers for DVC (judged: 1/0; outcome: 1 = PriorGrad
    better, -1 = DiffWave better, 0 = negligible, no significant difference or not judged)."""
    means = {(s["system"], s["size"], s["budget"], s["t_infer"], s["metric"]): s["mean"]
             for s in summary if s["kind"] == "model"}
    code = {"a better": 1, "b better": -1, NEGLIGIBLE: 0, NO_DIFFERENCE: 0, NOT_JUDGED: 0}
    out: dict[str, Any] = {}
    for c in comparisons:
        if c["kind"] != "systems":
            continue
        setting = f"{c['size']}-b{c['budget']}-T{c['t_infer']}"
        out.setdefault(setting, {})[c["metric"]] = {
            c["a"]: means.get((c["a"], c["size"], c["budget"], c["t_infer"], c["metric"])),
            c["b"]: means.get((c["b"], c["size"], c["budget"], c["t_infer"], c["metric"])),
            "diff": c["mean_diff"], "ci_low": c["ci_low"], "ci_high": c["ci_high"],
            "n_seeds": min(c["n_seeds_a"], c["n_seeds_b"]), "n": c["n"], "judged": int(bool(c["judged"])),
            "outcome": code[c["outcome"]]}
    return out


def outcome_words(row: Mapping[str, Any]) -> str:
    """The outcome with the systems named, e.g. 'PriorGrad better', 'not judged (fewer than 3 seeds ...)',
    'negligible difference (|+0.013| <= margin 0.1)'."""
    o = outcome(row)
    if o == NOT_JUDGED:
        return f"{NOT_JUDGED} ({row.get('not_judged') or 'no CI'})"
    if o == NEGLIGIBLE:
        return f"{NEGLIGIBLE} (|{float(row['mean_diff']):+.3g}| <= margin {float(row['margin']):g})"
    b_label = SYSTEM_LABELS.get(row["b"], "prior noise") if row["b"] != FLOOR else "prior noise"
    return {"a better": f"{SYSTEM_LABELS.get(row['a'], row['a'])} better", "b better": f"{b_label} better"}.get(o, o)


def mlflow_key(metric: str) -> str:
    """A metric name as MLflow accepts it in a key ('@' is not allowed): 'E1/pesq_wb@rec' -> 'E1/pesq_wb_at_rec'
    (a vocoder name, unqualified, is unchanged). Here, not in eval/contract.py: the contract is part of
    every trial's training fingerprint, and a naming rule of MLflow keys must not retrain anything."""
    return metric.replace("@", "_at_")


def mlflow_tags(comparisons: Iterable[dict], system: str, size: str, budget: int, *,
                name_every_pair: bool = False) -> dict[str, str]:
    """Tags for one trial's MLflow run (one budget of its ladder): the rule's outcome of each of its
    comparisons, e.g. {"cmp/T6/mrstft": "PriorGrad better", "floor/T6/mrstft": "not judged (...)"}. The headline
    pair's tags keep that name; a further pair's name the other system ("cmp/specgrad/T6/mrstft" on PriorGrad's
    run), as PriorGrad is in two pairs once SpecGrad runs and one key per metric would overwrite the other.
    ``name_every_pair``: the headline pair names the other system too (the acoustic family, born with two
    pairs, has always written "cmp/b1-normal/T6/E1/mel_l1"). Metric names become MLflow keys ('@' -> '_at_')."""
    headline = None if name_every_pair else tuple(registry.comparisons("vocoder")[0])
    tags: dict[str, str] = {}
    for c in comparisons:
        if str(c["size"]) != str(size) or int(c["budget"]) != int(budget):
            continue
        metric = mlflow_key(c["metric"])
        if c["kind"] == "systems" and system in (c["a"], c["b"]):
            other = "" if (c["a"], c["b"]) == headline else f"{c['b'] if c['a'] == system else c['a']}/"
            tags[f"cmp/{other}T{c['t_infer']}/{metric}"] = outcome_words(c)[:250]
        elif c["kind"] == "floor" and c["a"] == system:
            tags[f"floor/T{c['t_infer']}/{metric}"] = outcome_words(c)[:250]
    return tags
