"""The `report:` section of params.yaml -> a typed, validated ReportConfig.

Every key must be set in params.yaml (the dataclass declares types, never values); an unknown key, a
missing key or a value of the wrong type is an error naming the params file and the key. The bootstrap
settings are not keys of `report:`: they are read from `evaluate:` so the report's contrasts use the
evaluate stage's bootstrap.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from priorgrad.schema import ConfigError, build_section, check_value

LEVEL = 0.95   # every interval of the report is a 95% CI; Holm's alpha is 1 - LEVEL


class ReportConfigError(ConfigError):
    """Invalid `report:` section; the message names the file and the key."""


@dataclass
class ReportConfig:
    title: str
    metrics: list[str]
    convergence_metrics: list[str]
    primary_metrics: list[str]               # decide the verdicts (Holm within each claim)
    equivalence_margins: dict[str, float]    # "no difference detected" when every primary CI is inside +-margin
    few_steps: list[int]
    min_seeds: int
    claim_min_n: int
    n_listening: int
    listening_metrics: list[str]
    figure_format: str
    dpi: int
    # Not keys of report: -- read from the evaluate: section (load_report_config sets them).
    n_boot: int = field(init=False)
    bootstrap_seed: int = field(init=False)

    def rule(self):
        """The one judging rule (eval.aggregate.Rule) with this report's settings."""
        from eval.aggregate import Rule

        return Rule(min_seeds=self.min_seeds, min_utts=self.claim_min_n, n_boot=self.n_boot,
                    seed=self.bootstrap_seed, level=LEVEL)


def report_config_from_dict(section: Any, source: str = "params.yaml", evaluate: Any = None) -> ReportConfig:
    """Build and validate a ReportConfig from the raw `report:` mapping (and `evaluate:` for the bootstrap)."""
    if section is None:
        raise ReportConfigError(f"{source}: missing section 'report'")
    try:
        cfg = build_section(ReportConfig, section, f"{source}: report")
        margins = {k: check_value(v, float, f"{source}: report.equivalence_margins.{k}")
                   for k, v in cfg.equivalence_margins.items()}
        cfg.equivalence_margins = margins
        if not isinstance(evaluate, dict):
            raise ConfigError(f"{source}: evaluate: a mapping with n_boot and bootstrap_seed is needed by the report")
        for key in ("n_boot", "bootstrap_seed"):
            if key not in evaluate:
                raise ConfigError(f"{source}: evaluate: missing key(s) ['{key}']")
            setattr(cfg, key, check_value(evaluate[key], int, f"{source}: evaluate.{key}"))
    except ReportConfigError:
        raise
    except ConfigError as e:
        raise ReportConfigError(str(e)) from None
    _validate(cfg, source)
    return cfg


def _validate(cfg: ReportConfig, source: str) -> None:
    def need(cond: bool, key: str, msg: str) -> None:
        if not cond:
            raise ReportConfigError(f"{source}: {key}: {msg}")

    need(cfg.figure_format in ("png", "svg"), "report.figure_format", f"expected png or svg, got {cfg.figure_format!r}")
    need(cfg.min_seeds >= 2, "report.min_seeds", f"must be >= 2 (one seed has no seed variance), got {cfg.min_seeds}")
    need(bool(cfg.primary_metrics), "report.primary_metrics", "must name at least one metric")
    need(len(set(cfg.primary_metrics)) == len(cfg.primary_metrics), "report.primary_metrics",
         f"names a metric twice: {cfg.primary_metrics}")
    no_margin = [m for m in cfg.primary_metrics if m not in cfg.equivalence_margins]
    need(not no_margin, "report.equivalence_margins", f"no margin for primary metric(s) {no_margin}")
    bad = {k: v for k, v in cfg.equivalence_margins.items() if not v > 0}
    need(not bad, "report.equivalence_margins", f"margins must be > 0, got {bad}")
    need(cfg.claim_min_n >= 1, "report.claim_min_n", f"must be >= 1, got {cfg.claim_min_n}")
    need(cfg.n_listening >= 0, "report.n_listening", f"must be >= 0, got {cfg.n_listening}")
    need(30 <= cfg.dpi <= 600, "report.dpi", f"must be in [30, 600], got {cfg.dpi}")
    need(bool(cfg.metrics), "report.metrics", "must name at least one metric")
    need(cfg.n_boot >= 100, "evaluate.n_boot", f"must be >= 100 for a 95% CI, got {cfg.n_boot}")


def load_report_config(params_path: str | Path) -> ReportConfig:
    """Read the `report:` section of params.yaml (with its profile overlay).

    Only this section (and evaluate's bootstrap settings) is validated here: the report is the last stage
    and every earlier stage has validated the rest of the file; the core loader would pull in torch.
    """
    from priorgrad.schema import read_params

    try:
        raw = read_params(params_path)
    except ReportConfigError:
        raise
    except ConfigError as e:
        raise ReportConfigError(str(e)) from None
    return report_config_from_dict(raw.get("report"), source=str(params_path), evaluate=raw.get("evaluate"))


def project_report_config(**changes: Any) -> ReportConfig:
    """The project params.yaml's report config with some fields changed (for tools and tests)."""
    cfg = load_report_config(Path(__file__).resolve().parents[1] / "params.yaml")
    boot = {k: changes.pop(k, getattr(cfg, k)) for k in ("n_boot", "bootstrap_seed")}  # init=False fields
    new = dataclasses.replace(cfg, **changes)
    for k, v in boot.items():
        setattr(new, k, v)
    return new
