"""Log an eval summary (and optionally the per-utterance scores) to the ACTIVE MLflow run.

Metric names: ``{prefix}{metric}`` is the mean over utterances, ``{prefix}{metric}_std``,
``_ci_low``, ``_ci_high``, ``_n`` and ``_n_failed`` the rest; undefined values (None) are not
logged. Implementation and version of each metric go to tags ``{prefix}{metric}.implementation``
and ``.version``; the full summary (settings included) to the artifact ``eval/<prefix>summary.json``
and the records to ``eval/<prefix>scores.jsonl``. The caller owns the run (start/end, tracking URI).
"""
from __future__ import annotations

import json
import re
from typing import Any, Mapping, Sequence

_STATS = ("std", "ci_low", "ci_high", "n", "n_failed")


def _artifact_stem(prefix: str) -> str:
    # "test/" -> "test_"; artifact file names must not depend on slashes in the metric prefix
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", prefix).strip("_")
    return f"{stem}_" if stem else ""


def summary_metrics(summary: Mapping[str, Mapping[str, Any]], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for name, s in summary.items():
        if s.get("mean") is not None:
            out[f"{prefix}{name}"] = float(s["mean"])
        for k in _STATS:
            if s.get(k) is not None:
                out[f"{prefix}{name}_{k}"] = float(s[k])
    return out


def log_summary(summary: Mapping[str, Mapping[str, Any]], records: Sequence[Mapping[str, Any]] | None = None,
                prefix: str = "", step: int | None = None) -> dict[str, float]:
    """Log to the active run; returns the metrics logged. Raises RuntimeError without an active run."""
    import mlflow

    if mlflow.active_run() is None:
        raise RuntimeError("eval.mlflow_log.log_summary needs an active MLflow run "
                           "(call it inside `with mlflow.start_run():`)")
    metrics = summary_metrics(summary, prefix)
    if metrics:
        mlflow.log_metrics(metrics, step=step)
    tags: dict[str, str] = {}
    for name, s in summary.items():
        for k in ("implementation", "version"):
            if s.get(k) is not None:
                tags[f"{prefix}{name}.{k}"] = str(s[k])
    if tags:
        mlflow.set_tags(tags)
    stem = _artifact_stem(prefix)
    mlflow.log_dict(dict(summary), f"eval/{stem}summary.json")
    if records is not None:
        text = "".join(json.dumps(dict(r), allow_nan=False) + "\n" for r in records)
        mlflow.log_text(text, f"eval/{stem}scores.jsonl")
    return metrics
