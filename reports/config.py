"""The `report:` section of params.yaml -> a typed, validated ReportConfig.

Every key is optional (the defaults below are the ones params.yaml documents); an unknown key or a
value of the wrong type is an error naming the params file and the key, so a typo never silently
falls back to a default.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The paper's table columns, in the paper's order; the report shows whichever of them were scored.
DEFAULT_METRICS = ["pesq_wb", "stoi", "mrstft", "ls_mae", "mcd", "f0_rmse", "dnsmos_ovrl"]


class ReportConfigError(ValueError):
    """Invalid `report:` section; the message names the file and the key."""


@dataclass
class ReportConfig:
    title: str = "PriorGrad vs DiffWave: benchmark report"
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    convergence_metrics: list[str] = field(default_factory=lambda: ["ls_mae", "mrstft"])
    claim_metrics: list[str] = field(default_factory=list)   # empty = the table metrics
    few_steps: list[int] = field(default_factory=lambda: [6, 12])
    claim_min_fraction: float = 0.5
    claim_min_n: int = 8
    n_listening: int = 3
    listening_metrics: list[str] = field(default_factory=lambda: ["pesq_wb", "mrstft", "ls_mae"])
    figure_format: str = "png"
    dpi: int = 100


def _check_type(value: Any, default: Any, where: str) -> Any:
    """Return value (ints widened to float where a float is expected) or raise naming `where`."""
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if isinstance(default, bool):
        ok, want = isinstance(value, bool), "a boolean"
    elif isinstance(default, int):
        ok, want = is_int(value), "an integer"
    elif isinstance(default, float):
        ok, want = is_int(value) or isinstance(value, float), "a number"
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok, want = isinstance(value, str), "a string"
    elif where.endswith("few_steps"):
        ok, want = isinstance(value, list) and all(is_int(v) for v in value), "a list of integers"
    else:
        ok, want = isinstance(value, list) and all(isinstance(v, str) for v in value), "a list of names"
    if not ok:
        raise ReportConfigError(f"{where}: expected {want}, got {value!r}")
    return value


def report_config_from_dict(section: dict[str, Any] | None, source: str = "params.yaml") -> ReportConfig:
    """Build and validate a ReportConfig from the raw `report:` mapping (None = all defaults)."""
    if section is None:
        return ReportConfig()
    if not isinstance(section, dict):
        raise ReportConfigError(f"{source}: report: expected a mapping, got {type(section).__name__}")
    defaults = ReportConfig()
    known = {f.name for f in dataclasses.fields(ReportConfig)}
    kwargs: dict[str, Any] = {}
    for key, value in section.items():
        if key not in known:
            raise ReportConfigError(f"{source}: report.{key}: unknown key (known: {sorted(known)})")
        kwargs[key] = _check_type(value, getattr(defaults, key), f"{source}: report.{key}")
    cfg = ReportConfig(**kwargs)
    if cfg.figure_format not in ("png", "svg"):
        raise ReportConfigError(f"{source}: report.figure_format: expected png or svg, got {cfg.figure_format!r}")
    if not 0.0 < cfg.claim_min_fraction <= 1.0:
        raise ReportConfigError(f"{source}: report.claim_min_fraction: must be in (0, 1], got {cfg.claim_min_fraction}")
    if cfg.claim_min_n < 1:
        raise ReportConfigError(f"{source}: report.claim_min_n: must be >= 1, got {cfg.claim_min_n}")
    if cfg.n_listening < 0:
        raise ReportConfigError(f"{source}: report.n_listening: must be >= 0, got {cfg.n_listening}")
    if not 30 <= cfg.dpi <= 600:
        raise ReportConfigError(f"{source}: report.dpi: must be in [30, 600], got {cfg.dpi}")
    if not cfg.metrics:
        raise ReportConfigError(f"{source}: report.metrics: must name at least one metric")
    return cfg


def load_report_config(params_path: str | Path) -> ReportConfig:
    """Read the `report:` section of params.yaml.

    Only this section is read (with PyYAML, as the core loader does): the report is the last stage
    and every earlier stage has validated the rest of the file; importing the core loader would pull
    in torch and double the stage's start-up time.
    """
    import yaml

    path = Path(params_path)
    if not path.is_file():
        raise ReportConfigError(f"{path}: parameters file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ReportConfigError(f"{path}: invalid YAML ({e})") from e
    if not isinstance(raw, dict):
        raise ReportConfigError(f"{path}: top level must be a mapping")
    return report_config_from_dict(raw.get("report"), source=str(path))
