"""The `report:` and `acoustic_report:` sections of params.yaml -> a typed, validated ReportConfig.

Every key must be set in params.yaml (the dataclass declares types, never values); an unknown key, a
missing key or a value of the wrong type is an error naming the params file and the key. The bootstrap
settings are not keys of `report:`: they are read from `evaluate:` so the report's contrasts use the
evaluate stage's bootstrap. `acoustic_report:` holds only what differs per family (metrics, primary
metrics, margins, convergence metrics, few steps, listening); the judging rule (min_seeds, claim_min_n,
bootstrap) and the figure settings are report:'s, so the SAME rule judges both sections.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# LEVEL: every interval of the report is a 95% CI; Holm's alpha is 1 - LEVEL (the judging rule's, eval/rule.py)
from eval.rule import LEVEL  # noqa: F401  (the report's generator reads it from here)
from priorgrad.core.schema import ConfigError, build_section, check_value



class ReportConfigError(ConfigError):
    """Invalid `report:` section; the message names the file and the key."""


@dataclass
class ReportConfig:
    title: str
    metrics: list[str]
    convergence_metrics: list[str]
    primary_metrics: list[str]               # decide the verdicts (Holm within each claim)
    equivalence_margins: dict[str, float]    # a significant difference inside +-margin is negligible (no vote)
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

    # Not a key of report: -- the acoustic_report: section (load_report_config sets it).
    acoustic: "AcousticReportConfig | None" = field(init=False)

    def family(self, name: str) -> "FamilyReport":
        """What one family's section uses: its own metrics and listening, the shared rule and figures."""
        src = self if name == "vocoder" else self.acoustic
        if src is None:
            raise ReportConfigError("acoustic_report: section not loaded (report_config_from_dict without acoustic=)")
        return FamilyReport(name, list(src.metrics), list(src.convergence_metrics), list(src.primary_metrics),
                            dict(src.equivalence_margins), list(src.few_steps), src.n_listening,
                            list(src.listening_metrics))

    def rule(self, family: str = "vocoder"):
        """The one judging rule (eval/rule.py) with this report's settings and the family's equivalence
        margins (report: for the vocoder, acoustic_report: for the acoustic model); the evaluate stages build
        the same one with eval.rule.load_rule."""
        from eval.rule import make_rule

        src = self if family == "vocoder" else self.acoustic
        if src is None:
            raise ReportConfigError("acoustic_report: section not loaded (report_config_from_dict without acoustic=)")
        return make_rule(self.min_seeds, self.claim_min_n, self.n_boot, self.bootstrap_seed, src.equivalence_margins)


@dataclass
class AcousticReportConfig:
    """acoustic_report: the acoustic section's metrics (qualified names, "E1/mel_cd", "E1/pesq_wb@rec")."""
    metrics: list[str]
    primary_metrics: list[str]
    equivalence_margins: dict[str, float]
    convergence_metrics: list[str]
    few_steps: list[int]
    n_listening: int
    listening_metrics: list[str]


@dataclass(frozen=True)
class FamilyReport:
    """One section's settings (ReportConfig.family): report: for the vocoder, acoustic_report: for the acoustic model."""
    family: str
    metrics: list[str]
    convergence_metrics: list[str]
    primary_metrics: list[str]
    equivalence_margins: dict[str, float]
    few_steps: list[int]
    n_listening: int
    listening_metrics: list[str]


# metrics that may be shown but never decide a verdict (the variance ratio has no better direction than "near 1")
NEVER_PRIMARY = ("gv_ratio",)


def acoustic_report_config_from_dict(section: Any, source: str = "params.yaml") -> AcousticReportConfig:
    """Build and validate the acoustic_report: section; every metric must be a qualified name."""
    from eval.contract import base_metric, split_metric

    if section is None:
        raise ReportConfigError(f"{source}: missing section 'acoustic_report'")
    try:
        cfg = build_section(AcousticReportConfig, section, f"{source}: acoustic_report")
        cfg.equivalence_margins = {k: check_value(v, float, f"{source}: acoustic_report.equivalence_margins.{k}")
                                   for k, v in cfg.equivalence_margins.items()}
    except ReportConfigError:
        raise
    except ConfigError as e:
        raise ReportConfigError(str(e)) from None

    def need(cond: bool, key: str, msg: str) -> None:
        if not cond:
            raise ReportConfigError(f"{source}: acoustic_report.{key}: {msg}")

    for key in ("metrics", "primary_metrics", "listening_metrics", "equivalence_margins"):
        for i, m in enumerate(getattr(cfg, key)):
            where = f"{key}.{m}" if key == "equivalence_margins" else f"{key}[{i}]"
            try:
                cond = split_metric(m)[0]
            except ValueError as e:
                raise ReportConfigError(f"{source}: acoustic_report.{where}: {e}") from None
            need(bool(cond), where, f"{m!r} is not qualified: expected '<E1|E2|E3>/<metric>[@rec]', e.g. 'E1/mel_cd'")
    for i, m in enumerate(cfg.convergence_metrics):
        need("/" not in m, f"convergence_metrics[{i}]", f"{m!r}: a validation metric of the acoustic trainer "
             "(convergence.csv, e.g. mel_l1), not a qualified test metric")
    need(bool(cfg.metrics), "metrics", "must name at least one metric")
    need(bool(cfg.primary_metrics), "primary_metrics", "must name at least one metric")
    need(len(set(cfg.primary_metrics)) == len(cfg.primary_metrics), "primary_metrics",
         f"names a metric twice: {cfg.primary_metrics}")
    never = [m for m in cfg.primary_metrics if base_metric(m) in NEVER_PRIMARY]
    need(not never, "primary_metrics", f"{never}: the variance ratio is shown as a secondary metric, never primary "
         "(its best value is 1, not an end of the scale)")
    no_margin = [m for m in cfg.primary_metrics if m not in cfg.equivalence_margins]
    need(not no_margin, "equivalence_margins", f"no margin for primary metric(s) {no_margin}")
    bad = {k: v for k, v in cfg.equivalence_margins.items() if not v > 0}
    need(not bad, "equivalence_margins", f"margins must be > 0, got {bad}")
    need(all(t >= 1 for t in cfg.few_steps), "few_steps", f"must be >= 1, got {cfg.few_steps}")
    need(cfg.n_listening >= 0, "n_listening", f"must be >= 0, got {cfg.n_listening}")
    return cfg


_NOT_GIVEN: Any = object()


def report_config_from_dict(section: Any, source: str = "params.yaml", evaluate: Any = None,
                            acoustic: Any = _NOT_GIVEN) -> ReportConfig:
    """Build and validate a ReportConfig from the raw `report:` mapping (`evaluate:` for the bootstrap,
    `acoustic_report:` for the acoustic section; not passed: the vocoder section only, cfg.acoustic None)."""
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
    cfg.acoustic = None if acoustic is _NOT_GIVEN else acoustic_report_config_from_dict(acoustic, source)
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
    from priorgrad.core.schema import read_params

    try:
        raw = read_params(params_path)
    except ReportConfigError:
        raise
    except ConfigError as e:
        raise ReportConfigError(str(e)) from None
    return report_config_from_dict(raw.get("report"), source=str(params_path), evaluate=raw.get("evaluate"),
                                   acoustic=raw.get("acoustic_report"))


def project_report_config(**changes: Any) -> ReportConfig:
    """The project params.yaml's report config with some fields changed (for tools and tests)."""
    cfg = load_report_config(Path(__file__).resolve().parents[1] / "params.yaml")
    boot = {k: changes.pop(k, getattr(cfg, k)) for k in ("n_boot", "bootstrap_seed", "acoustic")}  # init=False fields
    new = dataclasses.replace(cfg, **changes)
    for k, v in boot.items():
        setattr(new, k, v)
    return new
