"""Tables of a finished sweep: runs/sweep/trials.json and the tidy convergence table.

convergence.csv columns: trial, prior, size, n_params, seed, budget, step, metric, value.
Metric names lose the trainer's prefixes: ``valid/ls_mae`` -> ``ls_mae``, ``valid/loss`` -> ``loss``,
``train/loss`` -> ``train_loss`` (the smoothed training loss over the last log_every steps).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from experiments.contract import (CONVERGENCE_COLUMNS, CONVERGENCE_CSV, FINAL_VALID_JSON, TRIAL_KEYS, TRIALS_JSON,
                                  write_csv)
from priorgrad.fileio import read_jsonl, write_json_atomic


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
    return trials_path, conv_path


def final_metrics(results: list[tuple[dict[str, Any], Path]], out_dir: Path) -> Path:
    """A small DVC metrics file: the last validation score of every trial."""
    out = {}
    for result, _ in results:
        out[result["trial"]] = {k[len("valid/"):]: v for k, v in result.items()
                                if k.startswith("valid/") and isinstance(v, (int, float))}
    path = out_dir / FINAL_VALID_JSON
    write_json_atomic(path, out)
    return path
