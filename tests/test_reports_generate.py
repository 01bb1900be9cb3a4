"""The report generator on a fake runs/ tree with the pipeline's exact layout: content, links,
byte-identical re-runs, the CLI, and the page in headless Chromium."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reports.config import project_report_config
from priorgrad.core.schema import read_params
from reports.generate import generate
from support.reports import (BUDGETS, N_AUDIO, SEEDS, SIZES, T_INFER, browse_report, check_audio_records, check_links_resolve, find_chromium,
                             keep_screenshots, make_runs, parse_report, tree_bytes)
from support.project import write_params

ROOT = Path(__file__).resolve().parents[1]
N_SETTINGS = 16   # 2 systems x 2 sizes x 2 budgets x 2 T_infer
N_FLOORS = 2      # each system's prior noise (no denoising), the floor


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("report")
    ev, sweep = make_runs(root)
    raw = read_params(ROOT / "params.yaml")
    raw["report"]["n_listening"] = 3
    params = write_params(root, raw)  # the project's params (the CLI re-run below reads them) with 3 listening clips
    out = root / "out"
    # relative paths, as the DVC stage passes them
    cwd = os.getcwd()
    os.chdir(root)
    try:
        index = generate(Path("runs/eval"), Path("runs/sweep"), project_report_config(n_listening=3), Path("out"))
    finally:
        os.chdir(cwd)
    return {"root": root, "out": out, "index": out / index.relative_to("out"), "params": params}


def test_report_has_table_figures_players_and_resolving_links(report: dict) -> None:
    out = report["out"]
    assert sorted(p.name for p in out.iterdir()) == ["audio", "figures", "index.html", "report.md", "report.pdf"]
    found = check_links_resolve(report["index"])
    assert "results" in found["tables"]
    assert len(found["img"]) == 6       # convergence (ls_mae, mrstft), across the ladder, vs T_infer, vs size, vs RTF
    assert len(found["audio"]) == N_AUDIO * (1 + N_SETTINGS + N_FLOORS)
    assert "report.pdf" in found["href"] and "report.md" in found["href"]
    pdf = (out / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") >= 7
    # the listening section shows the kept clip's own scores: the fixture's failed PESQ is said, not hidden
    html = report["index"].read_text(encoding="utf-8")
    listening = html[html.index('id="listening"'):html.index('id="provenance"')]
    assert listening.count("\u2191: failed") == 1 and listening.count("seed 0") == N_AUDIO * N_SETTINGS
    assert listening.count("noise draw 0") == N_AUDIO * N_FLOORS and "the floor" in listening
    # figures in the PDF and beside the page are the same set
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(Path(s).name for s in found["img"])


def test_results_table_marks_best_and_significance(report: dict) -> None:
    html = report["index"].read_text(encoding="utf-8")
    results = html[html.index('<table class="results">'):]
    results = results[:results.index("</table>")]
    rows = results.split("<tr>")[2:]
    assert len(rows) == N_SETTINGS
    floors = results.split('<tr class="floor">')[1:]
    assert len(floors) == 2 and all("prior noise" in r for r in floors)
    # seeds per row: 3 for every system setting and 3 noise draws per floor
    assert all("</td><td>3</td><td>10</td>" in r for r in rows + floors)
    # the fixture has f0_rmse absent (skipped) and vuv_error not in report.metrics (named in a note)
    assert "F0 RMSE" not in results and "PESQ-WB" in results and "DNSMOS OVRL" in results
    assert "vuv_error" in html[html.index('id="results"'):html.index('<table class="results">')]
    # PriorGrad is far better at T=6 in the fixture: each of its T=6 rows carries the marker on every metric,
    # DiffWave rows never carry one
    pg_t6 = [r for r in rows if r.startswith("<td>PriorGrad") and "</td><td>6</td>" in r]
    assert len(pg_t6) == 4 and all(r.count("\u25b2") == 6 for r in pg_t6)
    assert all("\u25b2" not in r and "\u25bc" not in r for r in rows if r.startswith("<td>DiffWave"))
    assert results.count('class="best"') >= 6       # one per metric column (ties may add more)
    assert "(1 failed)" in results                   # the fixture's failed PESQ utterance is shown
    # DiffWave at the small size, 200 steps, T=6 is no better than its prior noise; at the base size it beats
    # it by one spread (MR-STFT 0.05), no more than report.equivalence_margins.mrstft: a negligible gain is still
    # at floor (issue 17). Both flagged, and only they.
    flagged = [r for r in rows if "not better than its prior noise" in r]
    assert len(flagged) == 2 and all(r.startswith("<td>DiffWave") and "</td><td>200</td><td>6</td>" in r
                                     for r in flagged)
    assert any("(MR-STFT)" in r and "1.23M" not in r for r in flagged)


def test_claims_follow_the_cis(report: dict) -> None:
    md = (report["out"] / "report.md").read_text(encoding="utf-8")
    line = next(ln for ln in md.splitlines() if ln.startswith("| Better quality at few inference steps"))
    assert "**supported**" in line and "PriorGrad significantly better on" in line and "Holm p" in line
    conv = next(ln for ln in md.splitlines() if ln.startswith("| Faster convergence"))
    # at T=50 the fixture's systems are equal: whatever the chance hits, never "supported"
    assert "**supported**" not in conv and "PriorGrad's seed-mean curve reaches it for good at step" in conv
    assert "95% CI over seeds" in conv
    small = next(ln for ln in md.splitlines() if ln.startswith("| Robust at small network size"))
    assert "**supported**" not in small        # the fixture's advantage does not depend on size
    # the rule and the regime are on the page
    assert "at least 3 training seeds per system and 8 test utterances" in md and "Holm" in md
    regime = md[md.index("## The regime of these runs"):md.index("## The paper's claims")]
    assert "Seeds per system: DiffWave 3, PriorGrad 3" in regime and "Training steps" in regime
    # SpecGrad is registered but was not run (the default sweep): no empty column, pair, legend or claim
    assert "SpecGrad" not in md
    assert "14 of 16 system settings beat their own prior's noise" in regime
    assert "git commit | `0123456789abcdef0123456789abcdef01234567`" in md
    assert "metric pesq_wb | `pesq 0.0.4 (wb, 16 kHz)`" in md
    # the evidence shows seeds per comparison and the dropped utterance beside the comparison it left
    assert "| small | 1.23M | 200 | 6 | PESQ-WB (MOS-LQO) ↑ | 3 / 3 | 9 | 1 (1 failed or unscored" in md


def test_rerun_through_cli_is_byte_identical(report: dict, tmp_path: Path) -> None:
    """The stage command run again (another process, another hash seed) on the same inputs gives
    byte-identical files, replacing the previous output in place."""
    before = tree_bytes(report["out"])
    env = dict(os.environ, PYTHONHASHSEED="12345")
    proc = subprocess.run([sys.executable, "-m", "reports", "--eval", "runs/eval", "--sweep", "runs/sweep",
                           "--params", "params.yaml", "--out", "out"], cwd=report["root"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    after = tree_bytes(report["out"])
    assert sorted(after) == sorted(before)
    changed = [k for k in before if before[k] != after[k]]
    assert not changed, f"not byte-identical on re-run: {changed}"
    assert not [p for p in report["root"].iterdir() if p.name.startswith(".out.")], "staging dir left behind"


def test_cli_names_missing_input(report: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from reports.__main__ import main

    rc = main(["--eval", str(tmp_path / "nope"), "--sweep", str(report["root"] / "runs/sweep"),
               "--params", str(report["params"]), "--out", str(tmp_path / "out")])
    assert rc == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "nope") in err and "not found" in err
    assert not (tmp_path / "out").exists()


def test_page_in_headless_chromium(report: dict, tmp_path: Path) -> None:
    browser = find_chromium()
    if browser is None:
        pytest.skip("Debian chromium not installed (/usr/bin/chromium absent; .ci/install-chromium.sh installs it "
                    "when run as root with apt-get): cannot check audio loading in a browser")
    records, shots = browse_report(browser, report["out"], tmp_path)
    check_audio_records(records, expected_players=N_AUDIO * (1 + N_SETTINGS + N_FLOORS))
    kept = keep_screenshots(shots, "fixture")
    print("screenshots:", *kept)
    assert len(parse_report(report["index"])["audio"]) == len(records) - 1


def test_minimal_grid_reports_inconclusive_instead_of_failing(tmp_path: Path) -> None:
    """One size, one budget, one seed, one T_infer (a smoke-sized sweep): the report still builds and
    the claims it cannot judge say so."""
    ev, sweep = make_runs(tmp_path, sizes={"tiny": 20_000}, budgets=[50], seeds=[0], t_infer=[50])
    index = generate(ev, sweep, project_report_config(n_listening=2), tmp_path / "out")
    found = check_links_resolve(index)
    assert len(found["img"]) == 6 and len(found["audio"]) == 2 * (3 + N_FLOORS)
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    few = next(ln for ln in md.splitlines() if ln.startswith("| Better quality at few inference steps"))
    assert "**not judged: no few-step schedule**" in few and "no run used a few-step schedule" in few
    small = next(ln for ln in md.splitlines() if ln.startswith("| Robust at small network size"))
    assert "**not judged: one size**" in small and "only one network size (tiny)" in small
    conv = next(ln for ln in md.splitlines() if ln.startswith("| Faster convergence"))
    assert "**not judged: one training budget**" in conv and "at least 2 training budgets" in conv
    # the top of the report names, per claim, what kept it from a verdict
    top = md[:md.index("## The paper's claims")]
    assert "What kept each claim from a verdict: 1. Faster convergence: one training budget" in top
    assert "3. Robust at small network size: one size (needs a second network size)" in top
    # one seed: no comparison is judged, no marker anywhere, and the floor is not judged either
    section = md.split("## Results")[1].split("## Figures")[0]
    table = [ln for ln in section.splitlines() if ln.startswith(("| PriorGrad", "| DiffWave"))]
    assert len(table) == 2 + 2      # the two systems and their two prior-noise rows
    assert not [ln for ln in table if "\u25b2" in ln or "\u25bc" in ln or "\u2020" in ln]
    assert "not judged (fewer than 3 seeds" in md and "is not judged here: the comparisons of all 2 system settings" in md


def _claim_lines(md: str) -> dict[str, str]:
    section = md.split("## The paper's claims in these runs")[1].split("### ")[0]
    return {k: next(ln for ln in section.splitlines() if ln.startswith(f"| {k}"))
            for k in ("Faster convergence", "Better quality at few inference steps", "Robust at small network size")}


def test_both_systems_at_their_floor_is_not_judged_at_floor(tmp_path: Path) -> None:
    """Issue 17: both systems score exactly like their own prior noise, and PriorGrad's noise is better than
    DiffWave's by far more than the margin (PESQ-WB +0.3, MR-STFT -0.2): every system comparison is
    significant, yet it measures the noise generators, so no claim may be supported or refuted. The run is
    built through the evaluate stage's own code (eval.aggregate writes summary.json and comparisons.json)."""
    from support.reports import level_scores

    floors = {"diffwave": {"pesq_wb": 1.0, "mrstft": 3.0}, "priorgrad": {"pesq_wb": 1.3, "mrstft": 2.8}}
    scores = level_scores(floors, floors, SIZES, BUDGETS, SEEDS, T_INFER)
    ev, sweep = make_runs(tmp_path, scores=scores)
    comps = json.loads((ev / "comparisons.json").read_text())
    systems = [c for c in comps if c["kind"] == "systems" and c["metric"] in ("pesq_wb", "mrstft")]
    assert systems and all(c["outcome"] == "a better" for c in systems)      # significant, beyond the margin
    assert all(c["outcome"] != "a better" for c in comps if c["kind"] == "floor")   # nobody beats its floor
    generate(ev, sweep, project_report_config(n_listening=1), tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    claims = _claim_lines(md)
    for line in claims.values():
        assert "**not judged: at floor**" in line, line
        assert "every primary metric is at floor" in line and "DiffWave at floor" in line and "PriorGrad at floor" in line
        assert "PESQ-WB" in line and "MR-STFT" in line
    assert "**supported**" not in md and "**refuted**" not in md
    top = md[:md.index("## The paper's claims")]
    assert "What kept each claim from a verdict: 1. Faster convergence: at floor" in top
    # the tests are shown, marked at floor; the per-setting evidence says why they do not vote
    assert "at floor, does not vote" in md and "; at floor (PriorGrad at floor, DiffWave at floor), does not vote" in md


def test_significant_negligible_difference_is_no_verdict(tmp_path: Path) -> None:
    """Issue 17: both systems far above their floors, PriorGrad better everywhere by a tiny, consistent amount
    (PESQ-WB +0.03 of a 0.1 margin, MR-STFT -0.01 of 0.05): significant, but negligible: never supported."""
    from support.reports import level_scores

    model = {"diffwave": {"pesq_wb": 3.0, "mrstft": 1.2}, "priorgrad": {"pesq_wb": 3.03, "mrstft": 1.19}}
    floors = {"diffwave": {"pesq_wb": 1.0, "mrstft": 3.0}, "priorgrad": {"pesq_wb": 1.1, "mrstft": 2.9}}
    ev, sweep = make_runs(tmp_path, scores=level_scores(model, floors, SIZES, BUDGETS, SEEDS, T_INFER, sd=0.002))
    comps = json.loads((ev / "comparisons.json").read_text())
    systems = [c for c in comps if c["kind"] == "systems" and c["metric"] in ("pesq_wb", "mrstft")]
    assert systems and all(c["outcome"] == "negligible difference" for c in systems)   # the table's one rule
    generate(ev, sweep, project_report_config(n_listening=1), tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    claims = _claim_lines(md)
    for key in ("Faster convergence", "Better quality at few inference steps"):
        assert "**negligible difference**" in claims[key] and "significant but negligible" in claims[key], claims[key]
    assert "**supported**" not in md and "**refuted**" not in md
    assert re.search(r"negligible difference \(\\\|\+0\.0[23]\d*\\\| <= margin 0\.1\)", md)   # per-setting evidence
    # claim 3: the same tiny advantage at both sizes, so no interaction: no difference detected
    assert "**no difference detected**" in claims["Robust at small network size"]
    rows = [ln for ln in md.split("## Results")[1].split("## Figures")[0].splitlines()
            if ln.startswith(("| PriorGrad", "| DiffWave"))]
    cols = rows[0].count("|")
    primary = [ln.split("|") for ln in rows]
    header = next(ln for ln in md.split("## Results")[1].splitlines() if ln.startswith("| system")).split("|")
    idx = [i for i, h in enumerate(header) if "PESQ-WB" in h or "MR-STFT" in h]
    assert len(rows) == 18 and len(idx) == 2 and all(r.count("|") == cols for r in rows)
    # no marker on the primaries (negligible), no floor flag anywhere
    assert not [r for r in primary for i in idx if "\u25b2" in r[i] or "\u25bc" in r[i]]
    assert not [r for r in rows if "\u2020" in r]
