"""The one judging rule, read from params.yaml: the evaluate stages (their headline comparisons) and the
report (every verdict) build it here, so both judge alike (torch-free).

Its settings: report.min_seeds and report.claim_min_n, evaluate.n_boot and evaluate.bootstrap_seed, and the
family's equivalence margins (report.equivalence_margins for the vocoder, acoustic_report's for the
acoustic model). The report's config (reports/config.py) validates the rest of its sections.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from eval.aggregate import Rule
from priorgrad.core.schema import ConfigError, check_value

LEVEL = 0.95   # every interval of the evaluation and the report is a 95% CI; Holm's alpha is 1 - LEVEL
MARGINS_SECTION = {"vocoder": "report", "acoustic": "acoustic_report"}  # where a family's margins live


def make_rule(min_seeds: int, claim_min_n: int, n_boot: int, bootstrap_seed: int,
              margins: Mapping[str, float]) -> Rule:
    """The rule with these settings at the project's LEVEL."""
    return Rule(min_seeds=min_seeds, min_utts=claim_min_n, n_boot=n_boot, seed=bootstrap_seed, level=LEVEL,
                margins=dict(margins))


def rule_from_params(raw: Mapping[str, Any], family: str = "vocoder", source: str = "params.yaml") -> Rule:
    """The rule of a family from a resolved params mapping; ConfigError naming the key when one is missing
    or of the wrong type (report.min_seeds must be >= 2: one seed has no seed variance)."""
    if family not in MARGINS_SECTION:
        raise ConfigError(f"{source}: unknown family {family!r} (known: {sorted(MARGINS_SECTION)})")

    def get(section: str, key: str, tp: Any) -> Any:
        sec = raw.get(section)
        if not isinstance(sec, dict) or key not in sec:
            raise ConfigError(f"{source}: {section}: missing key(s) ['{key}']")
        return check_value(sec[key], tp, f"{source}: {section}.{key}")

    min_seeds = get("report", "min_seeds", int)
    if min_seeds < 2:
        raise ConfigError(f"{source}: report.min_seeds: must be >= 2 (one seed has no seed variance), got {min_seeds}")
    section = MARGINS_SECTION[family]
    margins = get(section, "equivalence_margins", dict[str, float])
    margins = {k: check_value(v, float, f"{source}: {section}.equivalence_margins.{k}") for k, v in margins.items()}
    try:
        return make_rule(min_seeds, get("report", "claim_min_n", int), get("evaluate", "n_boot", int),
                         get("evaluate", "bootstrap_seed", int), margins)
    except ValueError as e:
        raise ConfigError(f"{source}: {e}") from None


def load_rule(params_path: str | Path, family: str = "vocoder") -> Rule:
    """The rule of a family from params.yaml (with its profile overlay)."""
    from priorgrad.core.schema import read_params

    return rule_from_params(read_params(params_path), family, str(params_path))
