"""Two-level (hierarchical) bootstrap: training runs (seeds), then utterances.

The unit of replication is the training run: two networks trained with different seeds differ by
more than the test set can show, so an interval over utterances alone describes two particular
networks, not two methods. Every estimate here is a linear contrast of cell means,

    estimate = sum_k coef_k * mean over (seeds of run group g_k) x (utterances) of X_k[seed, utt],

where a *run group* is one system at one network size (its seeds are its training runs; the same
run appears at every budget of the ladder and every T_infer, so those cells share one seed draw).
One bootstrap replicate draws, for each run group independently, its seeds with replacement, and
one set of utterances with replacement shared by every term (pairing by utterance is kept). Draws
are multinomial counts, so a replicate is one weighted mean: vectorised, no copies of the data.

Small-sample correction: with S seeds the bootstrap variance of a mean over seeds is (S-1)/S of
the usual estimate and its distribution is normal-shaped where a t with few degrees of freedom is
due, so with 3 seeds a plain percentile interval covers far less than 95%. The replicates'
deviations from the estimate are therefore widened by sqrt(S/(S-1)) * t_{df}/z (S = the fewest
seeds of any run group, df = total seeds - run groups): calibrated when the seed variance dominates,
conservative when the utterance variance does (tests/test_eval_calibration.py measures both).
The p-value is the two-sided percentile-bootstrap one of the widened replicates (the smallest level
at which the interval would exclude 0); it feeds the Holm correction of the claims.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np


@dataclass(frozen=True)
class Term:
    """coef * (mean of X over seeds and utterances); X is (seeds, utterances), seeds of `group` in order."""
    coef: float
    group: Hashable
    values: np.ndarray


def small_sample_factor(seeds_per_group: Sequence[int], level: float) -> float:
    """sqrt(S/(S-1)) * t_{df}/z with S the fewest seeds of a group and df = sum(seeds) - groups; 1 if S < 2."""
    return _factor(min(seeds_per_group), sum(seeds_per_group) - len(seeds_per_group), float(level))


@functools.lru_cache(maxsize=256)
def _factor(s_min: int, df: int, level: float) -> float:
    from scipy.stats import norm, t

    if s_min < 2 or df < 1:
        return 1.0   # no seed variance can be estimated: the rule marks such results "not judged"
    q = 1.0 - (1.0 - level) / 2.0
    return math.sqrt(s_min / (s_min - 1)) * float(t.ppf(q, df) / norm.ppf(q))


def _weights(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """(n_boot, n) resampling counts (n draws with replacement per row), as float."""
    idx = rng.integers(0, n, size=(n_boot, n)) + (np.arange(n_boot) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def bootstrap_contrast(terms: Sequence[Term], n_boot: int, seed: int, level: float) -> dict[str, float]:
    """estimate, ci_low, ci_high, p of the contrast; every X must be finite and share its utterance columns.

    Groups draw their seeds in sorted order of their keys' repr, so the result does not depend on
    the order of `terms`.
    """
    if not terms:
        raise ValueError("bootstrap_contrast: no terms")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n_utts = terms[0].values.shape[1]
    by_group: dict[Hashable, list[Term]] = {}
    for term in terms:
        x = term.values
        if x.ndim != 2 or x.shape[1] != n_utts or x.shape[0] == 0 or n_utts == 0:
            raise ValueError(f"bootstrap_contrast: term of group {term.group!r} has shape {x.shape}, "
                             f"expected (seeds >= 1, {n_utts} utterances >= 1)")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"bootstrap_contrast: group {term.group!r} has NaN values (drop failed utterances first)")
        by_group.setdefault(term.group, []).append(term)
    rng = np.random.default_rng(seed)
    wu = _weights(rng, n_utts, n_boot) / n_utts                      # (B, U), rows sum to 1
    estimate = 0.0
    reps = np.zeros(n_boot)
    sizes = []
    for key in sorted(by_group, key=repr):
        group = by_group[key]
        n_seeds = group[0].values.shape[0]
        if any(t.values.shape[0] != n_seeds for t in group):
            raise ValueError(f"bootstrap_contrast: group {key!r}: terms have different numbers of seeds")
        sizes.append(n_seeds)
        coefs = np.array([t.coef for t in group])
        stack = np.stack([t.values for t in group])                  # (K, S, U)
        combined = np.tensordot(coefs, stack, axes=1)                # (S, U): the group's share of the contrast
        estimate += float(combined.mean())
        ws = _weights(rng, n_seeds, n_boot) / n_seeds                # (B, S)
        reps += np.sum((ws @ combined) * wu, axis=1)
    factor = small_sample_factor(sizes, level)
    widened = estimate + factor * (reps - estimate)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(widened, [alpha, 1.0 - alpha])
    if np.all(widened == estimate):
        p = 1.0 if estimate == 0 else 0.0
    else:
        p = float(min(1.0, 2.0 * min(np.mean(widened <= 0.0), np.mean(widened >= 0.0))))
    return {"estimate": estimate, "ci_low": float(min(low, estimate)), "ci_high": float(max(high, estimate)),
            "p": p, "factor": factor}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone), in the input order."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="mergesort")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return [float(v) for v in adjusted]


def bootstrap_seed_statistic(curves_a: np.ndarray, curves_b: np.ndarray, statistic, n_boot: int, seed: int,
                             level: float) -> tuple[float, float, float, np.ndarray]:
    """Percentile CI of statistic(curves_a, curves_b) resampling the seeds (rows) of a and b independently.

    For statistics of whole training curves (e.g. the step at which one system reaches another's
    final score), where the seed is the only unit there is. Returns (estimate, low, high, replicates);
    replicates may be inf (never reached).
    """
    rng = np.random.default_rng(seed)
    est = float(statistic(curves_a, curves_b))
    reps = np.empty(n_boot)
    na, nb = curves_a.shape[0], curves_b.shape[0]
    for i in range(n_boot):
        ia = rng.integers(0, na, na)
        ib = rng.integers(0, nb, nb)
        reps[i] = statistic(curves_a[ia], curves_b[ib])
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(reps, [alpha, 1.0 - alpha], method="inverted_cdf")
    return est, float(low), float(high), reps
