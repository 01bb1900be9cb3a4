"""Verdicts on the paper's claims, by one pre-registered rule (CLAIM_RULE, printed on the page).

Each claim is decided by a few *primary tests*, one per primary metric (report.primary_metrics),
each a contrast of cell means with its two-level bootstrap CI (eval.aggregate.contrast: seeds of
each system resampled independently, then utterances shared by both):

  1 faster convergence   PriorGrad - DiffWave averaged over the budget ladder (every size) at the
                         longest T_infer run; needs >= 2 budgets. Beside it, descriptive: the step at
                         which PriorGrad's validation curve reaches DiffWave's final value, with a
                         bootstrap-over-seeds CI (convergence.csv).
  2 few inference steps  PriorGrad - DiffWave averaged over the few-step T_infer run (every size, budget).
  3 robust at small size the interaction: (PriorGrad - DiffWave at the smallest size) - (the same at the
                         largest), averaged over their common budgets and T_infer; with it, as a
                         guard, PriorGrad - DiffWave at the smallest size. Needs >= 2 sizes.

Floor gate: a primary metric votes at a setting only when BOTH systems are above their own floor on
it there (eval.aggregate.floor_status: the very comparison the results table's floor flag reads).
Settings at floor for either system are left out of that metric's test (named beside it); a primary
with no setting left is shown "at floor" and does not vote. Below the floor a difference measures the
two noise generators, not the methods.

The p-values of a claim's voting primary tests are Holm-corrected together (its family); a test is
significant when its Holm p < 1 - level, and it favours a system only when its estimate also lies
beyond the metric's equivalence margin (report.equivalence_margins); a significant estimate inside
the margin is a "negligible difference" and does not vote. Verdicts:
  not judged   some primary test breaks the judging rule (eval.aggregate.judge), every primary is at
               floor, or the runs lack the design (one size, one budget, no few-step schedule); the
               page says which ("not judged: at floor");
  supported    a deciding test favours PriorGrad (significant, beyond the margin) and none favours DiffWave;
  refuted      a test favours DiffWave (significant, beyond the margin) and none favours PriorGrad;
  negligible difference  a deciding test is significant with its estimate inside the margin, none favours
               a system, and every other deciding test is negligible too or has its CI inside the margin;
  no difference detected  nothing significant and every deciding CI inside +-report.equivalence_margins;
  inconclusive otherwise.
Secondary metrics get the same contrasts, shown without correction and without the floor gate; they
never vote.

The acoustic section's claims (spec priorgrad-acoustic.md section 12) are built from the same pieces with
the acoustic family's pairs (registry.comparisons("acoustic")): 1 faster convergence, 2 better quality at
equal steps (the largest budget, the longest T_infer), 3 few steps, 4 smaller decoder (the interaction), all
PriorGrad-AM - B1; 5 phoneme prior vs trainable prior, PriorGrad-AM - B2 over every common setting.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from eval.aggregate import (ABOVE_FLOOR, AT_FLOOR, BASELINE, FLOOR_NOT_JUDGED, NO_FLOOR, PRIOR_OF_SYSTEM,
                            SYSTEM_LABELS, TREATMENT, Rule, ScoreCube, contrast, direction, floor_row, floor_status,
                            model_key)
from priorgrad.core import registry
from reports.metrics_info import metric_info
from reports.tables import fmt_params

SUPPORTED, REFUTED, NEGLIGIBLE, NO_DIFF, INCONCLUSIVE, NOT_JUDGED = (
    "supported", "refuted", "negligible difference", "no difference detected", "inconclusive", "not judged")
VERDICTS = (SUPPORTED, REFUTED, NEGLIGIBLE, NO_DIFF, INCONCLUSIVE, NOT_JUDGED)

# what kept a claim from a verdict (Claim.held_back; the top of the report names them per claim)
TOO_FEW_SEEDS, TOO_FEW_UTTS, ONE_SIZE, ONE_BUDGET, NO_FEW_STEPS, AT_FLOOR_WORD, NEGLIGIBLE_WORD, WIDE = (
    "too few seeds", "too few utterances", "one size", "one training budget", "no few-step schedule", "at floor",
    "negligible", "CI too wide")

CLAIM_RULE = (
    "The unit of replication is the training run. Every interval is a 95% two-level bootstrap CI: each system's "
    "training seeds are resampled independently, then the test utterances, shared by both systems (widened for "
    "few seeds by sqrt(S/(S-1)) t/z). One rule everywhere (claims, table markers, eval compare, MLflow tags): "
    "{rule_text}; otherwise the comparison is shown and marked not judged. Utterances not scored for every seed "
    "of both systems are dropped from that comparison and counted beside it. Each claim is decided by one "
    "pre-registered test per primary metric ({primary}); their p-values are Holm-corrected within the claim. "
    "Floor gate: at each setting a primary metric votes only when both systems beat their own floor on it (the "
    "test behind the table's \u2020 flag); settings at floor are left out of its test, and a primary at floor "
    "everywhere is shown \"at floor\" and does not vote. A test favours a system only when it is significant "
    "(Holm p < {alpha}) AND its estimate lies beyond the equivalence margin ({margins}); significant inside the "
    "margin is a negligible difference and does not vote. Supported: a deciding test favours {treatment} and "
    "none favours {baseline}; refuted: the mirror image; negligible difference: a deciding test is significant "
    "inside its margin, none favours a system and every other deciding test is negligible or has its CI inside "
    "the margin; no difference detected: nothing significant and every deciding CI inside the margin; "
    "inconclusive: otherwise; not judged: a primary test breaks the rule, every primary is at floor, or the runs "
    "lack the design the claim needs (the verdict names which). Secondary metrics ({secondary}) are shown "
    "without the floor gate and never vote.")


@dataclass
class ClaimTest:
    """One contrast of a claim, on one metric."""
    name: str                 # e.g. "PriorGrad - DiffWave, mean over 3 budgets at T=50"
    metric: str
    heading: str
    primary: bool
    deciding: bool            # can support the claim (False: a guard, can only refute it)
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None
    n: int
    n_dropped: int
    dropped: str
    seeds: dict[str, int]
    judged: bool
    not_judged: str
    higher_is_better: bool
    p_holm: float | None = None
    favours: str | None = None        # the label of the favoured system ("PriorGrad" | "DiffWave") | None
    within_margin: bool | None = None
    decimals: int = 3
    pair: tuple[str, str] = (TREATMENT, BASELINE)   # (treatment, baseline) systems the contrast compares
    at_floor: str = ""        # non-empty: every setting of this primary is at floor (why); it does not vote
    left_out: list[str] = field(default_factory=list)   # settings at floor, left out of this primary test
    negligible: bool = False  # significant after Holm, estimate inside the margin: does not vote
    margin: float | None = None

    def fmt(self, x: float | None, sign: bool = True) -> str:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "n/a"
        return f"{x:+.{self.decimals + 1}f}" if sign else f"{x:.{self.decimals + 1}f}"

    @property
    def ci(self) -> str:
        return "n/a" if self.ci_low is None else f"[{self.fmt(self.ci_low)}, {self.fmt(self.ci_high)}]"

    @property
    def seeds_text(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in self.seeds.items())

    @property
    def outcome(self) -> str:
        if self.at_floor:
            return f"at floor, does not vote ({self.at_floor})"
        if not self.judged:
            return f"not judged ({self.not_judged})"
        if self.negligible:
            return f"negligible difference (significant, but |estimate| <= margin {self.margin:g}); does not vote"
        if self.favours:
            return f"{self.favours} better" + ("" if self.primary else " (uncorrected; secondary, no vote)")
        return "no significant difference" + (" (within margin)" if self.within_margin else "")


@dataclass
class Evidence:
    """One per-setting comparison PriorGrad - DiffWave in a claim's scope (shown, does not vote)."""
    size: str
    n_params: str
    budget: int
    t_infer: int
    metric: str
    primary: bool
    n: int
    seeds: str
    dropped: str
    mean_diff: str
    ci: str
    outcome: str


def _abbrev(system: str) -> str:
    """A system's shortest name for narrow table headers ("seeds (PG / DW)"): its registry entry's abbrev."""
    try:
        return registry.system(system).abbrev or system
    except registry.UnknownName:
        return system


@dataclass
class Claim:
    key: str
    title: str
    scope: str
    verdict: str
    reason: str
    tests: list[ClaimTest] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pair: tuple[str, str] = (TREATMENT, BASELINE)   # (treatment, baseline) systems the claim compares
    held_back: list[str] = field(default_factory=list)   # what kept it from supported/refuted (TOO_FEW_SEEDS, ...)

    @property
    def verdict_text(self) -> str:
        """The verdict as the page shows it: 'not judged' names why ('not judged: at floor')."""
        if self.verdict == NOT_JUDGED and self.held_back:
            return f"{NOT_JUDGED}: {', '.join(self.held_back)}"
        return self.verdict

    @property
    def labels(self) -> tuple[str, str]:
        return SYSTEM_LABELS[self.pair[0]], SYSTEM_LABELS[self.pair[1]]

    @property
    def abbrev(self) -> tuple[str, str]:
        return tuple(_abbrev(s) for s in self.pair)

    @property
    def primary_tests(self) -> list[ClaimTest]:
        return [t for t in self.tests if t.primary]

    @property
    def secondary_tests(self) -> list[ClaimTest]:
        return [t for t in self.tests if not t.primary]


# --- the rule ---

def decide(tests: list[ClaimTest], margins: dict[str, float], alpha: float,
           pair: tuple[str, str] = (TREATMENT, BASELINE)) -> tuple[str, str, list[str]]:
    """Holm over the voting primary tests (in place: p_holm, favours, negligible, within_margin), then the
    verdict, its reason and what held it back (Claim.held_back)."""
    from eval.hierarchical import holm

    a, b = SYSTEM_LABELS[pair[0]], SYSTEM_LABELS[pair[1]]
    primary = [t for t in tests if t.primary]
    for t in tests:   # secondary: uncorrected, shown only
        if not t.primary and t.judged and t.ci_low is not None:
            t.favours = _favours(t)
    if not primary:
        return NOT_JUDGED, "no primary metric was scored in this claim's scope", []
    floored = [t for t in primary if t.at_floor]
    floor_words = "; ".join(dict.fromkeys(f"{t.heading} at floor ({t.at_floor})" for t in floored))   # a guard repeats
    unjudged = [t for t in primary if not t.at_floor and not t.judged]
    if unjudged:
        held = _rule_blockers(unjudged) + ([AT_FLOOR_WORD] if floored else [])
        return NOT_JUDGED, "; ".join([f"{t.heading}: {t.not_judged}" for t in unjudged] +
                                     ([floor_words] if floored else [])), held
    voting = [t for t in primary if not t.at_floor]
    if not voting:
        return NOT_JUDGED, (f"every primary metric is at floor in every setting of this claim: {floor_words}; "
                            "below its floor a difference measures the noise generators, not the methods"), \
            [AT_FLOOR_WORD]
    for t, ph in zip(voting, holm([t.p for t in voting])):
        t.p_holm = ph
        m = margins[t.metric]
        t.margin = m
        sig = ph < alpha
        t.negligible = bool(sig and abs(t.estimate) <= m)
        t.favours = _favours(t) if sig and not t.negligible else None
        t.within_margin = bool(-m <= t.ci_low and t.ci_high <= m)
    also = f"; not voting: {floor_words}" if floored else ""
    held_floor = [AT_FLOOR_WORD] if floored else []
    pro = [t for t in voting if t.deciding and t.favours == a]
    con = [t for t in voting if t.favours == b]
    names = lambda ts: ", ".join(f"{t.heading} ({t.name}; {t.fmt(t.estimate)} beyond \u00b1{t.margin:g}; Holm p "  # noqa: E731
                                 f"{_p(t.p_holm)})" for t in ts)
    if pro and not con:
        return SUPPORTED, f"{a} significantly better on {names(pro)}; no primary test favours {b}{also}", []
    if con and not pro:
        return REFUTED, f"{b} significantly better on {names(con)}; no primary test favours {a}{also}", []
    if pro and con:
        return INCONCLUSIVE, f"significant in both directions: {a} on {names(pro)}, {b} on {names(con)}{also}", \
            held_floor
    deciding = [t for t in voting if t.deciding]
    neg = [t for t in deciding if t.negligible]   # a guard's negligible difference decides nothing
    neg_words = ", ".join(f"{t.heading} {t.fmt(t.estimate)} (Holm p {_p(t.p_holm)}) inside \u00b1{t.margin:g}"
                          for t in neg)
    if neg and deciding and all(t.negligible or t.within_margin for t in deciding):
        return NEGLIGIBLE, (f"significant but negligible: {neg_words}; no primary test favours either system "
                            f"beyond its equivalence margin{also}"), [NEGLIGIBLE_WORD] + held_floor
    if not neg and deciding and all(t.within_margin for t in deciding):
        return NO_DIFF, ("no primary test is significant and every deciding 95% CI lies inside its equivalence "
                         "margin (" + ", ".join(f"{t.heading} {t.ci} within \u00b1{margins[t.metric]:g}"
                                                for t in deciding) + f"){also}"), held_floor
    wide = [t for t in deciding if not t.within_margin and not t.negligible]
    return INCONCLUSIVE, ((f"negligible: {neg_words}; " if neg else "") +
                          "no primary test favours either system beyond its margin, and the CI of " +
                          ", ".join(f"{t.heading} {t.ci}" for t in wide) +
                          f" is too wide to rule out a difference larger than the equivalence margin{also}"), \
        ([NEGLIGIBLE_WORD] if neg else []) + held_floor + [WIDE]


def _rule_blockers(tests: list[ClaimTest]) -> list[str]:
    """The judging rule's reasons (eval.aggregate.judge's words) as Claim.held_back words."""
    out = []
    if any("seed" in t.not_judged for t in tests):
        out.append(TOO_FEW_SEEDS)
    if any("utterance" in t.not_judged for t in tests):
        out.append(TOO_FEW_UTTS)
    return out


def _p(p: float) -> str:
    """'= 0.012', or '~ 0' when no bootstrap replicate crossed 0 (the bootstrap p has a resolution of 1/n_boot)."""
    return "\u2248 0 (no bootstrap resample crossed 0)" if p == 0 else f"= {p:.3g}"


def _favours(t: ClaimTest) -> str | None:
    """Primary (already significant after Holm): the sign of the estimate; secondary: its own 95% CI."""
    a, b = SYSTEM_LABELS[t.pair[0]], SYSTEM_LABELS[t.pair[1]]
    if t.primary:
        a_better = (t.estimate > 0) == t.higher_is_better
        return a if a_better else b
    d = direction(t.ci_low, t.ci_high, t.higher_is_better)
    return {"a": a, "b": b}.get(d)


# --- building the tests ---

def _test(cube: ScoreCube, name: str, metric: str, terms: list[tuple[float, tuple]], rule: Rule, primary: bool,
          deciding: bool, pair: tuple[str, str] = (TREATMENT, BASELINE)) -> ClaimTest:
    info = metric_info(metric, cube.higher[metric])
    r = contrast(cube, terms, rule)
    return ClaimTest(name, metric, info.heading, primary, deciding, r["estimate"], r["ci_low"], r["ci_high"], r["p"],
                r["n"], r["n_dropped"], r["dropped"], r["seeds"], r["judged"], r["not_judged"],
                cube.higher[metric], decimals=info.decimals, pair=pair)


def _pair_terms(cube: ScoreCube, settings: list[tuple[str, int, int]], metric: str, weight: float = 1.0,
                pair: tuple[str, str] = (TREATMENT, BASELINE)) -> list[tuple[float, tuple]]:
    """Terms of weight * mean over settings of (treatment - baseline); settings where both exist."""
    treatment, baseline = pair
    both = [s for s in settings if model_key(treatment, *s, metric) in cube.cells
            and model_key(baseline, *s, metric) in cube.cells]
    terms = []
    for s in both:
        terms.append((weight / len(both), model_key(treatment, *s, metric)))
        terms.append((-weight / len(both), model_key(baseline, *s, metric)))
    return terms


def _settings(cube: ScoreCube, metric: str, sizes=None, budgets=None, t_infer=None,
              systems=None) -> list[tuple[str, int, int]]:
    out = set()
    for k in cube.keys("model", metric=metric):
        if systems is not None and k[1] not in systems:
            continue
        _, _, size, budget, t, _ = k
        if (sizes is None or size in sizes) and (budgets is None or budget in budgets) and \
                (t_infer is None or t in t_infer):
            out.add((size, budget, t))
    return sorted(out, key=lambda s: (cube.n_params.get(s[0], 0), s))


def _metric_tests(cube: ScoreCube, metrics: list[str], primary: set[str], build) -> list[ClaimTest]:
    tests: list[ClaimTest] = []
    for m in metrics:
        if m in cube.higher:
            tests += build(m, m in primary)
    return tests


def _not_judged(key: str, title: str, scope: str, why: str, held: str,
                pair: tuple[str, str] = (TREATMENT, BASELINE)) -> Claim:
    return Claim(key, title, scope, NOT_JUDGED, why, pair=pair, held_back=[held])


@dataclass
class ClaimSettings:
    """What evaluate_claims needs from report: (ReportConfig fields), kept small for the calibration."""
    primary_metrics: list[str]
    secondary_metrics: list[str]
    few_steps: list[int]
    margins: dict[str, float]
    rule: Rule
    family: str = "vocoder"        # whose claims: registry.comparisons(family) are the pairs


@dataclass
class _Scope:
    """What every claim of one report shares: the cube, the settings, the design that was run."""
    cube: ScoreCube
    cs: ClaimSettings
    comparisons: pd.DataFrame | None
    metrics: list[str]
    primary: set[str]
    alpha: float
    all_t: list[int]
    budgets: list[int]
    sizes: list[str]

    # (system, size, budget, t, metric) -> (floor_status, the rule's reason when not judged), memoised
    floors: dict = field(default_factory=dict)

    def decide(self, key: str, title: str, scope: str, tests: list[ClaimTest], pair: tuple[str, str]) -> Claim:
        verdict, reason, held = decide(tests, self.cs.margins, self.alpha, pair)
        return Claim(key, title, scope, verdict, reason, tests, pair=pair, held_back=held)

    def tests(self, build) -> list[ClaimTest]:
        return _metric_tests(self.cube, self.metrics, self.primary, build)

    def floor(self, system: str, setting: tuple[str, int, int], metric: str) -> tuple[str, str]:
        """(eval.aggregate.floor_status, the rule's reason when not judged) of one system cell against its own
        floor: the very comparison the results table's floor flag reads."""
        k = (system, *setting, metric)
        if k not in self.floors:
            key = model_key(system, *setting, metric)
            row = floor_row(self.cube, key, self.cs.rule) if key in self.cube.cells else None
            self.floors[k] = (floor_status(row), (row or {}).get("not_judged") or "")
        return self.floors[k]

    def gate(self, settings: list[tuple[str, int, int]], metric: str, pair: tuple[str, str],
             is_primary: bool) -> tuple[list[tuple[str, int, int]], list[str]]:
        """(settings that may vote, the settings at floor in words). A setting votes when neither system is at
        its own floor on the metric there. Secondary metrics are not gated (they never vote); a system without
        floor rows cannot be gated; a floor comparison the rule cannot judge keeps its setting, but the test
        over it is then not judged (gated_test)."""
        if not is_primary:
            return settings, []
        kept, out = [], []
        for st in settings:
            bad = [f"{SYSTEM_LABELS[sys_]} {AT_FLOOR}" for sys_ in pair if self.floor(sys_, st, metric)[0] == AT_FLOOR]
            if bad:
                out.append(f"{st[0]} {st[1]} steps T={st[2]}: {' and '.join(bad)}")
            else:
                kept.append(st)
        return kept, out

    def gated_test(self, name: str, metric: str, settings: list[tuple[str, int, int]], out: list[str],
                   terms: list[tuple[float, tuple]], is_primary: bool, deciding: bool,
                   pair: tuple[str, str]) -> ClaimTest:
        """The contrast over the settings kept by the gate; with none kept, the primary shown at floor. A kept
        setting whose floor comparison the rule cannot judge makes the test not judged (its own reason first:
        a test that breaks the rule itself says why)."""
        if not settings:
            info = metric_info(metric, self.cube.higher[metric])
            name = f"{name.split(' over ')[0]} over {len(out)} setting(s), every one at floor"
            return ClaimTest(name, metric, info.heading, is_primary, deciding, None, None, None, None, 0, 0, "", {},
                             False, "at floor", self.cube.higher[metric], decimals=info.decimals, pair=pair,
                             at_floor=_floor_summary(out), left_out=out)
        t = _test(self.cube, name + (f"; {len(out)} setting(s) at floor left out" if out else ""), metric, terms,
                  self.cs.rule, is_primary, deciding, pair)
        t.left_out = out
        if is_primary and t.judged:
            nj = [f"{st[0]} {st[1]} steps T={st[2]}: {SYSTEM_LABELS[sys_]} {FLOOR_NOT_JUDGED} ({why})"
                  for st in settings for sys_ in pair
                  if (f := self.floor(sys_, st, metric))[0] == FLOOR_NOT_JUDGED and (why := f[1])]
            if nj:   # whether these systems beat their floors is unknown there: the test cannot vote
                t.judged, t.not_judged = False, f"its floor comparisons are not judged: {_floor_summary(nj, 2)}"
        return t


def _floor_summary(out: list[str], limit: int = 4) -> str:
    """'small 200 steps T=6: DiffWave at floor; ... (and 3 more)': which metric's settings and systems."""
    more = f"; and {len(out) - limit} more" if len(out) > limit else ""
    return "; ".join(out[:limit]) + more


def _labels(pair: tuple[str, str]) -> tuple[str, str]:
    return SYSTEM_LABELS[pair[0]], SYSTEM_LABELS[pair[1]]


def _claim_convergence(sc: _Scope, pair: tuple[str, str], title: str, convergence: pd.DataFrame | None,
                       convergence_metric: str | None, few_claim: int = 2) -> Claim:
    """Treatment - baseline averaged over the budget ladder (every size) at the longest T_infer run."""
    t_full = max(sc.all_t) if sc.all_t else 0
    scope = (f"the training-step ladder {sc.budgets} (checkpoints of one run per seed), every size, at T_infer = "
             f"{t_full} (the longest schedule run, so the few-step effect of claim {few_claim} does not leak in)")
    if len(sc.budgets) < 2:
        c = _not_judged("convergence", title, scope, f"needs a ladder of at least 2 training budgets; these runs "
                        f"have {sc.budgets or 'none'} (sweep.budgets)", ONE_BUDGET, pair)
    else:
        def build(m: str, is_primary: bool) -> list[ClaimTest]:
            every = _settings(sc.cube, m, t_infer={t_full}, systems=pair)
            st, out = sc.gate(every, m, pair, is_primary)
            return [sc.gated_test(f"mean over {len(st)} size/budget settings at T={t_full}", m, st, out,
                                  _pair_terms(sc.cube, st, m, pair=pair), is_primary, True, pair)] if every else []
        c = sc.decide("convergence", title, scope, sc.tests(build), pair)
    c.evidence = _evidence(sc.comparisons, sc.cube, sc.primary, t_infer={t_full}, pair=pair)
    if convergence is not None and convergence_metric is not None:
        c.notes = steps_to_reach(convergence, convergence_metric, sc.cube.higher.get(
            convergence_metric, metric_info(convergence_metric).higher_is_better), sc.cs.rule, pair)
    return c


def _claim_few_steps(sc: _Scope, pair: tuple[str, str], title: str) -> Claim:
    """Treatment - baseline averaged over the few-step T_infer run (every size, budget)."""
    few = [t for t in sc.all_t if t in sc.cs.few_steps]
    scope = f"T_infer in {few} (the few-step schedules {sorted(sc.cs.few_steps)} that were run), every size and budget"
    if not few:
        c = _not_judged("few_steps", title, scope, f"no run used a few-step schedule {sorted(sc.cs.few_steps)} "
                        f"(T_infer run: {sc.all_t})", NO_FEW_STEPS, pair)
    else:
        def build(m: str, is_primary: bool) -> list[ClaimTest]:
            every = _settings(sc.cube, m, t_infer=set(few), systems=pair)
            st, out = sc.gate(every, m, pair, is_primary)
            return [sc.gated_test(f"mean over {len(st)} size/budget/T settings", m, st, out,
                                  _pair_terms(sc.cube, st, m, pair=pair), is_primary, True, pair)] if every else []
        c = sc.decide("few_steps", title, scope, sc.tests(build), pair)
    c.evidence = _evidence(sc.comparisons, sc.cube, sc.primary, t_infer=set(few), pair=pair)
    return c


def _claim_small_size(sc: _Scope, pair: tuple[str, str], title: str, what: str = "network size") -> Claim:
    """The interaction (advantage at the smallest size - at the largest), with the smallest size as a guard."""
    a, b = _labels(pair)
    if len(sc.sizes) < 2:
        c = _not_judged("small_size", title, f"needs at least two {what}s",
                        f"only one {what} ({', '.join(sc.sizes) or 'none'}) was run, so the advantage cannot "
                        "be compared across sizes", ONE_SIZE, pair)
        c.evidence = _evidence(sc.comparisons, sc.cube, sc.primary, pair=pair)
        return c
    small, large = sc.sizes[0], sc.sizes[-1]
    n_params = sc.cube.n_params
    scope = (f"the {a} - {b} difference at {small} ({fmt_params(n_params[small])} parameters) "
             f"minus the same at {large} ({fmt_params(n_params[large])}), over their common budgets and "
             "T_infer; with the comparison at the small size as a guard")

    def build(m: str, is_primary: bool) -> list[ClaimTest]:
        every = sorted({s[1:] for s in _settings(sc.cube, m, sizes={small}, systems=pair)} &
                       {s[1:] for s in _settings(sc.cube, m, sizes={large}, systems=pair)})
        if not every:
            return []
        # a budget/T setting votes only when all four cells (both systems at both sizes) are above their floors
        kept_small, out_small = sc.gate([(small, b_, t) for b_, t in every], m, pair, is_primary)
        kept_large, out_large = sc.gate([(large, b_, t) for b_, t in every], m, pair, is_primary)
        common = sorted({s[1:] for s in kept_small} & {s[1:] for s in kept_large})
        out = out_small + out_large
        inter = _pair_terms(sc.cube, [(small, b_, t) for b_, t in common], m, pair=pair) + \
            _pair_terms(sc.cube, [(large, b_, t) for b_, t in common], m, weight=-1.0, pair=pair)
        at_small = _pair_terms(sc.cube, [(small, b_, t) for b_, t in common], m, pair=pair)
        both = [(size, b_, t) for size in (small, large) for b_, t in common]
        return [sc.gated_test(f"interaction ({small} advantage - {large} advantage) over {len(common)} settings",
                              m, both, out, inter, is_primary, True, pair),
                sc.gated_test(f"{a} - {b} at {small} over {len(common)} settings", m,
                              [(small, b_, t) for b_, t in common], out, at_small, is_primary, False, pair)]
    c = sc.decide("small_size", title, scope, sc.tests(build), pair)
    c.evidence = _evidence(sc.comparisons, sc.cube, sc.primary, sizes={small}, pair=pair)
    return c


def _claim_at(sc: _Scope, key: str, pair: tuple[str, str], title: str, budgets: set[int] | None,
              t_infer: set[int] | None, where: str) -> Claim:
    """Treatment - baseline averaged over the settings in scope (every size), one test per metric."""
    scope = f"{where}, every size"

    def build(m: str, is_primary: bool) -> list[ClaimTest]:
        every = _settings(sc.cube, m, budgets=budgets, t_infer=t_infer, systems=pair)
        st, out = sc.gate(every, m, pair, is_primary)
        return [sc.gated_test(f"mean over {len(st)} size/budget/T settings", m, st, out,
                              _pair_terms(sc.cube, st, m, pair=pair), is_primary, True, pair)] if every else []
    c = sc.decide(key, title, scope, sc.tests(build), pair)
    c.evidence = _evidence(sc.comparisons, sc.cube, sc.primary, t_infer=t_infer, budgets=budgets, pair=pair)
    return c


def evaluate_claims(cube: ScoreCube, cs: ClaimSettings, comparisons: pd.DataFrame | None = None,
                    convergence: pd.DataFrame | None = None, convergence_metric: str | None = None) -> list[Claim]:
    """The family's claims from the scores (and, for notes and evidence, the comparisons and curves):
    the vocoder's three, the acoustic model's five."""
    missing = [m for m in cs.primary_metrics if m not in cube.higher]
    if missing:
        key = "report" if cs.family == "vocoder" else "acoustic_report"
        raise ValueError(f"{key}.primary_metrics names {missing}, which the evaluate stage did not score "
                         f"(scored: {sorted(cube.higher)}); set {key}.primary_metrics or the evaluate metrics")
    primary = set(cs.primary_metrics)
    sc = _Scope(cube, cs, comparisons,
                metrics=list(cs.primary_metrics) + [m for m in cs.secondary_metrics if m not in primary],
                primary=primary, alpha=1.0 - cs.rule.level,
                all_t=sorted({k[4] for k in cube.keys("model")}), budgets=sorted({k[3] for k in cube.keys("model")}),
                sizes=cube.sizes)
    pairs = [tuple(p) for p in registry.comparisons(cs.family)]
    if cs.family == "vocoder":
        pair = pairs[0]
        run = {k[1] for k in cube.keys("model")}
        # beyond the paper: a registered alternative prior against the paper's method (SpecGrad - PriorGrad),
        # claimed only when both were run (the default sweep runs DiffWave and PriorGrad alone)
        beyond = [p for p in pairs[1:] if p[1] == pair[0] and set(p) <= run]
        return [
            _claim_convergence(sc, pair, "Faster convergence: at equal training steps PriorGrad scores better",
                               convergence, convergence_metric),
            _claim_few_steps(sc, pair, "Better quality at few inference steps"),
            _claim_small_size(sc, pair, "Robust at small network size: PriorGrad's advantage holds (or grows) with "
                              "fewer parameters"),
        ] + [_claim_at(sc, f"{p[0]}_vs_{p[1]}", p, f"{_labels(p)[0]} better than {_labels(p)[1]}: a prior beyond "
                       f"the paper's, over every size, training budget and T_infer run", None, None,
                       "every training budget and T_infer run") for p in beyond]
    (head, vs_b2) = pairs[0], pairs[1]
    a, b = _labels(head)
    t_full = max(sc.all_t) if sc.all_t else 0
    top = max(sc.budgets) if sc.budgets else 0
    return [
        _claim_convergence(sc, head, f"Faster convergence: at equal training steps {a} scores better than {b}",
                           convergence, convergence_metric, few_claim=3),
        _claim_at(sc, "equal_steps", head, f"Better quality at equal steps: {a} better than {b} when fully trained "
                  "and sampled with the longest schedule", {top}, {t_full},
                  f"the largest training budget ({top} steps) at T_infer = {t_full} (the longest schedule run)"),
        _claim_few_steps(sc, head, f"Few sampling steps: {a} better than {b} at T_infer in {sorted(cs.few_steps)}"),
        _claim_small_size(sc, head, f"Smaller decoder: {a}'s advantage over {b} holds (or grows) as the decoder "
                          "shrinks", what="decoder size"),
        _claim_at(sc, "trainable_prior", vs_b2, f"Phoneme prior vs trainable prior: {_labels(vs_b2)[0]} better than "
                  f"{_labels(vs_b2)[1]}", None, None, "every training budget and T_infer run"),
    ]


def _evidence(comparisons: pd.DataFrame | None, cube: ScoreCube, primary: set[str], sizes=None,
              t_infer=None, budgets=None, pair: tuple[str, str] = (TREATMENT, BASELINE)) -> list[Evidence]:
    """The per-setting comparisons in a claim's scope, primary metrics first (each with its own CI)."""
    from eval.aggregate import outcome_words

    if comparisons is None or comparisons.empty:
        return []
    c = comparisons[(comparisons["kind"] == "systems") & (comparisons["a"] == pair[0]) & (comparisons["b"] == pair[1])]
    if budgets is not None:
        c = c[c["budget"].isin(budgets)]
    if sizes is not None:
        c = c[c["size"].isin(sizes)]
    if t_infer is not None:
        c = c[c["t_infer"].isin(t_infer)]
    fl = comparisons[comparisons["kind"] == "floor"]
    floors = {(str(r["a"]), str(r["size"]), int(r["budget"]), int(r["t_infer"]), str(r["metric"])): floor_status(r)
              for r in fl.to_dict("records")}
    c = c.assign(_p=~c["metric"].isin(primary), _np=c["size"].map(lambda s: -cube.n_params.get(s, 0)))
    c = c.sort_values(["_p", "_np", "size", "budget", "t_infer", "metric"], kind="mergesort")
    out = []
    for _, r in c.iterrows():
        info = metric_info(str(r["metric"]), bool(r["higher_is_better"]))
        ok = not pd.isna(r["ci_low"])
        d = info.decimals + 1
        out.append(Evidence(
            str(r["size"]), fmt_params(cube.n_params.get(str(r["size"]), 0)), int(r["budget"]), int(r["t_infer"]),
            info.heading, str(r["metric"]) in primary, int(r["n"]),
            f"{int(r['n_seeds_a'])} / {int(r['n_seeds_b'])}",
            f"{int(r['n_dropped'])} ({r['dropped']})" if int(r["n_dropped"]) else "0",
            f"{r['mean_diff']:+.{d}f}" if not pd.isna(r["mean_diff"]) else "n/a",
            f"[{r['ci_low']:+.{d}f}, {r['ci_high']:+.{d}f}]" if ok else "n/a",
            outcome_words(r.to_dict()) + _floor_mark(floors, r, str(r["metric"]) in primary)))
    return out


def _floor_mark(floors: dict, r: pd.Series, is_primary: bool) -> str:
    """'; at floor (DiffWave), does not vote' for a primary setting the claims' floor gate leaves out."""
    if not is_primary:
        return ""
    setting = (str(r["size"]), int(r["budget"]), int(r["t_infer"]), str(r["metric"]))
    bad = [f"{SYSTEM_LABELS[s]} {st}" for s in (str(r["a"]), str(r["b"]))
           if (st := floors.get((s, *setting), NO_FLOOR)) not in (ABOVE_FLOOR, NO_FLOOR)]
    return f"; {AT_FLOOR_WORD} ({', '.join(bad)}), does not vote" if bad else ""


# --- convergence: steps to reach DiffWave's final validation score ---

def _first_reach(higher_is_better: bool, steps: np.ndarray):
    """The first step from which PriorGrad's seed-mean curve stays at least as good as DiffWave's final
    seed-mean value until the end of the run (inf if its last point is worse). 'Stays', not 'first
    touches': on a plateau, noise touches any nearby target early, so a first touch would report an
    earlier step for two identical systems most of the time."""
    def stat(pg: np.ndarray, dw: np.ndarray) -> float:
        target = dw[:, -1].mean()
        curve = pg.mean(axis=0)
        hit = curve >= target if higher_is_better else curve <= target
        if not hit[-1]:
            return math.inf
        misses = np.flatnonzero(~hit)
        return float(steps[misses[-1] + 1]) if misses.size else float(steps[0])
    return stat


def reach_steps(convergence: pd.DataFrame, metric: str, higher_is_better: bool, rule: Rule,
                pair: tuple[str, str] = (TREATMENT, BASELINE)) -> list[dict[str, Any]]:
    """Per size: the step from which PriorGrad's seed-mean validation curve stays at DiffWave's final
    seed-mean value or better (inf: not within the run; see _first_reach), with a 95% bootstrap-over-seeds CI (seeds are the only
    unit of a curve), DiffWave's final step and value, and the seeds of each."""
    from eval.hierarchical import bootstrap_seed_statistic

    out: list[dict[str, Any]] = []
    df = convergence[convergence["metric"].str.removeprefix("valid/") == metric]
    for size in sorted(df["size"].unique()):
        d = df[df["size"] == size]
        curves = {}
        for prior in (PRIOR_OF_SYSTEM[pair[0]], PRIOR_OF_SYSTEM[pair[1]]):
            p = d[d["prior"] == prior]
            if p.empty:
                break
            p = p[p["budget"] == p["budget"].max()]
            curves[prior] = p.pivot_table(index="seed", columns="step", values="value", aggfunc="mean")
        if len(curves) < 2:
            continue
        treated, base = PRIOR_OF_SYSTEM[pair[0]], PRIOR_OF_SYSTEM[pair[1]]
        steps = sorted(set(curves[treated].columns) & set(curves[base].columns))
        pg = curves[treated][steps].dropna(axis=0).to_numpy()
        dw = curves[base][steps].dropna(axis=0).to_numpy()
        if not steps or pg.shape[0] == 0 or dw.shape[0] == 0:
            continue
        st = np.asarray(steps, dtype=float)
        est, lo, hi, _ = bootstrap_seed_statistic(pg, dw, _first_reach(higher_is_better, st),
                                                  n_boot=min(rule.n_boot, 2000), seed=rule.seed, level=rule.level)
        out.append({"size": size, "step": est, "ci_low": lo, "ci_high": hi, "final_step": int(st[-1]),
                    "target": float(dw[:, -1].mean()), "seeds_pg": pg.shape[0], "seeds_dw": dw.shape[0],
                    "judged": min(pg.shape[0], dw.shape[0]) >= rule.min_seeds})
    return out


def steps_to_reach(convergence: pd.DataFrame, metric: str, higher_is_better: bool, rule: Rule,
                   pair: tuple[str, str] = (TREATMENT, BASELINE)) -> list[str]:
    """reach_steps in words, one line per size; descriptive (it does not vote)."""
    info = metric_info(metric, higher_is_better)
    a, b = SYSTEM_LABELS[pair[0]], SYSTEM_LABELS[pair[1]]
    fmt = lambda v: "not within the run" if math.isinf(v) else f"step {int(v)}"  # noqa: E731
    out = []
    for r in reach_steps(convergence, metric, higher_is_better, rule, pair):
        reason = "" if r["judged"] else f" Not judged: fewer than {rule.min_seeds} seeds per system."
        out.append(f"{r['size']}: {b}'s final validation {info.label} (step {r['final_step']}, seed mean) is "
                   f"{info.fmt(r['target'])}; {a}'s seed-mean curve reaches it for good at {fmt(r['step'])} "
                   f"(95% CI over seeds: {fmt(r['ci_low'])} to {fmt(r['ci_high'])}; {r['seeds_pg']} {a} / "
                   f"{r['seeds_dw']} {b} seeds). Descriptive: it does not vote.{reason}")
    return out
