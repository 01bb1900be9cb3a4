"""The `report:` section of params.yaml -> a typed, validated ReportConfig.

Every key must be set in params.yaml (the dataclass declares types, never values); an unknown key, a
missing key or a value of the wrong type is an error naming the params file and the key.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from priorgrad.schema import ConfigError, build_section


class ReportConfigError(ConfigError):
    """Invalid `report:` section; the message names the file and the key."""


@dataclass
class ReportConfig:
    title: str
    metrics: list[str]
    convergence_metrics: list[str]
    claim_metrics: list[str]          # empty = the table metrics
    few_steps: list[int]
    claim_min_fraction: float
    claim_min_n: int
    n_listening: int
    listening_metrics: list[str]
    figure_format: str
    dpi: int


def report_config_from_dict(section: Any, source: str = "params.yaml") -> ReportConfig:
    """Build and validate a ReportConfig from the raw `report:` mapping."""
    if section is None:
        raise ReportConfigError(f"{source}: missing section 'report'")
    try:
        cfg = build_section(ReportConfig, section, f"{source}: report")
    except ReportConfigError:
        raise
    except ConfigError as e:
        raise ReportConfigError(str(e)) from None
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
    """Read the `report:` section of params.yaml (with its profile overlay).

    Only this section is validated here: the report is the last stage and every earlier stage has
    validated the rest of the file; the core loader would pull in torch and double the start-up time.
    """
    from priorgrad.schema import read_params

    try:
        raw = read_params(params_path)
    except ReportConfigError:
        raise
    except ConfigError as e:
        raise ReportConfigError(str(e)) from None
    return report_config_from_dict(raw.get("report"), source=str(params_path))
