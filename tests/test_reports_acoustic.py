"""The report's acoustic section on fake acoustic runs built through the real code (eval.aggregate with
family="acoustic" on scores in the contract's format, experiments.examples for the audio): it renders
(HTML, Markdown, PDF) beside the vocoder section, its claims follow the built-in effects and the one
rule, qualified metric names read as words, bad input is named, and its players load in Chromium."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from eval.aggregate import build_cube
from priorgrad.core.schema import read_params
from reports.claims import NOT_JUDGED, SUPPORTED, ClaimSettings, evaluate_claims
from reports.config import ReportConfigError, load_report_config, report_config_from_dict
from reports.inputs import ReportInputError, load_runs
from reports.metrics_info import metric_info
from support.project import write_params
from support.reports import (ACOUSTIC_BUDGETS, ACOUSTIC_HIGHER, ACOUSTIC_SIZES, ACOUSTIC_T, FIXTURE_RULE,
                             browse_report, check_audio_records, check_links_resolve, find_chromium,
                             keep_screenshots, make_acoustic_runs, make_runs, simulate_acoustic_scores)

ROOT = Path(__file__).resolve().parents[1]
N_LISTEN = 2
# per utterance: recording, vocoded GT mel, and per system (3) the floor plus each size x T_infer at the top budget
N_ACOUSTIC_PLAYERS = N_LISTEN * (2 + 3 * (1 + len(ACOUSTIC_SIZES) * len(ACOUSTIC_T)))
N_VOCODER_PLAYERS = N_LISTEN * (1 + 2 + 2)   # minimal vocoder grid: one setting per system and the two floors
E1_TABLE = "## Acoustic model: results, E1 (ground-truth durations, f0 and energy)"
E2_TABLE = "## Acoustic model: results, E2 (ground-truth durations, predicted f0 and energy)"
E3_TABLE = "## Acoustic model: results, E3 (durations, f0 and energy all predicted)"


def _params(root: Path, **acoustic) -> Path:
    raw = read_params(ROOT / "params.yaml")
    raw["report"].update({"n_listening": N_LISTEN, "dpi": 50})   # small PNGs: rendering is most of the test's time
    raw["acoustic_report"].update({"n_listening": N_LISTEN, **acoustic})
    raw["evaluate"]["n_boot"] = 500      # the fixture's own bootstrap; enough for these clear effects, and fast
    return write_params(root, raw)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Both sections through the CLI: the vocoder on a minimal grid (its own tests cover it), the acoustic
    model on 3 systems x 2 sizes x 2 budgets x T_infer {2, 12} x 3 seeds x 8 utterances."""
    from reports.__main__ import main

    root = tmp_path_factory.mktemp("acoustic-report")
    ev, sweep = make_runs(root, sizes={"tiny": 20_000}, budgets=[50], seeds=[0], t_infer=[50])
    aev, asweep = make_acoustic_runs(root)
    params = _params(root)
    rc = main(["--eval", str(ev), "--sweep", str(sweep), "--acoustic-eval", str(aev), "--acoustic-sweep",
               str(asweep), "--params", str(params), "--out", str(root / "out")])
    assert rc == 0
    out = root / "out"
    return {"root": root, "out": out, "index": out / "index.html", "params": params, "eval": ev, "sweep": sweep,
            "aeval": aev, "asweep": asweep, "md": (out / "report.md").read_text(encoding="utf-8"),
            "html": (out / "index.html").read_text(encoding="utf-8")}


def _claim_line(md: str, start: str) -> str:
    return next(ln for ln in md.splitlines() if ln.startswith(f"| {start}"))


def test_acoustic_section_renders(report: dict) -> None:
    html, md = report["html"], report["md"]
    for anchor in ("acoustic", "acoustic-regime", "acoustic-claims", "acoustic-results", "acoustic-figures",
                   "acoustic-listening"):
        assert f'id="{anchor}"' in html, anchor
    # one results table per synthesis condition: the vocoder's, then E1's, E2's and E3's
    assert html.count('<table class="results">') == 4 and '<a href="#acoustic">Acoustic model</a>' in html
    assert 'id="acoustic-E2-results"' in html and 'id="acoustic-E3-results"' in html
    for heading in ("## Acoustic model: the paper's claims in these runs", E1_TABLE, E2_TABLE, E3_TABLE,
                    "## Acoustic model: figures", "## Acoustic model: listening examples"):
        assert heading in md, heading
    found = check_links_resolve(report["index"])
    acoustic_figs = sorted(Path(s).name for s in found["img"] if "acoustic_" in s)
    assert acoustic_figs == ["acoustic_convergence_mel_l1.png", "acoustic_quality_vs_size.png",
                             "acoustic_quality_vs_tinfer.png"]
    acoustic_audio = [s for s in found["audio"] if s.startswith("audio/acoustic/")]
    assert len(acoustic_audio) == N_ACOUSTIC_PLAYERS and len(found["audio"]) == N_ACOUSTIC_PLAYERS + N_VOCODER_PLAYERS
    assert sum("/reference-vocoded/" in s for s in acoustic_audio) == N_LISTEN
    assert sum("-floor/" in s for s in acoustic_audio) == 3 * N_LISTEN
    # only the largest budget is listened to, at every T_infer
    assert not [s for s in acoustic_audio if f"-{min(ACOUSTIC_BUDGETS)}-T" in s]
    pdf = (report["out"] / "report.pdf").read_bytes()
    assert pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") >= 4 + 3 + 3   # + acoustic tables, claims, figures
    # the results table: 24 system rows, 3 floor rows (each system's own prior draw), and the mean reference
    # row (mu alone: better than every system on these fixtures, yet no setting is flagged against it)
    section = md.split(E1_TABLE)[1].split(E2_TABLE)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith(("| B1", "| B2", "| PriorGrad-AM"))]
    floors = [ln for ln in rows if " floor (" in ln and "no decoder)" in ln]
    assert len(rows) == 3 * 2 * 2 * 2 + 3 and len(floors) == 3
    assert any("floor (mu_ph + s_ph n, no decoder)" in ln for ln in floors)
    assert any("floor (n, no decoder)" in ln for ln in floors)
    ref = [ln for ln in section.splitlines() if ln.startswith("| mean (regression) reference")]
    assert len(ref) == 1 and "\u2020" not in ref[0]
    # markers: PriorGrad-AM clearly better than B1 everywhere (filled), never different from B2 (open)
    pg = [ln for ln in rows if ln.startswith("| PriorGrad-AM |")]
    assert len(pg) == 8 and all(ln.count("\u25b2") == 5 for ln in pg)
    assert "\u25b3" not in section.split("| system |")[1] and "\u25bd" not in section.split("| system |")[1]
    assert "\u25b3 / \u25bd: PriorGrad-AM significantly better / worse than B2 trainable" in section
    e2 = md.split(E2_TABLE)[1].split(E3_TABLE)[0]
    header = next(ln for ln in e2.splitlines() if ln.startswith("| system |"))
    assert "E2 mel CD (dB) \u2193 |" in header and "E1" not in header
    assert len([ln for ln in e2.splitlines() if ln.startswith(("| B1", "| B2", "| PriorGrad-AM"))]) == len(rows)
    # E3 (predicted durations): only the settings it is scored at (largest budget, longest T), each system's
    # floor, the mean reference and the recordings (the recogniser's own WER on real speech), never flagged
    e3 = md.split(E3_TABLE)[1].split("## Acoustic model: figures")[0]
    header = next(ln for ln in e3.splitlines() if ln.startswith("| system |"))
    assert "E3 MCD (dB) \u2193" in header and "E3 WER" in header and "E3 duration MAE (ms per phoneme)" in header
    e3_rows = [ln for ln in e3.splitlines() if ln.startswith(("| B1", "| B2", "| PriorGrad-AM"))]
    assert len(e3_rows) == 3 * 2 + 3 and all(f" {max(ACOUSTIC_BUDGETS)} |" in ln for ln in e3_rows[:6])
    rec = [ln for ln in e3.splitlines() if ln.startswith("| recordings")]
    assert len(rec) == 1 and "0.350" in rec[0] and "\u2020" not in rec[0]
    assert len([ln for ln in e3.splitlines() if ln.startswith("| mean (regression) reference")]) == 1
    # the top summary states both sections' verdicts and floor checks
    top = md.split("## Both sections in one look")[1].split("## The paper's claims")[0]
    assert "**Vocoder, PriorGrad vs DiffWave**: verdicts 1. Faster convergence: not judged" in top
    assert "**Acoustic model, PriorGrad-AM vs B1 N(0, I) and B2 trainable**: verdicts 1. Faster convergence: " \
           "supported; 2. Better quality at equal steps: supported; 3. Few sampling steps: supported" in top
    assert "24 of 24 system settings beat their floor (their own prior draw" in top
    # the few-step protocol of these numbers and what the protocols' difference means (claim 3)
    assert "use the strided protocol" in md and "start mismatch" in md and "clips its x0 estimate" in md
    assert "Acoustic model trials" in html and "priorgrad-am-cpu-s0" in html and "griffin_lim" in html


def test_qualified_metric_labels(report: dict) -> None:
    assert metric_info("E1/mel_l1").label == "E1 mel L1" and not metric_info("E1/mel_l1").higher_is_better
    assert metric_info("E2/mel_cd").heading == "E2 mel CD (dB) \u2193"
    assert metric_info("E1/pesq_wb@rec").label == "E1 PESQ-WB (vs recording)"
    assert metric_info("E1/pesq_wb@rec").higher_is_better and metric_info("E1/gv_ratio").label == "E1 GV ratio"
    assert metric_info("mel_l1").label == "mel L1"   # the trainer's validation metric (convergence.csv)
    with pytest.raises(ValueError, match="malformed acoustic metric name"):
        metric_info("E9/mel_l1")
    header = next(ln for ln in report["md"].split(E1_TABLE)[1].splitlines() if ln.startswith("| system |"))
    assert "| E1 mel CD (dB) \u2193 | E1 mel L1 (ln-mel) \u2193 | E1 GV distance (\\|ln gen/GT\\|) \u2193 |" in header
    assert "E1 PESQ-WB (vs recording) (MOS-LQO) \u2191" in header and "E1/" not in header


def test_acoustic_claims_follow_the_built_in_effects(report: dict) -> None:
    md = report["md"]
    section = md.split("## Acoustic model: the paper's claims in these runs")[1]
    # PriorGrad-AM is clearly better than B1 at every setting: claims 1-3 supported
    for start in ("Faster convergence: at equal training steps PriorGrad-AM", "Better quality at equal steps",
                  "Few sampling steps"):
        line = _claim_line(section, start)
        assert "**supported**" in line and "PriorGrad-AM significantly better on E1 mel CD" in line, line
    conv = _claim_line(section, "Faster convergence: at equal training steps PriorGrad-AM")
    assert "PriorGrad-AM's seed-mean curve reaches it for good at step" in conv   # the validation curves, described
    # the advantage does not depend on the size, and PriorGrad-AM = B2: neither is supported
    small = _claim_line(section, "Smaller decoder")
    assert "**supported**" not in small and "**not judged**" not in small and "difference at tiny" in small
    b2 = _claim_line(section, "Phoneme prior vs trainable prior: PriorGrad-AM better than B2 trainable")
    assert "**supported**" not in b2 and "**not judged**" not in b2
    assert "Tests (PriorGrad-AM - B2 trainable;" in section and "| seeds (PG-AM / B2) |" in section
    # the same rule text as the vocoder's, with the acoustic systems and primary metrics
    assert "Supported: a deciding test favours PriorGrad-AM and none favours B1 N(0, I) (B2 trainable in the claim " \
           "that names it)" in section and "(Holm p < 0.05) AND its estimate lies beyond the equivalence margin " \
           "(E1 mel CD \u00b10.2, E1 PESQ-WB \u00b10.1, E3 MCD \u00b10.2)" in section
    assert "pre-registered test per primary metric (E1 mel CD, E1 PESQ-WB, E3 MCD)" in section
    # E3's primary votes where it is scored (the largest budget and longest T): claim 2 tests it
    equal = section.split("Better quality at equal steps")[1].split("Few sampling steps")[0]
    assert "E3 MCD" in equal
    assert "E1 GV distance" in section.split("Secondary metrics (")[1].split(")")[0]


def _cube(sizes=ACOUSTIC_SIZES, seeds=(0, 1, 2)):
    scores = simulate_acoustic_scores(dict(sizes), ACOUSTIC_BUDGETS, list(seeds), ACOUSTIC_T)
    return build_cube(scores, ACOUSTIC_HIGHER)


def _claims(cube) -> dict:
    cs = ClaimSettings(primary_metrics=["E1/mel_cd", "E1/pesq_wb"], secondary_metrics=["E1/gv_dist"],
                       few_steps=[2, 6, 12], margins={"E1/mel_cd": 0.2, "E1/pesq_wb": 0.1}, rule=FIXTURE_RULE,
                       family="acoustic")
    return {c.key: c for c in evaluate_claims(cube, cs)}


def test_one_decoder_size_leaves_claim_4_not_judged() -> None:
    claims = _claims(_cube(sizes={"tiny": ACOUSTIC_SIZES["tiny"]}))
    assert list(claims) == ["convergence", "equal_steps", "few_steps", "small_size", "trainable_prior"]
    assert claims["small_size"].verdict == NOT_JUDGED
    assert "only one decoder size (tiny) was run" in claims["small_size"].reason
    assert claims["few_steps"].verdict == SUPPORTED and claims["few_steps"].pair == ("priorgrad-am", "b1-normal")
    assert claims["trainable_prior"].pair == ("priorgrad-am", "b2-trainable")


def test_too_few_seeds_is_not_judged() -> None:
    claims = _claims(_cube(seeds=(0, 1)))
    for key, c in claims.items():
        assert c.verdict == NOT_JUDGED, key
    assert "fewer than 3 seeds" in claims["few_steps"].reason and "priorgrad-am" in claims["few_steps"].reason


def test_acoustic_report_config(tmp_path: Path) -> None:
    raw = read_params(ROOT / "params.yaml")
    ev = {"n_boot": 300, "bootstrap_seed": 0}

    def build(**changes):
        return report_config_from_dict(raw["report"], evaluate=ev, acoustic={**raw["acoustic_report"], **changes})

    cfg = build()
    fam = cfg.family("acoustic")
    assert fam.primary_metrics == ["E1/mel_cd", "E1/pesq_wb", "E3/mcd"] and fam.convergence_metrics == ["mel_l1"]
    assert fam.equivalence_margins["E3/mcd"] == 0.2
    assert cfg.family("vocoder").primary_metrics == raw["report"]["primary_metrics"]
    with pytest.raises(ReportConfigError, match=r"acoustic_report\.metrics\[1\]: 'mel_l1' is not qualified"):
        build(metrics=["E1/mel_cd", "mel_l1"])
    with pytest.raises(ReportConfigError, match=r"acoustic_report\.primary_metrics: \['E1/gv_ratio'\].*never primary"):
        build(primary_metrics=["E1/mel_cd", "E1/gv_ratio"], equivalence_margins={"E1/mel_cd": 0.2, "E1/gv_ratio": 0.1})
    with pytest.raises(ReportConfigError, match=r"acoustic_report\.equivalence_margins: no margin .*'E1/mel_l1'"):
        build(primary_metrics=["E1/mel_l1"])
    with pytest.raises(ReportConfigError, match=r"acoustic_report\.listening_metrics\[0\]: malformed"):
        build(listening_metrics=["X1/mel_cd"])
    with pytest.raises(ReportConfigError, match=r"acoustic_report\.convergence_metrics\[0\]"):
        build(convergence_metrics=["E1/mel_l1"])
    bad = dict(raw["acoustic_report"])
    del bad["few_steps"]
    with pytest.raises(ReportConfigError, match=r"acoustic_report: missing key\(s\) \['few_steps'\]"):
        report_config_from_dict(raw["report"], evaluate=ev, acoustic=bad)
    with pytest.raises(ReportConfigError, match="missing section 'acoustic_report'"):
        report_config_from_dict(raw["report"], evaluate=ev, acoustic=None)
    from support.project import profile_params

    for name in ("default", "smoke", "gpu"):   # every profile lists the section and it parses
        assert load_report_config(profile_params(tmp_path / name, name)).acoustic.primary_metrics


def test_bad_acoustic_input_is_named(report: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from reports.__main__ import main

    bad = tmp_path / "acoustic"
    shutil.copytree(report["aeval"], bad / "eval")
    shutil.copytree(report["asweep"], bad / "sweep")
    (bad / "eval" / "rtf.csv").unlink()
    with pytest.raises(ReportInputError, match=re.escape(str(bad / "eval" / "rtf.csv"))):
        load_runs(bad / "eval", bad / "sweep", family="acoustic")
    rc = main(["--eval", str(report["eval"]), "--sweep", str(report["sweep"]), "--acoustic-eval", str(bad / "eval"),
               "--acoustic-sweep", str(bad / "sweep"), "--params", str(report["params"]), "--out", str(tmp_path / "o")])
    assert rc == 2 and str(bad / "eval" / "rtf.csv") in capsys.readouterr().err and not (tmp_path / "o").exists()
    shutil.copyfile(report["aeval"] / "rtf.csv", bad / "eval" / "rtf.csv")
    shutil.rmtree(bad / "eval" / "audio" / "reference-vocoded")
    with pytest.raises(ReportInputError, match=r"reference-vocoded: vocoded ground-truth mel audio directory"):
        load_runs(bad / "eval", bad / "sweep", family="acoustic")
    # the acoustic runs passed as the vocoder's: the file and the foreign prior names are named
    with pytest.raises(ReportInputError, match=r"sweep/convergence\.csv: column 'prior' has unknown values "
                                               r"\['phoneme', 'trainable'\] \(expected \['energy', 'specgrad', 'standard'\]\)"):
        load_runs(report["aeval"], report["asweep"])
    with pytest.raises(SystemExit) as e:
        main(["--eval", str(report["eval"]), "--sweep", str(report["sweep"]), "--acoustic-eval", str(report["aeval"]),
              "--params", str(report["params"]), "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "--acoustic-eval and --acoustic-sweep go together" in capsys.readouterr().err


def test_primary_acoustic_metric_not_scored_is_named(report: dict, tmp_path: Path) -> None:
    from reports.generate import generate

    params = _params(tmp_path, primary_metrics=["E3/mel_cd"], equivalence_margins={"E3/mel_cd": 0.2})
    with pytest.raises(ValueError, match=r"acoustic_report\.primary_metrics names \[.E3/mel_cd.\]"):
        generate(report["eval"], report["sweep"], load_report_config(params), tmp_path / "o", report["aeval"],
                 report["asweep"])


def test_acoustic_players_load_in_headless_chromium(report: dict, tmp_path: Path) -> None:
    browser = find_chromium()
    if browser is None:
        pytest.skip("Debian chromium not installed (/usr/bin/chromium absent; .ci/install-chromium.sh installs it "
                    "when run as root with apt-get): cannot check audio loading in a browser")
    records, shots = browse_report(browser, report["out"], tmp_path, sections=("listening", "acoustic-listening"))
    check_audio_records(records, expected_players=N_ACOUSTIC_PLAYERS + N_VOCODER_PLAYERS)
    acoustic = [r for r in records if not r["control"] and r["src"].startswith("audio/acoustic/")]
    assert len(acoustic) == N_ACOUSTIC_PLAYERS and all(r["duration"] > 0 and r["readyState"] >= 1 for r in acoustic)
    print("screenshots:", *keep_screenshots(shots, "acoustic-fixture"))


def test_vocoder_only_report_has_no_acoustic_section(report: dict, tmp_path: Path) -> None:
    """Without the acoustic options the page is the vocoder report alone (its own tests check it in full)."""
    from reports.generate import generate

    index = generate(report["eval"], report["sweep"], load_report_config(report["params"]), tmp_path / "o")
    html = index.read_text(encoding="utf-8")
    assert 'id="acoustic' not in html and "Both sections" not in html and not (tmp_path / "o/audio/acoustic").exists()
    assert pd.Series(sorted(p.name for p in (tmp_path / "o/figures").iterdir())).str.startswith("acoustic_").sum() == 0
