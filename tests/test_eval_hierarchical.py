"""The two-level bootstrap (eval.hierarchical) and the aggregation with its one judging rule (eval.aggregate).

Every input is per-utterance scores in the scores.csv contract, run through build_cube/aggregate."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eval.aggregate import (FLOOR, NOT_JUDGED, SCORE_COLUMNS, Rule, aggregate, build_cube, contrast, headline, judge,
                            mlflow_tags, model_key, outcome)
from eval.hierarchical import Term, bootstrap_contrast, holm, small_sample_factor

RULE = Rule(min_seeds=3, min_utts=8, n_boot=1000, seed=0, level=0.95)


def scores(n_seeds: int = 3, n_utts: int = 10, shift: float = 0.0, seed_sd: float = 0.0, utt_sd: float = 1.0,
           resid_sd: float = 0.05, budgets=(100,), t_infer=(6,), seed: int = 0, sizes=("tiny",),
           floor: float | None = None, seeds_b: int | None = None) -> pd.DataFrame:
    """priorgrad = diffwave - shift (MR-STFT, lower is better) per utterance, plus seed and residual noise."""
    rng = np.random.default_rng(seed)
    utt = rng.normal(3.0, utt_sd, n_utts)
    rows = []
    for system, prior, s_n, sh in (("priorgrad", "energy", n_seeds, -shift),
                                   ("diffwave", "standard", seeds_b or n_seeds, 0.0)):
        for size in sizes:
            for s in range(s_n):
                run = rng.normal(0, seed_sd)
                for b in budgets:
                    for t in t_infer:
                        for i in range(n_utts):
                            rows.append([system, prior, size, 100, s, b, t, f"u{i}", "mrstft",
                                         utt[i] + sh + run + rng.normal(0, resid_sd), "model"])
        if floor is not None:
            for s in range(s_n):
                for i in range(n_utts):
                    rows.append([system, prior, "", 0, s, 0, 0, f"u{i}", "mrstft",
                                 floor + rng.normal(0, resid_sd), FLOOR])
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def systems_row(comparisons: list[dict], **match) -> dict:
    hits = [c for c in comparisons if c["kind"] == "systems" and all(c[k] == v for k, v in match.items())]
    assert len(hits) == 1, hits
    return hits[0]


# --- the bootstrap ---

def test_small_sample_factor_and_holm() -> None:
    assert small_sample_factor([1, 5], 0.95) == 1.0
    # 3 seeds per system: sqrt(3/2) * t_4 / z = 1.2247 * 2.7764 / 1.9600
    assert small_sample_factor([3, 3], 0.95) == pytest.approx(1.2247 * 2.7764 / 1.96, rel=1e-3)
    assert small_sample_factor([20, 20], 0.95) < 1.1
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.2, 0.001]) == pytest.approx([0.2, 0.002])


def test_bootstrap_is_seeded_and_order_free() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 12)), rng.normal(size=(4, 12))
    one = bootstrap_contrast([Term(1, "a", a), Term(-1, "b", b)], 500, 3, 0.95)
    assert one == bootstrap_contrast([Term(-1, "b", b), Term(1, "a", a)], 500, 3, 0.95)
    assert one != bootstrap_contrast([Term(1, "a", a), Term(-1, "b", b)], 500, 4, 0.95)
    assert one["estimate"] == pytest.approx(a.mean() - b.mean())
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_contrast([Term(1, "a", np.array([[1.0, np.nan]]))], 500, 0, 0.95)


def test_seed_variance_widens_the_interval() -> None:
    """The unit of replication is the training run: the same utterance-level data with a large seed
    effect gives a much wider CI than with none (an utterance-only bootstrap would not see it)."""
    calm = contrast(build_cube(scores(seed_sd=0.0), {"mrstft": False}),
                    [(1, model_key("priorgrad", "tiny", 100, 6, "mrstft")),
                     (-1, model_key("diffwave", "tiny", 100, 6, "mrstft"))], RULE)
    noisy = contrast(build_cube(scores(seed_sd=0.5), {"mrstft": False}),
                     [(1, model_key("priorgrad", "tiny", 100, 6, "mrstft")),
                      (-1, model_key("diffwave", "tiny", 100, 6, "mrstft"))], RULE)
    assert (noisy["ci_high"] - noisy["ci_low"]) > 5 * (calm["ci_high"] - calm["ci_low"])


def test_pairing_by_utterance_is_kept() -> None:
    """A large utterance effect shared by both systems cancels: a 0.3 shift is found despite utt SD 1."""
    df = scores(shift=0.3, utt_sd=1.0, resid_sd=0.05)
    _, comps = aggregate(df, {"mrstft": False}, RULE)
    c = systems_row(comps, metric="mrstft")
    assert c["mean_diff"] == pytest.approx(-0.3, abs=0.05)
    assert c["ci_high"] < 0 and outcome(c) == "a better"


def test_budgets_of_one_run_are_not_independent_replicates() -> None:
    """A seed at two budgets is the same run: with a seed effect shared by the budgets, pooling the
    budgets must not narrow the interval (treating them as new runs would shrink it by sqrt(2))."""
    df = scores(seed_sd=0.5, budgets=(100, 200), resid_sd=0.01, seed=3)
    cube = build_cube(df, {"mrstft": False})
    one = contrast(cube, [(1, model_key("priorgrad", "tiny", 100, 6, "mrstft")),
                          (-1, model_key("diffwave", "tiny", 100, 6, "mrstft"))], RULE)
    both = contrast(cube, [(0.5, model_key("priorgrad", "tiny", b, 6, "mrstft")) for b in (100, 200)] +
                    [(-0.5, model_key("diffwave", "tiny", b, 6, "mrstft")) for b in (100, 200)], RULE)
    assert (both["ci_high"] - both["ci_low"]) > 0.9 * (one["ci_high"] - one["ci_low"])


# --- the one rule ---

def test_judge_rule() -> None:
    assert judge({"priorgrad": 3, "diffwave": 3}, 8, RULE) == ""
    assert judge({"priorgrad": 2, "diffwave": 3}, 8, RULE) == "fewer than 3 seeds (priorgrad: 2 seeds)"
    assert judge({"priorgrad": 3, "diffwave": 3}, 7, RULE) == "7 utterances < 8"


def test_too_few_seeds_is_shown_but_not_judged_everywhere() -> None:
    """A huge, tight difference from 2 seeds: the CI excludes 0 but the comparison is not judged, and
    every consumer (outcome, headline, MLflow tags) says so."""
    df = scores(n_seeds=2, shift=1.0, resid_sd=0.01)
    summary, comps = aggregate(df, {"mrstft": False}, RULE)
    c = systems_row(comps, metric="mrstft")
    assert c["ci_high"] < 0 and not c["judged"] and outcome(c) == NOT_JUDGED
    assert c["n_seeds_a"] == c["n_seeds_b"] == 2 and "fewer than 3 seeds" in c["not_judged"]
    cell = headline(summary, comps)["tiny-b100-T6"]["mrstft"]
    assert (cell["judged"], cell["outcome"], cell["n_seeds"]) == (0, 0, 2)
    tags = mlflow_tags(comps, "priorgrad", "tiny", 100)
    assert tags["cmp/T6/mrstft"].startswith("not judged (fewer than 3 seeds")
    judged = systems_row(aggregate(scores(n_seeds=3, shift=1.0, resid_sd=0.01), {"mrstft": False}, RULE)[1],
                         metric="mrstft")
    assert judged["judged"] and outcome(judged) == "a better"
    assert mlflow_tags([judged], "diffwave", "tiny", 100) == {"cmp/T6/mrstft": "PriorGrad better"}


def test_failed_utterance_is_dropped_for_both_systems_and_counted() -> None:
    df = scores(n_utts=9)
    i = df.index[(df["system"] == "diffwave") & (df["seed"] == 1) & (df["utt"] == "u4")][0]
    df.loc[i, "value"] = np.nan
    summary, comps = aggregate(df, {"mrstft": False}, RULE)
    c = systems_row(comps, metric="mrstft")
    assert (c["n"], c["n_dropped"]) == (8, 1) and "diffwave tiny b100 T6" in c["dropped"] and c["judged"]
    pg = next(s for s in summary if s["system"] == "priorgrad")
    dw = next(s for s in summary if s["system"] == "diffwave")
    assert (pg["n"], pg["n_failed"]) == (9, 0) and (dw["n"], dw["n_failed"], dw["n_dropped"]) == (8, 1, 1)
    # the dropped utterance is gone from both sides: the difference is the mean over the other 8
    cube = build_cube(df, {"mrstft": False})
    keep = [u != "u4" for u in cube.utts]
    pga = cube.cells[model_key("priorgrad", "tiny", 100, 6, "mrstft")].values[:, keep].mean()
    dwa = np.nanmean(cube.cells[model_key("diffwave", "tiny", 100, 6, "mrstft")].values[:, keep])
    assert c["mean_diff"] == pytest.approx(pga - dwa)
    # one more failure and the comparison falls under claim_min_n: shown, not judged
    j = df.index[(df["system"] == "priorgrad") & (df["seed"] == 0) & (df["utt"] == "u5")][0]
    df.loc[j, "value"] = np.nan
    c2 = systems_row(aggregate(df, {"mrstft": False}, RULE)[1], metric="mrstft")
    assert c2["n"] == 7 and not c2["judged"] and c2["not_judged"] == "7 utterances < 8"


def test_floor_comparisons() -> None:
    """Each system cell against its own prior's noise: a system scoring like its floor is not better."""
    df = scores(floor=3.0, utt_sd=0.0, shift=0.0)   # both systems score ~3.0, the floor too
    summary, comps = aggregate(df, {"mrstft": False}, RULE)
    floors = [c for c in comps if c["kind"] == "floor"]
    assert {(c["a"], c["b"], c["prior_b"]) for c in floors} == {("priorgrad", FLOOR, "energy"),
                                                                 ("diffwave", FLOOR, "standard")}
    assert all(c["judged"] and outcome(c) != "a better" for c in floors)
    assert [s["kind"] for s in summary].count(FLOOR) == 2
    better = aggregate(scores(floor=6.0, utt_sd=0.0), {"mrstft": False}, RULE)[1]
    assert all(outcome(c) == "a better" for c in better if c["kind"] == "floor")
    assert mlflow_tags(better, "priorgrad", "tiny", 100)["floor/T6/mrstft"] == "PriorGrad better"


def test_significant_difference_inside_the_margin_is_negligible_everywhere() -> None:
    """Issue 17: a tight, significant difference no larger than the metric's equivalence margin names no
    better system in the comparison rows, metrics.json, the MLflow tags or the floor check."""
    from dataclasses import replace

    from eval.aggregate import ABOVE_FLOOR, AT_FLOOR, NEGLIGIBLE, floor_status

    df = scores(shift=0.03, resid_sd=0.005, floor=3.06, utt_sd=0.0)   # PriorGrad 0.03 better; floors 0.06, 0.09 worse
    rule = replace(RULE, margins={"mrstft": 0.1})
    summary, comps = aggregate(df, {"mrstft": False}, rule)
    c = systems_row(comps, metric="mrstft")
    assert c["judged"] and c["ci_high"] < 0 and c["margin"] == 0.1 and c["outcome"] == NEGLIGIBLE
    assert headline(summary, comps)["tiny-b100-T6"]["mrstft"]["outcome"] == 0
    assert mlflow_tags(comps, "priorgrad", "tiny", 100)["cmp/T6/mrstft"].startswith("negligible difference (|-0.03")
    # both systems beat their floor significantly but by less than the margin: at floor, not above it
    floors = [r for r in comps if r["kind"] == "floor"]
    assert all(r["ci_high"] < 0 for r in floors) and {floor_status(r) for r in floors} == {AT_FLOOR}
    # without margins (eval compare --margins none) the same rows name the better system
    _, plain = aggregate(df, {"mrstft": False}, RULE)
    assert systems_row(plain, metric="mrstft")["outcome"] == "a better"
    assert {floor_status(r) for r in plain if r["kind"] == "floor"} == {ABOVE_FLOOR}
    assert floor_status(None) == "no floor scored"


def test_bad_scores_are_named() -> None:
    df = scores()
    with pytest.raises(ValueError, match="duplicate score"):
        build_cube(pd.concat([df, df.iloc[:1]]), {"mrstft": False})
    with pytest.raises(ValueError, match="unknown kind"):
        build_cube(df.assign(kind="noise"), {"mrstft": False})
    with pytest.raises(ValueError, match="direction of metric"):
        build_cube(df, {"stoi": True})
