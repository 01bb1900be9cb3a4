"""Provenance section: where the numbers come from (from provenance.json) plus the report's own
inputs (content hashes, not timestamps, so the section is deterministic)."""
from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from priorgrad.core.fileio import file_digest

REPORT_PACKAGES = ("matplotlib", "seaborn", "jinja2", "pandas", "numpy")


def _flat(value: Any) -> str:
    if value is None or isinstance(value, (dict, list, bool)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def _run_rows(prov: dict[str, Any]) -> list[tuple[str, str]]:
    run_rows = [("git commit", _flat(prov["git_commit"])), ("params hash", _flat(prov["params_hash"]))]
    for key, label in (("corpus", "corpus"), ("machine", "machine")):
        v = prov[key]
        if isinstance(v, dict):
            run_rows += [(f"{label}: {k}", _flat(v[k])) for k in sorted(v)]
        else:
            run_rows.append((label, _flat(v)))
    for k in sorted(set(prov) - {"git_commit", "params_hash", "corpus", "machine", "metric_versions"}):
        run_rows.append((k, _flat(prov[k])))
    return run_rows


def _metric_rows(mv: Any) -> list[tuple[str, str, str, str]]:
    """metric -> (implementation, version, settings): eval.registry's info() dicts, or plain strings."""
    metric_rows = []
    for k in (sorted(mv) if isinstance(mv, dict) else []):
        v = mv[k]
        if isinstance(v, dict):
            metric_rows.append((k, _flat(v.get("implementation", "")), _flat(v.get("version", "")),
                                _flat(v.get("settings", ""))))
        else:
            metric_rows.append((k, _flat(v), "", ""))
    if not isinstance(mv, dict):
        metric_rows.append(("all", _flat(mv), "", ""))
    return metric_rows


def _trial_rows(trials: list[dict[str, Any]] | None) -> list[list[str]]:
    return [[_flat(t.get(k)) for k in ("trial", "prior", "size", "seed", "budget", "mlflow_run_id")]
            for t in sorted(trials or [], key=lambda t: str(t["trial"]))]


def build_provenance(prov: dict[str, Any], input_files: list[Path], report_params_hash: str,
                     trials: list[dict[str, Any]] | None = None, acoustic_prov: dict[str, Any] | None = None,
                     acoustic_trials: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Rows for the template: run provenance, metric implementations, report inputs, tools, and the
    trials with their MLflow run ids (to find each one in the MLflow UI); with the acoustic section, its
    run provenance (e.g. the vocoder that rendered its mels) and trials too."""
    run_rows = _run_rows(prov)
    metric_rows = _metric_rows(prov["metric_versions"])
    if acoustic_prov is not None:
        metric_rows += [(f"acoustic: {k}", *rest) for k, *rest in _metric_rows(acoustic_prov["metric_versions"])]
    inputs, seen = [], set()
    for f in input_files:
        # "eval/scores.csv"; the acoustic side's files have the same names, so one more folder: "acoustic/eval/..."
        k = 2
        while "/".join(f.parts[-k:]) in seen and k < len(f.parts):
            k += 1
        seen.add("/".join(f.parts[-k:]))
        inputs.append(("/".join(f.parts[-k:]), file_digest(f, 16)))
    tools = [("python", platform.python_version())] + [(p, _version(p)) for p in REPORT_PACKAGES]
    return {"run": run_rows, "metrics": metric_rows, "inputs": inputs, "tools": tools,
            "report_params_hash": report_params_hash, "trials": _trial_rows(trials),
            "acoustic_run": _run_rows(acoustic_prov) if acoustic_prov is not None else [],
            "acoustic_trials": _trial_rows(acoustic_trials) if acoustic_prov is not None else []}
