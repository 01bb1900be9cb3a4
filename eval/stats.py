"""Aggregation over the utterances of ONE scored run: mean, std, seeded bootstrap CI, tidy tables.

A failed utterance is None in the per-utterance scores: it is counted in ``n_failed`` and left out
of every statistic (never treated as 0). These describe one set of generated files; comparing
systems (training runs, seeds) is eval.aggregate's job (two-level bootstrap, eval.hierarchical),
which replaced the utterance-only paired comparison and its Wilcoxon test: utterances are not the
unit of replication of a training method, and seeds of two systems are not paired, so no
Wilcoxon test is computed anywhere.
"""
from __future__ import annotations

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
