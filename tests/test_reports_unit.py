"""Report pieces in isolation: config validation, input validation (errors name the file), the
results-table marks, the claim rule, deterministic figure files."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eval.aggregate import SCORE_COLUMNS, Rule, aggregate, build_cube
from reports.claims import (INCONCLUSIVE, NEGLIGIBLE, NO_DIFF, NOT_JUDGED, REFUTED, SUPPORTED, ClaimSettings, ClaimTest, decide,
                            evaluate_claims)
from reports.config import ReportConfigError, load_report_config, project_report_config, report_config_from_dict
from reports.inputs import ReportInputError, load_runs
from reports.tables import FLOOR_FLAG, MARK_BETTER, MARK_WORSE, build_results_table
from support.reports import BUDGETS, FLOOR, N_AUDIO, T_INFER, make_runs


# --- config ---

EV = {"n_boot": 300, "bootstrap_seed": 7}


def _section(**changes):
    """The project's report: section with some keys changed (every key is required: no defaults)."""
    from priorgrad.core.schema import read_params

    return {**read_params(Path(__file__).resolve().parents[1] / "params.yaml")["report"], **changes}


def test_config_validation(tmp_path: Path) -> None:
    with pytest.raises(ReportConfigError, match="missing section 'report'"):
        report_config_from_dict(None, evaluate=EV)
    cfg = report_config_from_dict(_section(n_listening=2, few_steps=[6], min_seeds=4, primary_metrics=["stoi"],
                                           equivalence_margins={"stoi": 1}), evaluate=EV)
    assert cfg.n_listening == 2 and cfg.few_steps == [6] and cfg.min_seeds == 4
    assert cfg.equivalence_margins == {"stoi": 1.0} and cfg.rule().min_seeds == 4
    assert (cfg.rule().n_boot, cfg.rule().seed) == (300, 7)   # the evaluate stage's bootstrap
    no_dpi = _section()
    del no_dpi["dpi"]
    with pytest.raises(ReportConfigError, match=r"report: missing key\(s\) \['dpi'\]"):
        report_config_from_dict(no_dpi, evaluate=EV)
    with pytest.raises(ReportConfigError, match=r"evaluate: missing key\(s\) \['n_boot'\]"):
        report_config_from_dict(_section(), evaluate={"bootstrap_seed": 0})
    with pytest.raises(ReportConfigError, match=r"report\.equivalence_margins: no margin for primary metric\(s\) \['stoi'\]"):
        report_config_from_dict(_section(primary_metrics=["stoi"]), evaluate=EV)
    with pytest.raises(ReportConfigError, match=r"report\.equivalence_margins: expected a mapping"):
        report_config_from_dict(_section(equivalence_margins=[0.1]), evaluate=EV)
    with pytest.raises(ReportConfigError, match=r"report\.min_seeds: must be >= 2"):
        report_config_from_dict(_section(min_seeds=1), evaluate=EV)
    with pytest.raises(ReportConfigError, match=r"unknown key\(s\) \['claim_min_fraction'\]"):
        report_config_from_dict(_section(claim_min_fraction=0.5), evaluate=EV)     # replaced by the one rule
    with pytest.raises(ReportConfigError, match=r"p\.yaml: report: unknown key\(s\) \['n_listeners'\]"):
        report_config_from_dict(_section(n_listeners=2), source="p.yaml", evaluate=EV)
    with pytest.raises(ReportConfigError, match=r"report\.few_steps\[0\]: expected an integer"):
        report_config_from_dict(_section(few_steps=["6"]), evaluate=EV)
    with pytest.raises(ReportConfigError, match=r"report\.figure_format: expected png or svg"):
        report_config_from_dict(_section(figure_format="jpg"), evaluate=EV)
    with pytest.raises(ReportConfigError, match=r"report\.metrics: expected a list"):
        report_config_from_dict(_section(metrics="pesq_wb"), evaluate=EV)
    with pytest.raises(ReportConfigError, match="parameters file not found"):
        load_report_config(tmp_path / "missing.yaml")


def test_project_params_report_section_is_valid(tmp_path: Path) -> None:
    """The report: section of params.yaml parses under every profile."""
    from support.project import profile_params

    for name in ("default", "smoke", "gpu"):
        assert load_report_config(profile_params(tmp_path / name, name)).metrics
    assert project_report_config(dpi=80).dpi == 80


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
    with pytest.raises(ReportInputError, match=r"scores\.csv: missing columns \['kind'\]"):
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
    with pytest.raises(ReportInputError, match=r"comparisons\.json: item 0: kind 'systems' with a='diffwave'"):
        load_runs(runs / "eval", runs / "sweep")
    recs[0]["a"], recs[0]["b"] = "priorgrad", "diffwave"
    comp.write_text(json.dumps(recs))

    _rewrite_csv(runs / "sweep" / "convergence.csv", lambda rows: [rows[0]] + [
        [c if i != 1 else c.replace("energy", "phoneme") for i, c in enumerate(r)] for r in rows[1:]])
    with pytest.raises(ReportInputError, match=r"convergence\.csv: column 'prior' has unknown values \['phoneme'\]"):
        load_runs(runs / "eval", runs / "sweep")


def test_bad_audio_index_and_provenance(runs: Path) -> None:
    """The report reads which audio exists from audio/index.json (no folder-name parsing); a listed folder
    that is missing, or an index without its sets, is an error naming the file."""
    import shutil

    index = runs / "eval" / "audio" / "index.json"
    good = index.read_text()
    listed = json.loads(good)["sets"][0]["dir"]
    shutil.rmtree(runs / "eval" / "audio" / listed)
    with pytest.raises(ReportInputError, match=rf"{listed}: audio directory listed in .*index\.json not found"):
        load_runs(runs / "eval", runs / "sweep")
    index.write_text(json.dumps({"reference": "reference"}))
    with pytest.raises(ReportInputError, match=r"index\.json: expected an object with a 'sets' list"):
        load_runs(runs / "eval", runs / "sweep")
    index.write_text(good)
    (runs / "eval" / "audio" / listed).mkdir()
    prov = runs / "eval" / "provenance.json"
    prov.write_text(json.dumps({"git_commit": "x"}))
    with pytest.raises(ReportInputError, match=r"provenance\.json: missing keys \['params_hash'"):
        load_runs(runs / "eval", runs / "sweep")


# --- the results table (built from per-utterance scores through eval.aggregate) ---

HIB = {"pesq_wb": True, "mrstft": False, "stoi": True}
RULE = Rule(min_seeds=3, min_utts=8, n_boot=500, seed=0, level=0.95)


def _scores(shift: dict[str, float], n_seeds: int = 3, n_utts: int = 8, sizes=("small",), budgets=(100,),
            t_infer=(6,), seed_sd: float = 0.02, floor: dict[str, float] | None = None, seed: int = 0,
            size_shift: dict[str, float] | None = None) -> pd.DataFrame:
    """PriorGrad = DiffWave + shift[metric] (+ size_shift at a size), per utterance, with seed noise."""
    rng = np.random.default_rng(seed)
    rows = []
    base = {"pesq_wb": 3.0, "mrstft": 1.5, "stoi": 0.9}
    utt = {m: rng.normal(0, 0.2, n_utts) for m in HIB}
    for system, prior in (("diffwave", "standard"), ("priorgrad", "energy")):
        for size in sizes:
            for s in range(n_seeds):
                run = {m: rng.normal(0, seed_sd) for m in HIB}
                for b in budgets:
                    for t in t_infer:
                        for m in HIB:
                            d = 0.0
                            if system == "priorgrad":
                                d = shift.get(m, 0.0) + (size_shift or {}).get(size, 0.0) * (1 if HIB[m] else -1)
                            for i in range(n_utts):
                                rows.append([system, prior, size, 1000 * (sizes.index(size) + 1), s, b, t, f"u{i}",
                                             m, base[m] + d + run[m] + utt[m][i] + rng.normal(0, 0.01), "model"])
        if floor is not None:
            for s in range(n_seeds):
                for m in HIB:
                    for i in range(n_utts):
                        rows.append([system, prior, "", 0, s, 0, 0, f"u{i}", m,
                                     floor[m] + utt[m][i] + rng.normal(0, 0.01), "prior_noise"])
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def _table(df: pd.DataFrame, wanted: list[str], primary: list[str] | None = None):
    summary, comps = aggregate(df, HIB, RULE)
    return build_results_table(pd.DataFrame(summary), pd.DataFrame(comps), wanted, primary)


def test_table_best_and_markers_respect_direction() -> None:
    df = _scores({"pesq_wb": -0.5, "mrstft": -0.3, "stoi": 0.0}, floor={"pesq_wb": 1.0, "mrstft": 3.0, "stoi": 0.5})
    table = _table(df, ["pesq_wb", "stoi", "mrstft", "f0_rmse"], ["mrstft", "pesq_wb"])
    assert [m.key for m in table.metrics] == ["pesq_wb", "stoi", "mrstft"]   # f0_rmse absent: left out
    dw, pg, dw_floor, pg_floor = table.rows
    assert (dw.system, pg.system) == ("diffwave", "priorgrad") and dw_floor.is_floor and pg_floor.is_floor
    assert "prior noise" in dw_floor.system_label and (dw.n_seeds, dw.n) == (3, 8)
    assert dw.cells[0].best and not pg.cells[0].best          # higher PESQ wins
    assert pg.cells[2].best and not dw.cells[2].best          # lower MR-STFT wins
    assert not dw_floor.cells[0].best                          # the floor never competes for best
    assert (pg.cells[0].marker, pg.cells[1].marker, pg.cells[2].marker) == (MARK_WORSE, "", MARK_BETTER)
    assert all(c.marker == "" for c in dw.cells)
    assert table.n_significant == 2 and not dw.flags and not pg.flags
    assert len(table.floor_beaten) == 2 and "3 seed(s) x 8 utterances" in pg.cells[0].ci


def test_table_markers_follow_the_one_rule() -> None:
    """Two seeds: the same clear differences carry no marker (not judged), and are counted as such."""
    table = _table(_scores({"pesq_wb": -0.5, "mrstft": -0.3}, n_seeds=2), ["pesq_wb", "mrstft"])
    pg = table.rows[1]
    assert [c.marker for c in pg.cells] == ["", ""] and table.n_significant == 0 and table.n_not_judged == 2
    # 7 utterances: not judged either
    table = _table(_scores({"pesq_wb": -0.5, "mrstft": -0.3}, n_utts=7), ["pesq_wb", "mrstft"])
    assert [c.marker for c in table.rows[1].cells] == ["", ""] and table.n_not_judged == 2


def test_table_flags_a_system_no_better_than_its_prior_noise() -> None:
    # DiffWave scores like its own prior noise on MR-STFT; PriorGrad clearly beats its floor
    df = _scores({"pesq_wb": 1.0, "mrstft": -1.0}, floor={"pesq_wb": 1.0, "mrstft": 1.5, "stoi": 0.5})
    table = _table(df, ["pesq_wb", "mrstft"], ["mrstft", "pesq_wb"])
    dw, pg = table.rows[:2]
    assert dw.flags == [f"{FLOOR_FLAG} (MR-STFT)"] and dw.cells[1].floor_flag and not dw.cells[0].floor_flag
    assert pg.flags == [] and len(table.floor_not_beaten) == 1 and len(table.floor_beaten) == 1


def test_table_rejects_no_known_metric() -> None:
    summary, comps = aggregate(_scores({}), HIB, RULE)
    with pytest.raises(ValueError, match=r"scores none of the report's metrics \['mcd'\]"):
        build_results_table(pd.DataFrame(summary), pd.DataFrame(comps), ["mcd"])


# --- the claim rule ---

def _t(metric: str, est: float, lo: float, hi: float, p: float, primary: bool = True, deciding: bool = True,
       judged: bool = True) -> ClaimTest:
    return ClaimTest("t", metric, metric, primary, deciding, est, lo, hi, p, 8, 0, "", {"a": 3}, judged,
                "" if judged else "fewer than 3 seeds", HIB[metric])


MARGINS = {"pesq_wb": 0.1, "mrstft": 0.05, "stoi": 0.02}


def test_verdict_rule() -> None:
    # PriorGrad better on PESQ (higher) after Holm, nothing against
    assert decide([_t("pesq_wb", 0.3, 0.1, 0.5, 0.001), _t("mrstft", 0.0, -0.1, 0.1, 0.9)], MARGINS, 0.05)[0] \
        == SUPPORTED
    # lower MR-STFT is better: a negative difference favours PriorGrad, a positive one DiffWave
    assert decide([_t("mrstft", 0.3, 0.1, 0.5, 0.001)], MARGINS, 0.05)[0] == REFUTED
    assert decide([_t("mrstft", -0.3, -0.5, -0.1, 0.001)], MARGINS, 0.05)[0] == SUPPORTED
    # both directions
    assert decide([_t("pesq_wb", 0.3, 0.1, 0.5, 0.001), _t("mrstft", 0.3, 0.1, 0.5, 0.001)], MARGINS, 0.05)[0] \
        == INCONCLUSIVE
    # Holm: p = 0.03 and 0.04 are each < 0.05 alone but Holm gives 0.06 and 0.06
    tests = [_t("pesq_wb", 0.3, 0.01, 0.5, 0.03), _t("mrstft", -0.3, -0.5, -0.01, 0.04)]
    verdict, *_ = decide(tests, MARGINS, 0.05)
    assert verdict == INCONCLUSIVE and tests[0].p_holm == pytest.approx(0.06)
    # a secondary metric never votes, however clear
    v, *_ = decide([_t("pesq_wb", 0.0, -0.05, 0.05, 0.9), _t("stoi", 0.5, 0.4, 0.6, 0.0001, primary=False)],
                  MARGINS, 0.05)
    assert v == NO_DIFF
    # no difference detected needs every deciding CI inside its margin; a wide CI is inconclusive
    assert decide([_t("pesq_wb", 0.0, -0.05, 0.05, 0.9), _t("mrstft", 0.0, -0.04, 0.04, 0.9)], MARGINS, 0.05)[0] \
        == NO_DIFF
    v, reason, _ = decide([_t("pesq_wb", 0.0, -0.3, 0.3, 0.9)], MARGINS, 0.05)
    assert v == INCONCLUSIVE and "too wide" in reason
    # a guard can refute but never support
    assert decide([_t("pesq_wb", 0.3, 0.1, 0.5, 0.001, deciding=False)], MARGINS, 0.05)[0] != SUPPORTED
    # one primary test breaking the rule: the claim is not judged, whatever the others say
    v, reason, _ = decide([_t("pesq_wb", 0.3, 0.1, 0.5, 0.001), _t("mrstft", 0, -1, 1, 0.9, judged=False)],
                       MARGINS, 0.05)
    assert v == NOT_JUDGED and "fewer than 3 seeds" in reason


def test_verdict_rule_negligible_and_floor() -> None:
    """Issue 17: a significant difference inside the margin is negligible and never supports or refutes;
    a primary at floor does not vote, and a claim with every primary at floor is not judged: at floor."""
    neg = [_t("pesq_wb", -0.013, -0.026, -0.002, 0.001), _t("mrstft", 0.0, -0.01, 0.01, 0.9)]
    v, reason, held = decide(neg, MARGINS, 0.05)
    assert v == NEGLIGIBLE and held == ["negligible"] and "inside \u00b10.1" in reason
    assert neg[0].negligible and neg[0].favours is None and "negligible difference" in neg[0].outcome
    # the same significant estimate beyond the margin refutes
    assert decide([_t("pesq_wb", -0.3, -0.5, -0.1, 0.001)], MARGINS, 0.05)[0] == REFUTED
    # negligible on one metric, a wide CI on the other: inconclusive, naming both
    v, reason, held = decide([_t("pesq_wb", -0.013, -0.026, -0.002, 0.001), _t("mrstft", 0.0, -0.3, 0.3, 0.9)],
                             MARGINS, 0.05)
    assert v == INCONCLUSIVE and "negligible" in held and "too wide" in reason
    # at floor: does not vote, whatever its p-value; all at floor: not judged: at floor
    floored = _t("pesq_wb", -0.3, -0.5, -0.1, 0.001)
    floored.at_floor = "small 100 steps T=6: DiffWave at floor"
    other = _t("mrstft", -0.3, -0.5, -0.1, 0.001)
    v, reason, held = decide([floored, other], MARGINS, 0.05)
    assert v == SUPPORTED and held == [] and "not voting: pesq_wb at floor" in reason
    other.at_floor = "small 100 steps T=6: PriorGrad at floor"
    both = [floored, other]
    v, reason, held = decide(both, MARGINS, 0.05)
    assert v == NOT_JUDGED and held == ["at floor"] and "DiffWave at floor" in reason and "PriorGrad at floor" in reason


def _claims(df: pd.DataFrame, primary=("pesq_wb", "mrstft"), secondary=("stoi",)) -> dict:
    cube = build_cube(df, HIB)
    cs = ClaimSettings(list(primary), list(secondary), [6, 12], dict(MARGINS), RULE)
    return {c.key: c for c in evaluate_claims(cube, cs)}


def test_claims_scopes_and_design_requirements() -> None:
    # PriorGrad better at T=6 only; one budget, one size
    df = _scores({}, t_infer=(6, 50))
    df.loc[(df["system"] == "priorgrad") & (df["t_infer"] == 6) & (df["metric"] == "pesq_wb"), "value"] += 0.5
    c = _claims(df)
    assert c["few_steps"].verdict == SUPPORTED                            # judged at T=6 only
    assert c["convergence"].verdict == NOT_JUDGED and "at least 2 training budgets" in c["convergence"].reason
    assert c["small_size"].verdict == NOT_JUDGED and "only one network size (small)" in c["small_size"].reason
    # a ladder of two budgets: claim 1 is judged at T=50, where the systems are equal
    df = _scores({}, t_infer=(6, 50), budgets=(100, 200), seed_sd=0.005)
    c = _claims(df)
    assert c["convergence"].verdict == NO_DIFF and "T=50" in c["convergence"].tests[0].name


def test_secondary_metric_never_decides_a_claim() -> None:
    c = _claims(_scores({"stoi": 0.3}, budgets=(100, 200), t_infer=(6,), seed_sd=0.005))
    few = c["few_steps"]
    assert few.verdict == NO_DIFF
    stoi = next(t for t in few.tests if t.metric == "stoi")
    assert not stoi.primary and stoi.favours == "PriorGrad" and stoi.p_holm is None


def test_small_size_is_an_interaction() -> None:
    """PriorGrad better by the same amount at both sizes: robust-at-small-size is NOT supported (the
    old rule, 'better at the smallest size', would say supported); an advantage that grows at the
    small size is."""
    sizes = ("small", "base")
    same = _claims(_scores({"pesq_wb": 0.4, "mrstft": -0.4}, sizes=sizes, seed_sd=0.005))
    assert same["small_size"].verdict in (NO_DIFF, INCONCLUSIVE)
    assert same["few_steps"].verdict == SUPPORTED
    inter = next(t for t in same["small_size"].tests if t.deciding and t.metric == "pesq_wb")
    assert inter.estimate == pytest.approx(0.0, abs=0.05) and "interaction" in inter.name
    grows = _claims(_scores({"pesq_wb": 0.1, "mrstft": -0.1}, sizes=sizes, seed_sd=0.005,
                            size_shift={"small": 0.4}))
    assert grows["small_size"].verdict == SUPPORTED
    shrinks = _claims(_scores({"pesq_wb": 0.1, "mrstft": -0.1}, sizes=sizes, seed_sd=0.005,
                              size_shift={"base": 0.4}))
    assert shrinks["small_size"].verdict == REFUTED


def test_primary_metric_not_scored_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"report\.primary_metrics names \['mcd'\]"):
        _claims(_scores({}), primary=("mcd",))


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


# --- steps to reach DiffWave's final validation score ---

def _curves(tau: dict[str, float], n_seeds: int = 3, seed: int = 0, noise: float = 0.03) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for prior in ("standard", "energy"):
        for s in range(n_seeds):
            for step in range(0, 1001, 50):
                v = 0.5 * (1 + 2 * np.exp(-step / tau[prior])) + rng.normal(0, noise)
                rows.append([f"{prior}-s{s}", prior, "tiny", 100, s, 1000, step, "ls_mae", v])
    return pd.DataFrame(rows, columns=["trial", "prior", "size", "n_params", "seed", "budget", "step", "metric",
                                       "value"])


def test_steps_to_reach_has_a_seed_interval() -> None:
    from reports.claims import reach_steps

    fast = reach_steps(_curves({"standard": 300.0, "energy": 60.0}), "ls_mae", False, RULE)[0]
    assert fast["final_step"] == 1000 and fast["judged"] and fast["step"] <= 300 and fast["ci_high"] < 1000
    assert fast["ci_low"] <= fast["step"] <= fast["ci_high"]
    # identical noisy curves (a long plateau): the interval over seeds reaches DiffWave's own final step
    # (or "not within the run") in nearly every case -- a first touch of the target would not
    covered = 0
    for seed in range(20):
        same = reach_steps(_curves({"standard": 150.0, "energy": 150.0}, seed=seed), "ls_mae", False, RULE)[0]
        covered += same["ci_high"] >= 1000
    assert covered >= 17, covered
    two = reach_steps(_curves({"standard": 300.0, "energy": 60.0}, n_seeds=2), "ls_mae", False, RULE)[0]
    assert not two["judged"]


def test_regime_says_whether_any_system_beats_its_floor() -> None:
    from reports.generate import regime

    def lines(df: pd.DataFrame) -> list[str]:
        summary, comps = aggregate(df, HIB, RULE)
        summary = pd.DataFrame(summary)
        table = build_results_table(summary, pd.DataFrame(comps), ["pesq_wb", "mrstft"], ["mrstft", "pesq_wb"])
        return regime(table, summary, project_report_config(), 8)

    none = lines(_scores({}, floor={"pesq_wb": 3.0, "mrstft": 1.5, "stoi": 0.9}))   # everyone scores like noise
    assert "Seeds per system: DiffWave 3, PriorGrad 3" in none[0] and "T_infer: [6]" in none[0]
    assert none[1].startswith("No system beats its own prior's noise")
    some = lines(_scores({"pesq_wb": 1.0, "mrstft": -1.0}, floor={"pesq_wb": 3.0, "mrstft": 1.5, "stoi": 0.9}))
    assert some[1].startswith("1 of 2 system settings beat their own prior's noise")
    assert lines(_scores({}))[1].startswith("No prior-noise floor was scored")


def test_fixture_matches_the_contract(tmp_path: Path) -> None:
    """The fake tree itself follows docs/interfaces.md (so the report tests test the real contract)."""
    ev, sweep = make_runs(tmp_path)
    data = load_runs(ev, sweep)
    assert len(data.trials) == 2 * 2 * 3                  # one trial per prior, size and seed (the ladder)
    assert set(data.summary["system"]) == {"priorgrad", "diffwave"}
    assert sorted(set(data.scores.loc[data.scores["kind"] == "model", "t_infer"])) == T_INFER
    assert set(data.scores["kind"]) == {"model", FLOOR}
    assert data.scores["value"].isna().sum() == 1          # one failed utterance, recorded as empty
    # every budget of the ladder for every seed; the floor has as many noise draws as training seeds
    m = data.scores[data.scores["kind"] == "model"]
    assert (m.groupby(["system", "size", "seed"])["budget"].nunique() == len(BUDGETS)).all()
    assert data.scores[data.scores["kind"] == FLOOR].groupby("system")["seed"].nunique().tolist() == [3, 3]
    # the statistics are eval.aggregate's (nothing paired by hand): the failed utterance is dropped from
    # its comparison and counted
    c = data.comparisons
    hit = c[(c["kind"] == "systems") & (c["size"] == "small") & (c["budget"] == 200) & (c["t_infer"] == 6)
            & (c["metric"] == "pesq_wb")].iloc[0]
    assert (hit["n"], hit["n_dropped"], hit["n_seeds_a"], hit["n_seeds_b"]) == (9, 1, 3, 3)
    assert "diffwave small b200 T6" in hit["dropped"]
    assert len(data.audio_settings) == 16 + 2 and len(data.reference_audio) == N_AUDIO


