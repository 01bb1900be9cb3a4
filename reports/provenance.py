"""Provenance section: where the numbers come from (from provenance.json) plus the report's own
inputs (content hashes, not timestamps, so the section is deterministic)."""
from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from priorgrad.fileio import file_digest

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


def build_provenance(prov: dict[str, Any], input_files: list[Path], report_params_hash: str,
                     trials: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Rows for the template: run provenance, metric implementations, report inputs, tools, and the
    trials with their MLflow run ids (to find each one in the MLflow UI)."""
    run_rows = [("git commit", _flat(prov["git_commit"])), ("params hash", _flat(prov["params_hash"]))]
    for key, label in (("corpus", "corpus"), ("machine", "machine")):
        v = prov[key]
        if isinstance(v, dict):
            run_rows += [(f"{label}: {k}", _flat(v[k])) for k in sorted(v)]
        else:
            run_rows.append((label, _flat(v)))
    for k in sorted(set(prov) - {"git_commit", "params_hash", "corpus", "machine", "metric_versions"}):
        run_rows.append((k, _flat(prov[k])))
    # metric -> (implementation, version, settings): eval.registry's info() dicts, or plain strings
    mv = prov["metric_versions"]
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
    inputs = [(p.parent.name + "/" + p.name, file_digest(p, 16)) for p in input_files]
    tools = [("python", platform.python_version())] + [(p, _version(p)) for p in REPORT_PACKAGES]
    trial_rows = [[_flat(t.get(k)) for k in ("trial", "prior", "size", "seed", "budget", "mlflow_run_id")]
                  for t in sorted(trials or [], key=lambda t: str(t["trial"]))]
    return {"run": run_rows, "metrics": metric_rows, "inputs": inputs, "tools": tools,
            "report_params_hash": report_params_hash, "trials": trial_rows}
