"""The report stage after the smoke profile's real `dvc repro` (the session fixture `smoke_repro`
from tests/conftest.py, shared with the pipeline tests): the page has a results table, figures and
players whose links resolve; the stage command gives byte-identical files when run again; the audio
loads in headless Chromium."""
from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support.reports import (browse_report, check_audio_records, check_links_resolve, find_chromium,
                                  keep_screenshots, tree_bytes)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(smoke_repro: Path) -> Path:
    # a parameter, not request.getfixturevalue: the xdist grouping (tests/conftest.py) sees only declared fixtures
    return Path(smoke_repro)


def _report_cmd(project: Path) -> list[str]:
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    assert "report" in stages, "dvc.yaml has no report stage"
    stage = stages["report"]
    assert "reports/out" in [o if isinstance(o, str) else next(iter(o)) for o in stage["outs"]]
    argv = shlex.split(stage["cmd"])
    assert argv[:3] == ["python", "-m", "reports"], stage["cmd"]
    return argv


def test_smoke_report_content_and_links(project: Path) -> None:
    index = project / "reports" / "out" / "index.html"
    assert index.is_file(), f"{index}: the report stage did not run"
    found = check_links_resolve(index)
    assert "results" in found["tables"]
    assert len(found["img"]) >= 2
    assert len(found["audio"]) >= 4
    assert (project / "reports" / "out" / "report.pdf").read_bytes().startswith(b"%PDF")
    assert (project / "reports" / "out" / "report.md").is_file()
    if "--acoustic-eval" in _report_cmd(project):   # the acoustic section, once the stage passes its runs
        html = index.read_text(encoding="utf-8")
        assert 'id="acoustic-claims"' in html and 'id="acoustic-results"' in html and "Both sections in one look" in html


def test_smoke_report_stage_is_byte_identical(project: Path, tmp_path: Path) -> None:
    """The stage's own command, run again on the same inputs (into another directory, leaving the
    shared project untouched), gives byte-identical files."""
    argv = _report_cmd(project)
    i = argv.index("--out")
    argv[i + 1] = str(tmp_path / "out")
    argv[0] = sys.executable
    proc = subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, second = tree_bytes(project / "reports" / "out"), tree_bytes(tmp_path / "out")
    assert sorted(first) == sorted(second)
    assert [k for k in first if first[k] != second[k]] == []
    # and DVC agrees the stage is up to date (nothing downstream would re-run)
    from support.project import run_in

    status = run_in(project, ["dvc", "status", "report"], timeout=120)
    assert "report" not in status.stdout.replace("reports/", ""), status.stdout


def test_smoke_report_in_chromium(project: Path, tmp_path: Path) -> None:
    """Every player loads (readyState, duration > 0), the acoustic section's too when the stage builds it."""
    browser = find_chromium()
    if browser is None:
        pytest.skip("Debian chromium not installed (/usr/bin/chromium absent; .ci/install-chromium.sh installs it "
                    "when run as root with apt-get): cannot check audio loading in a browser")
    out = project / "reports" / "out"
    audio = check_links_resolve(out / "index.html")["audio"]
    acoustic = "--acoustic-eval" in _report_cmd(project)
    records, shots = browse_report(browser, out, tmp_path,
                                   sections=("listening", "acoustic-listening") if acoustic else ("listening",))
    check_audio_records(records, expected_players=len(audio))
    if acoustic:   # recording, vocoder(GT mel), the floor and each system: all among the players that loaded
        loaded = [r["src"] for r in records if not r["control"] and r["duration"] > 0]
        acoustic_players = [s for s in loaded if s.startswith("audio/acoustic/")]
        assert acoustic_players and sorted(acoustic_players) == sorted(s for s in audio if s.startswith("audio/acoustic/"))
        assert any("/reference-vocoded/" in s for s in acoustic_players) and any("-floor/" in s for s in acoustic_players)
    print("screenshots:", *keep_screenshots(shots, "smoke"))
