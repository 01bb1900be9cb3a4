"""Scoring other vocoders' samples: the length tolerance, DNSMOS without references, score-many.

Fixtures are real LJSpeech speech (ljspeech_mini) with a little noise, written as wavs and cut three
front-end hops (768 samples at 22050 Hz) short, the way published samples of other vocoders often are.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from eval.cli import main as cli_main
from eval.pair import LengthPolicy, parse_length_tolerance
from eval.registry import METRICS

LJ = Path(__file__).resolve().parents[1].parent / "shared/data/ljspeech_mini"
CLIPS = ("LJ001-0002", "LJ001-0008")
CROP = 2 * 22050
HOP = 256
SHORT = 3 * HOP  # three hops short


def _write(path: Path, x: np.ndarray, sr: int) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype="PCM_16")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """ref/: two real clips; short3/: noisy versions 3 hops short; noisy/: noisier, full length."""
    import soundfile as sf

    if not (LJ / "wavs").is_dir():
        pytest.skip(f"real-speech corpus not found at {LJ} (../shared/data/ljspeech_mini)")
    root = tmp_path_factory.mktemp("third_party")
    rng = np.random.default_rng(0)
    for utt in CLIPS:
        x, sr = sf.read(str(LJ / "wavs" / f"{utt}.wav"), dtype="float32")
        assert sr == 22050
        x = x[:CROP]
        _write(root / "ref" / f"{utt}.wav", x, sr)
        light = np.clip(x + 0.003 * rng.standard_normal(len(x)), -1, 1).astype(np.float32)
        _write(root / "short3" / f"{utt}.wav", light[: len(x) - SHORT], sr)
        heavy = np.clip(x + 0.05 * rng.standard_normal(len(x)), -1, 1).astype(np.float32)
        _write(root / "noisy" / f"{utt}.wav", heavy, sr)
    return {k: root / k for k in ("ref", "short3", "noisy")}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_parse_length_tolerance():
    assert parse_length_tolerance("1hop") == LengthPolicy(hops=1.0)
    assert parse_length_tolerance("4 hops").tolerance(22050) == 4 * HOP
    assert parse_length_tolerance("4hops").tolerance(16000) == round(4 * HOP * 16000 / 22050)
    assert parse_length_tolerance("1000").tolerance(44100) == 1000
    assert parse_length_tolerance("1000samples") == LengthPolicy(samples=1000)
    for bad in ("", "-3", "three hops", "2.5", "4 frames"):
        with pytest.raises(ValueError):
            parse_length_tolerance(bad)


def test_three_hops_short_scores_every_metric_under_the_tolerance(folders, tmp_path):
    out = tmp_path / "tol4"
    assert cli_main(["score", "--ref", str(folders["ref"]), "--gen", str(folders["short3"]), "--out", str(out),
                     "--metrics", "all", "--length-tolerance", "4hops", "--workers", "1", "--no-cache"]) == 0
    records = _jsonl(out / "scores.jsonl")
    assert [r["utt"] for r in records] == sorted(CLIPS)
    for r in records:
        assert r["errors"] == {}, r["errors"]
        # 'all' is every metric whose inputs are given: no texts here, so no wer/cer
        assert all(isinstance(r[m], float) for m in METRICS if not METRICS[m].needs_text), r
        assert "wer" not in r
        assert r["stoi"] > 0.9 and r["vuv_error"] < 0.1  # trimmed at the end, so still time-aligned
    summary = json.loads((out / "summary.json").read_text())
    for m, s in summary.items():
        assert (s["n"], s["n_failed"]) == (2, 0), m
        policy = s["settings"]["length_policy"]
        assert policy["tolerance"] == "4 hops" and policy["tolerance_samples_at_22050_hz"] == 4 * HOP

    # the spec's default (one hop): every reference metric fails with the reason, DNSMOS still scores,
    # and the DNSMOS scores do not depend on the reference (the same as with the larger tolerance)
    out1 = tmp_path / "tol1"
    # every utterance fails the reference metrics asked for: exit 1 (the tables are still written)
    assert cli_main(["score", "--ref", str(folders["ref"]), "--gen", str(folders["short3"]), "--out", str(out1),
                     "--metrics", "stoi,mcd,dnsmos_ovrl", "--workers", "1", "--no-cache"]) == 1
    strict = {r["utt"]: r for r in _jsonl(out1 / "scores.jsonl")}
    for utt, r in strict.items():
        assert r["stoi"] is None and r["mcd"] is None  # null, never 0
        assert "by 768 > the length tolerance 1 hop (256 samples at 22050 Hz" in r["errors"]["stoi"]
        assert "dnsmos_ovrl" not in r["errors"]
        assert r["dnsmos_ovrl"] == pytest.approx(next(x for x in records if x["utt"] == utt)["dnsmos_ovrl"])
    s1 = json.loads((out1 / "summary.json").read_text())
    assert s1["stoi"]["settings"]["length_policy"]["tolerance"] == "1 hop"
    assert (s1["stoi"]["n"], s1["stoi"]["n_failed"]) == (0, 2) and s1["stoi"]["mean"] is None


def test_dnsmos_without_a_reference_directory(folders, tmp_path, capsys):
    out = tmp_path / "noref"
    assert cli_main(["score", "--gen", str(folders["short3"]), "--out", str(out), "--workers", "1",
                     "--no-cache"]) == 0
    records = _jsonl(out / "scores.jsonl")
    assert [r["utt"] for r in records] == sorted(CLIPS)
    dnsmos = [m for m in METRICS if not METRICS[m].needs_reference and not METRICS[m].needs_text]
    assert sorted(dnsmos) == ["dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808", "dnsmos_sig"]
    for r in records:
        assert r["errors"] == {} and set(r) == {"utt", "errors", *dnsmos}
        assert all(1.0 < r[m] < 5.0 for m in dnsmos)
    # naming a reference metric without --ref is refused up front (exit 2), not 0s or a table of nulls
    assert cli_main(["score", "--gen", str(folders["short3"]), "--out", str(tmp_path / "bad"),
                     "--metrics", "stoi,dnsmos_ovrl", "--workers", "1"]) == 2
    assert not (tmp_path / "bad" / "scores.jsonl").exists()


def test_score_many_writes_the_table_and_the_comparisons(folders, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for utt in CLIPS:  # one good file, one corrupt: its scores are null with the error, never 0
        src = folders["noisy"] / f"{utt}.wav"
        (broken / f"{utt}.wav").write_bytes(src.read_bytes() if utt == CLIPS[0] else b"RIFF\0\0junk")
    out = tmp_path / "many"
    metrics = "stoi,mrstft,dnsmos_ovrl"
    rc = cli_main(["score-many", "--ref", str(folders["ref"]), "--gen", f"theirs={folders['short3']}",
                   "--gen", f"noisy={folders['noisy']}", "--gen", f"broken={broken}", "--baseline", "noisy",
                   "--out", str(out), "--metrics", metrics, "--length-tolerance", "4hops", "--workers", "1"])
    assert rc == 0
    with open(out / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["system", "utt", "metric", "value", "error"]
    assert len(rows) == 3 * len(CLIPS) * 3  # systems x utterances x metrics: one row each
    bad = [r for r in rows if r["system"] == "broken" and r["utt"] == CLIPS[1]]
    assert len(bad) == 3 and all(r["value"] == "" and "cannot decode" in r["error"] for r in bad)
    assert all(r["value"] != "" and r["error"] == "" for r in rows if r["system"] != "broken")

    with open(out / "summary.csv", newline="") as f:
        summary = {(r["system"], r["metric"]): r for r in csv.DictReader(f)}
    assert len(summary) == 9 and summary[("broken", "stoi")]["n_failed"] == "1"

    doc = json.loads((out / "comparisons.json").read_text())
    assert doc["baseline"] == "noisy" and doc["length_policy"]["tolerance"] == "4 hops"
    comps = doc["comparisons"]
    assert set(comps) == {"theirs", "broken"} and set(comps["theirs"]) == set(metrics.split(","))
    # the statistics are the project's one comparison (eval.systems.compare_records, as `eval compare`):
    # the mean paired difference over utterances, its CI, and "not judged" (one folder = one network)
    a, b = _jsonl(out / "theirs" / "scores.jsonl"), _jsonl(out / "noisy" / "scores.jsonl")
    st = comps["theirs"]["stoi"]
    diffs = [x["stoi"] - y["stoi"] for x, y in zip(sorted(a, key=lambda r: r["utt"]), sorted(b, key=lambda r: r["utt"]))]
    assert st["n"] == len(CLIPS) and st["mean_diff"] == pytest.approx(sum(diffs) / len(diffs))
    assert st["ci_low"] <= st["mean_diff"] <= st["ci_high"]
    assert st["judged"] is False and "seed" in st["not_judged"] and st["better"] is None
    assert st["mean_diff"] > 0  # the lightly noisy system is more intelligible
    assert comps["broken"]["stoi"]["n"] == 1
    with open(out / "comparisons.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 2 * 3

    # an unknown baseline is an input error (exit 2)
    assert cli_main(["score-many", "--ref", str(folders["ref"]), "--gen", f"a={folders['short3']}",
                     "--gen", f"b={folders['noisy']}", "--baseline", "c", "--out", str(tmp_path / "x"),
                     "--metrics", "stoi", "--workers", "1"]) == 2
