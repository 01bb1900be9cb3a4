"""Tables of a finished sweep: runs/sweep/trials.json and the tidy convergence table.

convergence.csv columns: trial, prior, size, n_params, seed, budget, step, metric, value; the same
curves also as convergence/valid_<metric>.csv and train_loss.csv (one file per metric, for
`dvc plots show`).
Metric names lose the trainer's prefixes: ``valid/ls_mae`` -> ``ls_mae``, ``valid/loss`` -> ``loss``,
``train/loss`` -> ``train_loss`` (the smoothed training loss over the last log_every steps).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from eval.contract import (CONVERGENCE_COLUMNS, CONVERGENCE_CSV, CURVES_DIR, FINAL_VALID_JSON, TRIAL_KEYS,
                                  TRIALS_JSON, write_csv)
from priorgrad.core.fileio import read_jsonl, write_json_atomic


def metric_name(key: str) -> str | None:
    if key.startswith("valid/"):
        return key[len("valid/"):]
    if key == "train/loss":
        return "train_loss"
    return None  # throughput and other bookkeeping keys are not convergence curves


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: trial metrics missing (did the trial run?)")
    return read_jsonl(path)


def convergence_rows(result: dict[str, Any], metrics_path: Path) -> list[dict[str, Any]]:
    # A step can appear twice for one metric only if a run was resumed without truncation; keep the last.
    latest: dict[tuple[int, str], float] = {}
    for rec in read_metrics(metrics_path):
        step = int(rec["step"])
        for key, value in rec.items():
            name = metric_name(key)
            if name is None or value is None or not math.isfinite(float(value)):
                continue
            latest[(step, name)] = float(value)
    base = {k: result[k] for k in ("trial", "prior", "size", "n_params", "seed", "budget")}
    return [{**base, "step": step, "metric": name, "value": value}
            for (step, name), value in sorted(latest.items())]


def write_tables(results: list[tuple[dict[str, Any], Path]], out_dir: Path) -> tuple[Path, Path]:
    """results: (trial_result, run_dir) pairs in sweep order -> trials.json and convergence.csv."""
    trials, rows = [], []
    for result, run_dir in results:
        trials.append({k: result.get(k) for k in TRIAL_KEYS})
        rows.extend(convergence_rows(result, run_dir / "metrics.jsonl"))
    trials_path, conv_path = out_dir / TRIALS_JSON, out_dir / CONVERGENCE_CSV
    write_json_atomic(trials_path, trials)
    write_csv(conv_path, [{**r, "value": repr(r["value"])} for r in rows], CONVERGENCE_COLUMNS)
    write_metric_curves(rows, out_dir / CURVES_DIR)
    return trials_path, conv_path


CURVE_KEYS = ["trial", "prior", "size", "seed", "budget", "step"]


def write_metric_curves(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """One CSV per metric (``valid_<metric>.csv`` or ``train_loss.csv``: trial, prior, size, seed,
    budget, step, then the metric's values in a column of the file's name).

    The metric's values are the LAST column, named after the metric, so ``dvc plots show`` draws
    one plot per file with the metric on the y axis (DVC takes y from the last column when a plot
    declares none). Files of metrics no longer recorded are removed.
    """
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_metric.setdefault(r["metric"], []).append(r)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for metric, mrows in sorted(by_metric.items()):
        # the file and column name is the plot's title and y label: say which split it was measured on
        label = metric if metric == "train_loss" else f"valid_{metric}"
        path = out / f"{label}.csv"
        write_csv(path, [{**{k: r[k] for k in CURVE_KEYS}, label: repr(r["value"])} for r in mrows],
                  [*CURVE_KEYS, label])
        written.append(path)
    for stale in out.glob("*.csv"):
        if stale not in written:
            stale.unlink()
    return written


def final_metrics(results: list[tuple[dict[str, Any], Path]], out_dir: Path) -> Path:
    """A small DVC metrics file: the last validation score of every trial."""
    out = {}
    for result, _ in results:
        out[result["trial"]] = {k[len("valid/"):]: v for k, v in result.items()
                                if k.startswith("valid/") and isinstance(v, (int, float))}
    path = out_dir / FINAL_VALID_JSON
    write_json_atomic(path, out)
    return path


def convergence_figure(records: list[dict[str, Any]], title: str = ""):
    """One panel per curve of a trial's metrics.jsonl records (validation metrics, training loss),
    metric against training step: the figure logged with the trial's MLflow run."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a training node
    from matplotlib.figure import Figure

    curves: dict[str, dict[int, float]] = {}
    for rec in records:
        for key, value in rec.items():
            name = metric_name(key)
            if name is None or value is None or not math.isfinite(float(value)):
                continue
            curves.setdefault(name, {})[int(rec["step"])] = float(value)
    names = sorted(curves, key=lambda n: (n == "train_loss", n))  # validation metrics first
    cols = min(3, max(1, len(names)))
    rows = max(1, -(-len(names) // cols))
    fig = Figure(figsize=(3.6 * cols, 2.6 * rows), layout="constrained")
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        steps = sorted(curves[name])
        ax.plot(steps, [curves[name][s] for s in steps], marker="o" if len(steps) < 30 else None, markersize=3)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("training step", fontsize=8)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
