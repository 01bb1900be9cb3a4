"""Aggregation over utterances: mean, std, seeded bootstrap CI, paired comparison, tidy tables.

A failed utterance is None in the per-utterance scores: it is counted in ``n_failed`` and left out
of every statistic (never treated as 0).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

BOOTSTRAP = {"method": "percentile bootstrap of the mean over utterances", "n_boot": 2000, "level": 0.95,
             "seed": 0}
_CHUNK = 256  # bootstrap resamples drawn per batch, to bound memory for long utterance lists


def _finite(values: Iterable[float], what: str = "values") -> np.ndarray:
    x = np.asarray(list(values), dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{what}: expected a flat list of numbers")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what}: contains NaN or infinite values (drop failed utterances first)")
    return x


def bootstrap_ci(values: Sequence[float], seed: int = 0, n_boot: int = 2000,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean, reproducible for a given seed."""
    x = _finite(values)
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, _CHUNK):
        k = min(_CHUNK, n_boot - start)
        idx = rng.integers(0, x.size, size=(k, x.size))
        means[start:start + k] = x[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def summarize(values: Sequence[float | None], seed: int = 0, n_boot: int = 2000,
              level: float = 0.95) -> dict[str, Any]:
    """n (scored), n_failed (None entries), mean, std (ddof=1), ci_low, ci_high; None where undefined."""
    scored = [float(v) for v in values if v is not None]
    n_failed = len(values) - len(scored)
    out: dict[str, Any] = {"n": len(scored), "n_failed": n_failed, "mean": None, "std": None,
                           "ci_low": None, "ci_high": None}
    if scored:
        x = _finite(scored)
        out["mean"] = float(x.mean())
        out["std"] = float(x.std(ddof=1)) if x.size > 1 else None
        out["ci_low"], out["ci_high"] = bootstrap_ci(x, seed=seed, n_boot=n_boot, level=level)
    return out


def _paired_arrays(a: Mapping[str, float | None] | Sequence[float | None],
                   b: Mapping[str, float | None] | Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(a, Mapping) != isinstance(b, Mapping):
        raise TypeError("paired_comparison: give two mappings utt -> value, or two sequences")
    if isinstance(a, Mapping):
        keys = sorted(set(a) & set(b))
        pairs = [(a[k], b[k]) for k in keys]
    else:
        if len(a) != len(b):
            raise ValueError(f"paired_comparison: sequences differ in length ({len(a)} vs {len(b)})")
        pairs = list(zip(a, b))
    kept = [(x, y) for x, y in pairs if x is not None and y is not None]
    if not kept:
        raise ValueError("paired_comparison: no utterance is scored in both systems")
    xa = _finite([x for x, _ in kept], "a")
    xb = _finite([y for _, y in kept], "b")
    return xa, xb


def paired_comparison(a: Mapping[str, float | None] | Sequence[float | None],
                      b: Mapping[str, float | None] | Sequence[float | None], seed: int = 0,
                      n_boot: int = 2000, level: float = 0.95) -> dict[str, Any]:
    """Paired a - b over utterances scored in both: mean, bootstrap CI, Wilcoxon signed-rank p.

    Mappings are paired by utterance id; sequences by position. Pairs with a None are dropped.
    """
    from scipy.stats import wilcoxon

    xa, xb = _paired_arrays(a, b)
    d = xa - xb
    ci_low, ci_high = bootstrap_ci(d, seed=seed, n_boot=n_boot, level=level)
    if np.all(d == 0):
        p = 1.0  # identical systems: no evidence of a difference (scipy would return NaN)
    else:
        p = float(wilcoxon(d).pvalue)
        if math.isnan(p):
            p = 1.0
    return {"n": int(d.size), "mean_diff": float(d.mean()), "ci_low": ci_low, "ci_high": ci_high,
            "p_wilcoxon": p}


def verdict(comparison: Mapping[str, Any], higher_is_better: bool) -> str | None:
    """"a" or "b" when the CI of a - b excludes 0 (the better system), else None."""
    lo, hi = comparison["ci_low"], comparison["ci_high"]
    if lo > 0:
        return "a" if higher_is_better else "b"
    if hi < 0:
        return "b" if higher_is_better else "a"
    return None


def tidy_table(records: Iterable[Mapping[str, Any]], system: str, setting: str = "",
               metrics: Sequence[str] | None = None):
    """Per-utterance records -> pandas DataFrame(system, setting, utt, metric, value); NaN = failed."""
    import pandas as pd

    from eval.registry import METRICS

    rows = []
    for rec in records:
        names = metrics if metrics is not None else [k for k in rec if k in METRICS]
        for m in names:
            v = rec.get(m)
            rows.append({"system": system, "setting": setting, "utt": rec["utt"], "metric": m,
                         "value": float("nan") if v is None else float(v)})
    df = pd.DataFrame(rows, columns=["system", "setting", "utt", "metric", "value"])
    return df.astype({"value": "float64"})
