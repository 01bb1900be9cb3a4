"""Report pieces in isolation: config validation, input validation (errors name the file), the
results-table marks, the claim rule, deterministic figure files."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from reports.claims import _verdict, evaluate_claims
from reports.config import ReportConfig, ReportConfigError, load_report_config, report_config_from_dict
from reports.inputs import ReportInputError, load_runs
from reports.tables import MARK_BETTER, MARK_WORSE, build_results_table
from test_reports_support import make_runs


# --- config ---

def test_config_defaults_and_validation(tmp_path: Path) -> None:
    assert report_config_from_dict(None) == ReportConfig()
    cfg = report_config_from_dict({"n_listening": 2, "few_steps": [6], "claim_min_fraction": 1})
    assert cfg.n_listening == 2 and cfg.few_steps == [6] and cfg.claim_min_fraction == 1.0
    with pytest.raises(ReportConfigError, match=r"p\.yaml: report\.n_listeners: unknown key"):
        report_config_from_dict({"n_listeners": 2}, source="p.yaml")
    with pytest.raises(ReportConfigError, match=r"report\.few_steps: expected a list of integers"):
        report_config_from_dict({"few_steps": ["6"]})
    with pytest.raises(ReportConfigError, match=r"report\.figure_format: expected png or svg"):
        report_config_from_dict({"figure_format": "jpg"})
    with pytest.raises(ReportConfigError, match=r"report\.metrics: expected a list of names"):
        report_config_from_dict({"metrics": "pesq_wb"})

    params = tmp_path / "params.yaml"
    params.write_text("train:\n  max_steps: 10\nreport:\n  dpi: 80  # comment\n")
    assert load_report_config(params).dpi == 80
    with pytest.raises(ReportConfigError, match="parameters file not found"):
        load_report_config(tmp_path / "missing.yaml")


def test_project_params_report_section_is_valid() -> None:
    """The report: section committed in params.yaml (and any profile beside it) parses."""
    root = Path(__file__).resolve().parents[1]
    for name in ("params.yaml", "params.smoke.yaml", "params.gpu.yaml"):
        path = root / name
        if path.is_file() and "\nreport:" in path.read_text():
            load_report_config(path)


# --- inputs: every problem names the file ---

@pytest.fixture(scope="module")
def runs_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs_template")
    make_runs(root)
    return root


@pytest.fixture
def runs(runs_template: Path, tmp_path: Path) -> Path:
    shutil.copytree(runs_template / "runs", tmp_path / "runs")
    return tmp_path / "runs"


def _rewrite_csv(path: Path, fn) -> None:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    rows = fn(rows)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def test_missing_output_is_named(runs: Path) -> None:
    (runs / "eval" / "rtf.csv").unlink()
    with pytest.raises(ReportInputError, match=r"eval/rtf\.csv: required pipeline output not found"):
        load_runs(runs / "eval", runs / "sweep")


def test_missing_column_is_named(runs: Path) -> None:
    _rewrite_csv(runs / "eval" / "scores.csv", lambda rows: [r[:-1] for r in rows])
    with pytest.raises(ReportInputError, match=r"scores\.csv: missing columns \['value'\]"):
        load_runs(runs / "eval", runs / "sweep")


def test_bad_number_names_row(runs: Path) -> None:
    def corrupt(rows):
        rows[3][-1] = "0.5x"
        return rows
    _rewrite_csv(runs / "sweep" / "convergence.csv", corrupt)
    with pytest.raises(ReportInputError, match=r"convergence\.csv: row 4: column 'value' is not a number: '0\.5x'"):
        load_runs(runs / "eval", runs / "sweep")


def test_empty_value_allowed_only_in_scores(runs: Path) -> None:
    data = load_runs(runs / "eval", runs / "sweep")
    assert data.scores["value"].isna().sum() == 1     # a failed utterance stays missing, never 0

    def blank(rows):
        rows[1][-1] = ""
        return rows
    _rewrite_csv(runs / "sweep" / "convergence.csv", blank)
    with pytest.raises(ReportInputError, match=r"convergence\.csv: row 2: column 'value' is not a number"):
        load_runs(runs / "eval", runs / "sweep")


def test_duplicate_score_is_named(runs: Path) -> None:
    _rewrite_csv(runs / "eval" / "scores.csv", lambda rows: rows + [rows[5]])
    with pytest.raises(ReportInputError, match=r"scores\.csv: row \d+: duplicate score"):
        load_runs(runs / "eval", runs / "sweep")


def test_unknown_prior_and_swapped_comparison(runs: Path) -> None:
    comp = runs / "eval" / "comparisons.json"
    recs = json.loads(comp.read_text())
    recs[0]["a"], recs[0]["b"] = "diffwave", "priorgrad"
    comp.write_text(json.dumps(recs))
    with pytest.raises(ReportInputError, match=r"comparisons\.json: item 0: expected a=priorgrad, b=diffwave"):
        load_runs(runs / "eval", runs / "sweep")
    recs[0]["a"], recs[0]["b"] = "priorgrad", "diffwave"
    comp.write_text(json.dumps(recs))

    _rewrite_csv(runs / "sweep" / "convergence.csv", lambda rows: [rows[0]] + [
        [c if i != 1 else c.replace("energy", "phoneme") for i, c in enumerate(r)] for r in rows[1:]])
    with pytest.raises(ReportInputError, match=r"convergence\.csv: column 'prior' has unknown values \['phoneme'\]"):
        load_runs(runs / "eval", runs / "sweep")


def test_bad_audio_dir_and_provenance(runs: Path) -> None:
    (runs / "eval" / "audio" / "priorgrad_small").mkdir()
    with pytest.raises(ReportInputError, match=r"priorgrad_small: audio directory name is not"):
        load_runs(runs / "eval", runs / "sweep")
    (runs / "eval" / "audio" / "priorgrad_small").rmdir()
    prov = runs / "eval" / "provenance.json"
    prov.write_text(json.dumps({"git_commit": "x"}))
    with pytest.raises(ReportInputError, match=r"provenance\.json: missing keys \['params_hash'"):
        load_runs(runs / "eval", runs / "sweep")


# --- the results table ---

def _summary_row(system: str, metric: str, mean: float, hib: bool, t: int = 6) -> dict:
    return {"system": system, "prior": "energy" if system == "priorgrad" else "standard", "size": "small",
            "n_params": 1000, "budget": 100, "t_infer": t, "metric": metric, "n": 10, "n_failed": 0,
            "mean": mean, "std": 0.1, "ci_low": mean - 0.05, "ci_high": mean + 0.05, "higher_is_better": hib}


def _comp(metric: str, lo: float, hi: float, hib: bool, t: int = 6, size: str = "small", budget: int = 100) -> dict:
    return {"size": size, "budget": budget, "t_infer": t, "metric": metric, "n": 10, "mean_diff": (lo + hi) / 2,
            "ci_low": lo, "ci_high": hi, "p_wilcoxon": 0.01, "higher_is_better": hib, "a": "priorgrad",
            "b": "diffwave"}


def test_table_best_and_markers_respect_direction() -> None:
    summary = pd.DataFrame([
        _summary_row("diffwave", "pesq_wb", 3.0, True), _summary_row("priorgrad", "pesq_wb", 2.5, True),
        _summary_row("diffwave", "mrstft", 1.5, False), _summary_row("priorgrad", "mrstft", 1.2, False),
        _summary_row("diffwave", "stoi", 0.9, True), _summary_row("priorgrad", "stoi", 0.9, True),
    ])
    comps = pd.DataFrame([_comp("pesq_wb", -0.6, -0.4, True),     # PriorGrad lower PESQ: worse
                          _comp("mrstft", -0.4, -0.2, False),     # PriorGrad lower MR-STFT: better
                          _comp("stoi", -0.01, 0.01, True)])      # CI contains 0: no marker
    table = build_results_table(summary, comps, ["pesq_wb", "stoi", "mrstft", "f0_rmse"])
    assert [m.key for m in table.metrics] == ["pesq_wb", "stoi", "mrstft"]   # f0_rmse absent: left out
    dw, pg = table.rows
    assert (dw.system, pg.system) == ("diffwave", "priorgrad")
    assert dw.cells[0].best and not pg.cells[0].best          # higher PESQ wins
    assert pg.cells[2].best and not dw.cells[2].best          # lower MR-STFT wins
    assert dw.cells[1].best and pg.cells[1].best              # tie: both marked
    assert (pg.cells[0].marker, pg.cells[1].marker, pg.cells[2].marker) == (MARK_WORSE, "", MARK_BETTER)
    assert all(c.marker == "" for c in dw.cells)
    assert pg.cells[0].text == "2.50 \u00b1 0.05" and table.n_significant == 2


def test_table_rejects_no_known_metric() -> None:
    summary = pd.DataFrame([_summary_row("diffwave", "pesq_wb", 3.0, True)])
    with pytest.raises(ValueError, match=r"scores none of the report's metrics \['mcd'\]"):
        build_results_table(summary, pd.DataFrame([_comp("pesq_wb", 0, 1, True)]), ["mcd"])


# --- the claim rule ---

def test_verdict_rule() -> None:
    assert _verdict(3, 0, 4, 0.5)[0] == "supported"
    assert _verdict(1, 0, 4, 0.5)[0] == "inconclusive"          # too few of the comparisons
    assert _verdict(3, 1, 4, 0.5)[0] == "inconclusive"          # significant both ways
    assert _verdict(0, 2, 4, 0.5)[0] == "refuted"
    assert _verdict(0, 0, 0, 0.5) == ("inconclusive", "no comparisons in these runs cover this claim")
    verdict, reason = _verdict(2, 0, 4, 0.5)
    assert verdict == "supported" and reason.startswith("2 of 4 comparisons favour PriorGrad")


def test_claims_scopes() -> None:
    summary = pd.DataFrame([_summary_row(s, "pesq_wb", 3.0, True, t) for s in ("diffwave", "priorgrad")
                            for t in (6, 50)])
    comps = pd.DataFrame([_comp("pesq_wb", 0.1, 0.3, True, t=6), _comp("pesq_wb", -0.3, -0.1, True, t=50)])
    conv = pd.DataFrame({"trial": ["a"], "prior": ["standard"], "size": ["small"], "n_params": [1000],
                         "seed": [0], "budget": [100], "step": [0], "metric": ["ls_mae"], "value": [1.0]})
    c1, c2, c3 = evaluate_claims(comps, summary, conv, ["pesq_wb"], [6, 12], 0.5, None)
    assert (c1.verdict, c1.total, c1.losses) == ("refuted", 1, 1)     # judged at T=50 only
    assert (c2.verdict, c2.total, c2.wins) == ("supported", 1, 1)     # judged at T=6 only
    assert c3.verdict == "inconclusive" and "only one network size" in c3.reason

    # the same comparisons over too few utterances are shown but not judged
    c1, c2, _ = evaluate_claims(comps, summary, conv, ["pesq_wb"], [6, 12], 0.5, None, min_n=11)
    assert (c1.verdict, c2.verdict) == ("inconclusive", "inconclusive")
    assert c2.evidence[0].outcome == "not judged (n < 11)" and "none of the 1 comparisons has 11" in c2.reason
    assert "2 not judged (fewer than 9 utterances)" in _verdict(1, 0, 3, 0.5, unjudged=2, min_n=9)[1]


# --- figure files are reproducible ---

@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_figure_files_are_deterministic(tmp_path: Path, fmt: str) -> None:
    import matplotlib.pyplot as plt

    from reports.figures import report_style, save_figure

    blobs = []
    for i in range(2):
        with report_style(80):
            fig, ax = plt.subplots(figsize=(3, 2))
            ax.plot([0, 1, 2], [1.0, 0.5, 0.4], label="curve")
            ax.legend()
            save_figure(fig, tmp_path / f"f{i}.{fmt}", fmt)
            plt.close(fig)
        blobs.append((tmp_path / f"f{i}.{fmt}").read_bytes())
    assert blobs[0] == blobs[1]
    assert b"Software" not in blobs[0] and b"<dc:date>" not in blobs[0]
