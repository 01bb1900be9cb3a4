"""Statistics of one scored run: seeded bootstrap CIs, summaries with failures, tidy tables.
(Comparisons of systems over seeds: tests/test_eval_hierarchical.py.)"""
from __future__ import annotations

import math

import numpy as np
import pytest

from eval.registry import METRICS
from eval.runner import summarize_records
from eval.stats import bootstrap_ci, summarize, tidy_table


def test_bootstrap_ci_is_seeded_and_covers_the_mean():
    x = np.random.default_rng(1).normal(3.0, 1.0, size=200)
    a = bootstrap_ci(x, seed=0)
    assert a == bootstrap_ci(x, seed=0)
    assert a != bootstrap_ci(x, seed=1)
    low, high = a
    assert low < x.mean() < high
    # the half-width of a 95% CI of a mean is about 1.96 * sd / sqrt(n)
    assert (high - low) / 2 == pytest.approx(1.96 * x.std(ddof=1) / math.sqrt(x.size), rel=0.15)
    wide = bootstrap_ci(x[:20], seed=0)
    assert wide[1] - wide[0] > high - low
    narrow = bootstrap_ci(x, seed=0, level=0.5)
    assert narrow[0] > low and narrow[1] < high


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([1.0, float("nan")])


def test_summarize_counts_failures_and_never_scores_them_as_zero():
    s = summarize([1.0, None, 3.0, None])
    assert s["n"] == 2 and s["n_failed"] == 2
    assert s["mean"] == 2.0 and s["std"] == pytest.approx(math.sqrt(2.0))
    assert 1.0 <= s["ci_low"] <= s["ci_high"] <= 3.0
    empty = summarize([None, None])
    assert empty == {"n": 0, "n_failed": 2, "mean": None, "std": None, "ci_low": None, "ci_high": None}
    one = summarize([2.5])
    assert one["std"] is None and one["ci_low"] == one["ci_high"] == 2.5


def test_tidy_table_and_summary_records():
    records = [{"utt": "u1", "stoi": 0.9, "mcd": 5.0, "errors": {}},
               {"utt": "u2", "stoi": None, "mcd": 6.0, "errors": {"stoi": "ValueError: x"}}]
    df = tidy_table(records, system="priorgrad", setting="T6")
    assert list(df.columns) == ["system", "setting", "utt", "metric", "value"]
    assert len(df) == 4 and set(df["metric"]) == {"stoi", "mcd"}
    row = df[(df.utt == "u2") & (df.metric == "stoi")]
    assert row["value"].isna().all() and (df["system"] == "priorgrad").all()
    summary = summarize_records(records, [METRICS["stoi"], METRICS["mcd"]], seed=3)
    assert summary["stoi"]["n"] == 1 and summary["stoi"]["n_failed"] == 1
    assert summary["mcd"]["mean"] == 5.5 and summary["mcd"]["bootstrap"]["seed"] == 3
    assert summary["mcd"]["higher_is_better"] is False and summary["mcd"]["unit"] == "dB"
