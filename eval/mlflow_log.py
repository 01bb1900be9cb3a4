"""Eval results into MLflow: one metric per final score, the interval details as a table, a figure.

What a user browsing MLflow sees for a run's test scores:

- metrics: ``{prefix}{metric}`` = the mean over utterances, ONE value per metric (so the charts are
  the scores, not five bookkeeping series beside each);
- the table ``eval/{stem}summary_table.json`` (``log_table``; MLflow's artifact view shows it as a
  table): per metric n, n_failed, mean, std, ci_low, ci_high, unit, direction, implementation, version;
- tags ``eval.{metric}.implementation`` / ``eval.{metric}.version``;
- artifacts ``eval/{stem}summary.json`` (the full summary, settings included) and ``eval/{stem}scores.jsonl``.

``log_summary`` writes to the ACTIVE run (the caller owns it); ``log_test_scores`` writes through a
``priorgrad.core.tracking.Tracker`` (e.g. ``experiments.trackers.MLflowTracker.for_run(uri, run_id)``),
all T_infer of one trained model at once, with a quality-vs-T_infer figure.
"""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

TABLE_COLUMNS = ("metric", "n", "n_failed", "mean", "std", "ci_low", "ci_high", "unit", "higher_is_better",
                 "implementation", "version")
QUALITY_FIGURE = "figures/test_quality_vs_t_infer.png"
TEST_TABLE = "eval/test_summary_table.json"


def _artifact_stem(prefix: str) -> str:
    # "test/" -> "test_"; artifact file names must not depend on slashes in the metric prefix
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", prefix).strip("_")
    return f"{stem}_" if stem else ""


def summary_metrics(summary: Mapping[str, Mapping[str, Any]], prefix: str = "") -> dict[str, float]:
    """``{prefix}{metric}`` -> mean; a metric with no score (mean None) is left out, never 0."""
    return {f"{prefix}{name}": float(s["mean"]) for name, s in summary.items() if s.get("mean") is not None}


def summary_table(summary: Mapping[str, Mapping[str, Any]], **extra: Any) -> list[dict[str, Any]]:
    """One row per metric with the interval details (None where undefined); ``extra`` columns first."""
    return [{**extra, "metric": name, **{k: s.get(k) for k in TABLE_COLUMNS if k != "metric"}}
            for name, s in summary.items()]


def _version_tags(summary: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    return {f"eval.{name}.{k}": str(s[k]) for name, s in summary.items()
            for k in ("implementation", "version") if s.get(k) is not None}


def log_summary(summary: Mapping[str, Mapping[str, Any]], records: Sequence[Mapping[str, Any]] | None = None,
                prefix: str = "", step: int | None = None) -> dict[str, float]:
    """Log to the active run; returns the metrics logged. Raises RuntimeError without an active run."""
    import mlflow
    import pandas as pd

    if mlflow.active_run() is None:
        raise RuntimeError("eval.mlflow_log.log_summary needs an active MLflow run "
                           "(call it inside `with mlflow.start_run():`)")
    metrics = summary_metrics(summary, prefix)
    if metrics:
        mlflow.log_metrics(metrics, step=step)
    tags = _version_tags(summary)
    if tags:
        mlflow.set_tags(tags)
    stem = _artifact_stem(prefix)
    mlflow.log_table(pd.DataFrame(summary_table(summary), columns=list(TABLE_COLUMNS)),
                     f"eval/{stem}summary_table.json")
    mlflow.log_dict(dict(summary), f"eval/{stem}summary.json")
    if records is not None:
        text = "".join(json.dumps(dict(r), allow_nan=False) + "\n" for r in records)
        mlflow.log_text(text, f"eval/{stem}scores.jsonl")
    return metrics


def quality_figure(per_t: Mapping[int, Mapping[str, Mapping[str, Any]]], title: str = ""):
    """Mean and 95% CI of each metric against T_infer, one panel per metric (a matplotlib Figure)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a training node
    from matplotlib.figure import Figure

    ts = sorted(per_t)
    names = [m for m in next(iter(per_t.values()))] if per_t else []
    cols = min(4, max(1, len(names)))
    rows = max(1, -(-len(names) // cols))
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows), layout="constrained")
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        pts = [(t, per_t[t][name]) for t in ts if per_t[t].get(name, {}).get("mean") is not None]
        if pts:
            x = [t for t, _ in pts]
            y = [s["mean"] for _, s in pts]
            lo = [s["mean"] - s["ci_low"] if s.get("ci_low") is not None else 0.0 for _, s in pts]
            hi = [s["ci_high"] - s["mean"] if s.get("ci_high") is not None else 0.0 for _, s in pts]
            ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3)
        else:
            ax.text(0.5, 0.5, "no scores", ha="center", va="center", transform=ax.transAxes)
        s0 = next(iter(per_t.values())).get(name, {})
        arrow = "higher is better" if s0.get("higher_is_better") else "lower is better"
        ax.set_title(f"{name} ({arrow})", fontsize=9)
        ax.set_xlabel("T_infer (sampling steps)", fontsize=8)
        ax.set_ylabel(str(s0.get("unit") or "score"), fontsize=8)
        ax.set_xticks(ts)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def log_test_scores(tracker: Any, per_t: Mapping[int, tuple[Sequence[Mapping[str, Any]],
                                                             Mapping[str, Mapping[str, Any]]]],
                    comparisons_path: str | Path | None = None, title: str = "", step: int = 0) -> dict[str, float]:
    """A trained model's test scores at every T_infer, through a ``priorgrad.core.tracking.Tracker``.

    ``step``: the training step the scored checkpoint was taken at (a rung of the budget ladder); the
    metrics are logged at that step, so a run's test scores form a curve over its budgets, and the
    files of a step other than 0 carry ``_b<step>`` in their names.

    ``per_t``: {T_infer: (per-utterance records, eval summary)}. Logs metrics ``test/T{t}/{metric}``
    (the mean, one value each), the table ``eval/test_summary_table.json`` (one row per T_infer and
    metric with n, n_failed, std and CI), tags with each metric's implementation and version, the
    summaries and records as files under ``eval/``, the comparisons file if given, and the figure
    ``figures/test_quality_vs_t_infer.png``. Returns the metrics logged.
    """
    metrics: dict[str, float] = {}
    table: list[dict[str, Any]] = []
    tags: dict[str, str] = {}
    for t, (_, summ) in sorted(per_t.items()):
        metrics.update(summary_metrics(summ, prefix=f"test/T{t}/"))
        table.extend(summary_table(summ, t_infer=t))
        tags.update(_version_tags(summ))
    suffix = f"_b{step}" if step else ""
    if metrics:
        tracker.log_metrics(metrics, step=step)
    if tags:
        tracker.set_tags(tags)
    if table:
        tracker.log_table(table, TEST_TABLE.replace(".json", f"{suffix}.json"))
    with tempfile.TemporaryDirectory(prefix="eval-mlflow-") as tmp:
        d = Path(tmp) / "eval"
        d.mkdir()
        for t, (records, summ) in sorted(per_t.items()):
            (d / f"test{suffix}_T{t}_summary.json").write_text(json.dumps(dict(summ), indent=2, allow_nan=False))
            (d / f"test{suffix}_T{t}_scores.jsonl").write_text(
                "".join(json.dumps(dict(r), allow_nan=False) + "\n" for r in records))
        tracker.log_artifact(d, "eval")
    if comparisons_path is not None:
        tracker.log_artifact(Path(comparisons_path), "eval")
    if per_t:
        fig = quality_figure({t: summ for t, (_, summ) in per_t.items()}, title=title)
        tracker.log_figure(fig, QUALITY_FIGURE.replace(".png", f"{suffix}.png"))
    return metrics
