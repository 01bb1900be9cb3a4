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
DEFAULT_MARGINS = {"mrstft": 0.05, "pesq_wb": 0.1}
LEVEL = 0.95   # every interval of the report is a 95% CI; Holm's alpha is 1 - LEVEL


class ReportConfigError(ValueError):
    """Invalid `report:` section; the message names the file and the key."""


@dataclass
class ReportConfig:
    title: str = "PriorGrad vs DiffWave: benchmark report"
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    convergence_metrics: list[str] = field(default_factory=lambda: ["ls_mae", "mrstft"])
    primary_metrics: list[str] = field(default_factory=lambda: ["mrstft", "pesq_wb"])  # decide the verdicts
    equivalence_margins: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MARGINS))
    few_steps: list[int] = field(default_factory=lambda: [6, 12])
    min_seeds: int = 3
    claim_min_n: int = 8
    n_listening: int = 3
    listening_metrics: list[str] = field(default_factory=lambda: ["pesq_wb", "mrstft", "ls_mae"])
    figure_format: str = "png"
    dpi: int = 100
    # Not keys of report: -- read from the evaluate: section so the report's contrasts use the same
    # bootstrap as the evaluate stage's tables (load_report_config fills them).
    n_boot: int = 2000
    bootstrap_seed: int = 0

    def rule(self):
        """The one judging rule (eval.aggregate.Rule) with this report's settings."""
        from eval.aggregate import Rule

        return Rule(min_seeds=self.min_seeds, min_utts=self.claim_min_n, n_boot=self.n_boot,
                    seed=self.bootstrap_seed, level=LEVEL)


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
    elif isinstance(default, dict):
        ok = isinstance(value, dict) and all(isinstance(k, str) and (is_int(v) or isinstance(v, float))
                                             for k, v in value.items())
        want = "a mapping metric -> number"
        value = {k: float(v) for k, v in value.items()} if ok else value
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
    known = {f.name for f in dataclasses.fields(ReportConfig)} - {"n_boot", "bootstrap_seed"}
    kwargs: dict[str, Any] = {}
    for key, value in section.items():
        if key not in known:
            raise ReportConfigError(f"{source}: report.{key}: unknown key (known: {sorted(known)})")
        kwargs[key] = _check_type(value, getattr(defaults, key), f"{source}: report.{key}")
    cfg = ReportConfig(**kwargs)
    if cfg.figure_format not in ("png", "svg"):
        raise ReportConfigError(f"{source}: report.figure_format: expected png or svg, got {cfg.figure_format!r}")
    if cfg.min_seeds < 2:
        raise ReportConfigError(f"{source}: report.min_seeds: must be >= 2 (one seed has no seed variance), "
                                f"got {cfg.min_seeds}")
    if not cfg.primary_metrics:
        raise ReportConfigError(f"{source}: report.primary_metrics: must name at least one metric")
    if len(set(cfg.primary_metrics)) != len(cfg.primary_metrics):
        raise ReportConfigError(f"{source}: report.primary_metrics: names a metric twice: {cfg.primary_metrics}")
    no_margin = [m for m in cfg.primary_metrics if m not in cfg.equivalence_margins]
    if no_margin:
        raise ReportConfigError(f"{source}: report.equivalence_margins: no margin for primary metric(s) {no_margin}")
    bad = {k: v for k, v in cfg.equivalence_margins.items() if not v > 0}
    if bad:
        raise ReportConfigError(f"{source}: report.equivalence_margins: margins must be > 0, got {bad}")
    if cfg.claim_min_n < 1:
        raise ReportConfigError(f"{source}: report.claim_min_n: must be >= 1, got {cfg.claim_min_n}")
    if cfg.n_listening < 0:
        raise ReportConfigError(f"{source}: report.n_listening: must be >= 0, got {cfg.n_listening}")
    if not 30 <= cfg.dpi <= 600:
        raise ReportConfigError(f"{source}: report.dpi: must be in [30, 600], got {cfg.dpi}")
    if not cfg.metrics:
        raise ReportConfigError(f"{source}: report.metrics: must name at least one metric")
    return cfg


def _bootstrap_settings(raw: dict[str, Any], source: str) -> dict[str, int]:
    """evaluate.n_boot and evaluate.bootstrap_seed (the report's contrasts use the evaluate stage's bootstrap)."""
    ev = raw.get("evaluate")
    if ev is None:
        return {}
    if not isinstance(ev, dict):
        raise ReportConfigError(f"{source}: evaluate: expected a mapping")
    out = {}
    for key, name in (("n_boot", "n_boot"), ("bootstrap_seed", "bootstrap_seed")):
        if key in ev:
            v = ev[key]
            if isinstance(v, bool) or not isinstance(v, int):
                raise ReportConfigError(f"{source}: evaluate.{key}: expected an integer, got {v!r}")
            out[name] = v
    if out.get("n_boot", 100) < 100:
        raise ReportConfigError(f"{source}: evaluate.n_boot: must be >= 100 for a 95% CI, got {out['n_boot']}")
    return out


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
    cfg = report_config_from_dict(raw.get("report"), source=str(path))
    return dataclasses.replace(cfg, **_bootstrap_settings(raw, str(path)))
