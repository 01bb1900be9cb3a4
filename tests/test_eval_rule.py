"""The judging rule read by the evaluate stages (eval/rule.py) is the report's (reports/config.py)."""
from __future__ import annotations

import pytest

from eval.rule import load_rule, rule_from_params
from priorgrad.core.schema import ConfigError, read_params
from reports.config import load_report_config

from support.project import ROOT


@pytest.mark.parametrize("family", ["vocoder", "acoustic"])
def test_the_evaluate_stages_rule_is_the_reports(family: str) -> None:
    params = ROOT / "params.yaml"
    rule = load_rule(params, family)
    assert rule == load_report_config(params).rule(family) and rule.margins


def test_a_missing_or_bad_key_is_named() -> None:
    raw = read_params(ROOT / "params.yaml")
    with pytest.raises(ConfigError, match="evaluate: missing key"):
        rule_from_params({**raw, "evaluate": {}}, "vocoder")
    with pytest.raises(ConfigError, match="report.min_seeds: must be >= 2"):
        rule_from_params({**raw, "report": {**raw["report"], "min_seeds": 1}}, "acoustic")
    with pytest.raises(ConfigError, match="unknown family"):
        rule_from_params(raw, "violin")
