"""Scoring files that are not sample-aligned: --align dtw (MCD-DTW, F0 and V/UV on the path), --align lag,
--pair-by, and the offline intelligibility metrics (wer, cer) with their texts.

Hand-built cases use a synthetic utterance rendered twice from the same description, once with every
segment 25 % longer: an exact time-stretched copy, with the same pitch contour and spectra. The real
corpus (ljspeech_mini) cases are in the second half.
"""
from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from eval.cli import main as cli_main
from eval.files import read_texts
from eval.pair import Alignment, LengthPolicy, Pair, parse_alignment
from eval.runner import EvalInputError, score_arrays, score_dirs

SR = 22050
LJ = Path(__file__).resolve().parents[1].parent / "shared/data/ljspeech_mini"
WORLD = ["mcd", "f0_rmse", "vuv_error"]
DTW = Alignment("dtw")
ANY_LENGTH = LengthPolicy(samples=10 ** 9)  # trim to the shorter, whatever the difference: the unaligned score


def utterance(stretch: float = 1.0, seed: int = 0) -> np.ndarray:
    """Silence, a vowel gliding up, a fricative, a darker vowel gliding down, silence; ``stretch`` scales
    every segment's duration and nothing else."""
    rng = np.random.default_rng(seed)

    def n(dur: float) -> int:
        return int(round(dur * stretch * SR))

    def vowel(dur: float, f0a: float, f0b: float, tilt: float) -> np.ndarray:
        f0 = np.linspace(f0a, f0b, n(dur))
        phase = 2 * np.pi * np.cumsum(f0) / SR
        k_max = int(SR / 2 / max(f0a, f0b)) - 1
        y = sum(k ** -tilt * np.sin(k * phase) for k in range(1, k_max))
        return 0.3 * y / np.max(np.abs(y)) * np.sin(np.pi * np.linspace(0, 1, len(f0))) ** 0.3

    def fricative(dur: float) -> np.ndarray:
        return 0.08 * np.diff(rng.standard_normal(n(dur) + 1)) * np.hanning(n(dur))

    x = np.concatenate([np.zeros(n(0.1)), vowel(0.35, 120, 190, 1.0), fricative(0.15),
                        vowel(0.4, 210, 130, 2.0), np.zeros(n(0.1))])
    # a noise floor 70 dB down: WORLD's log envelope needs no exact zeros, trimming finds the speech
    return (x + 1e-4 * np.random.default_rng(99).standard_normal(len(x))).astype(np.float32)


def delayed(x: np.ndarray, lag: int) -> np.ndarray:
    """``x`` late by ``lag`` samples (early if negative), same length: a vocoder's constant delay."""
    floor = (1e-4 * np.random.default_rng(7).standard_normal(abs(lag))).astype(np.float32)
    return np.concatenate([floor, x])[: len(x)] if lag >= 0 else np.concatenate([x[-lag:], floor])


def _write(path: Path, x: np.ndarray, sr: int = SR) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype="FLOAT")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, np.ndarray]:
    return utterance(), utterance(stretch=1.25)


# ----------------------------------------------------------------------------- DTW
def warped_mcd(x: np.ndarray, y: np.ndarray) -> float:
    return score_arrays(x, y, SR, ["mcd"], alignment=DTW)[0]["mcd"]


def test_identical_files_give_mcd_dtw_zero(speech):
    x, _ = speech
    values, errors = score_arrays(x, x.copy(), SR, WORLD, alignment=DTW)
    assert errors == {}
    assert values == {"mcd": 0.0, "f0_rmse": 0.0, "vuv_error": 0.0}


def test_time_stretched_copy_scores_far_better_under_dtw(speech):
    x, y = speech
    assert len(y) > 1.2 * len(x)
    # without --align: a per-utterance length error for every reference metric, never a number
    values, errors = score_arrays(x, y, SR, WORLD + ["stoi"])
    assert values == {}
    for m in WORLD + ["stoi"]:
        assert f"length {len(y)} samples differs from the reference" in errors[m]
        assert "> the length tolerance 1 hop (256 samples at 22050 Hz" in errors[m]
    plain, errors = score_arrays(x, y, SR, WORLD, length_policy=ANY_LENGTH)  # trimmed, not aligned
    assert errors == {}
    warped, errors = score_arrays(x, y, SR, WORLD + ["stoi"], alignment=DTW)
    # the sample-aligned metric stays refused under --align dtw, and says why
    assert set(errors) == {"stoi"} and "--align dtw aligns only mcd, f0_rmse and vuv_error" in errors["stoi"]
    assert warped["mcd"] < plain["mcd"] / 3 and warped["mcd"] < 1.5
    assert warped["f0_rmse"] < plain["f0_rmse"] / 3 and warped["f0_rmse"] < 50  # cents
    assert warped["vuv_error"] < plain["vuv_error"] / 3 and warped["vuv_error"] < 0.05


def test_dtw_record_reports_speech_durations_and_the_silence_is_trimmed(speech):
    from eval.runner import alignment_record

    x, y = speech
    pad = np.concatenate([np.zeros(SR // 2, np.float32), y, np.zeros(SR // 2, np.float32)])  # 0.9 s speech, +1 s silence
    pair = Pair("u", x, pad, SR, alignment=DTW)
    values, errors = score_arrays(x, pad, SR, ["mcd"], alignment=DTW)
    rec = alignment_record(pair)
    assert rec["duration_ratio"] == pytest.approx(1.25, abs=0.03)  # the silence does not count
    assert rec["ref_speech_s"] == pytest.approx(0.9, abs=0.08) and rec["path_frames"] >= len(x) / SR / 0.005
    assert values["mcd"] == pytest.approx(warped_mcd(x, y), rel=0.15)
    # a file too short to align: null plus the reason, per metric
    _, errors = score_arrays(x, x[:500], SR, WORLD, alignment=DTW)
    assert set(errors) == set(WORLD) and all("too short or silent for DTW" in e for e in errors.values())
    # a silent one aligns (nothing to trim) and scores badly; F0 has no voiced frame to compare
    values, errors = score_arrays(x, np.zeros(SR, np.float32), SR, WORLD, alignment=DTW)
    assert values["mcd"] > 5 * warped_mcd(x, y) and values["vuv_error"] > 0.3
    assert set(errors) == {"f0_rmse"} and "no frame is voiced in both" in errors["f0_rmse"]


# ----------------------------------------------------------------------------- lag
@pytest.mark.parametrize("lag", [700, -300, 0])
def test_lag_alignment_recovers_a_known_delay(speech, lag):
    x, _ = speech
    d = delayed(x, lag)
    align = parse_alignment("lag")  # default max lag 8 hops = 2048 samples
    pair = Pair("u", x, d, SR, alignment=align)
    assert pair.lag == lag and len(pair.ref) == len(pair.gen) == len(x) - abs(lag)
    shifted, errors = score_arrays(x, d, SR, ["stoi", "mcd"], alignment=align)
    assert errors == {} and shifted["stoi"] > 0.999 and shifted["mcd"] < 0.05
    if lag:
        plain, _ = score_arrays(x, d, SR, ["stoi", "mcd"])
        # STOI's 384 ms frames forgive a 14 ms shift a little; 32 ms (700 samples) costs it a lot
        assert plain["stoi"] < shifted["stoi"] - (0.1 if lag == 700 else 0.02) and plain["mcd"] > 1.0


def test_lag_is_bounded_by_max_lag_and_the_length_policy_allows_the_lag(speech):
    x, _ = speech
    d = delayed(x, 700)
    pair = Pair("u", x, d, SR, alignment=parse_alignment("lag", "500"))
    assert abs(pair.lag) <= 500  # the true 700 lies outside: the best lag within the bound
    # a delayed output longer by its delay (its tail kept) is within the tolerance plus the lag
    longer = np.concatenate([np.zeros(700, np.float32), x])
    pair = Pair("u", x, longer, SR, alignment=parse_alignment("lag"))
    assert pair.lag == 700 and pair.ref_error is None and len(pair.gen) == len(x)
    # longer than that: the length error names the lag
    too_long = np.concatenate([longer, np.zeros(2000, np.float32)])
    _, errors = score_arrays(x, too_long, SR, ["stoi"], alignment=parse_alignment("lag"))
    assert "plus the lag |700|" in errors["stoi"]
    _, errors = score_arrays(x, np.zeros_like(x), SR, ["stoi"], alignment=parse_alignment("lag"))
    assert "no positive cross-correlation" in errors["stoi"]


def test_parse_alignment_refuses_bad_settings():
    assert parse_alignment(None) is None
    assert parse_alignment("lag", "4hops").max_lag(22050) == 1024
    assert parse_alignment("lag", "300").max_lag(16000) == 300
    for method, lag in (("dtw", "4hops"), (None, "4hops"), ("lag", "4 frames"), ("warp", None)):
        with pytest.raises(ValueError):
            parse_alignment(method, lag)


# ----------------------------------------------------------------------------- pair-by, CLI, cache
@pytest.fixture
def demo(tmp_path, speech) -> tuple[Path, Path]:
    """A demo page's layout: ss_gt_<n>.wav recordings, ss_hgan_v1_<n>.wav outputs 742..885 samples late."""
    x, _ = speech
    ref, gen = tmp_path / "gt", tmp_path / "hgan"
    for i, lag in ((1, 742), (2, 885), (10, 800)):
        y = x if i == 1 else utterance(seed=i)
        _write(ref / f"ss_gt_{i}.wav", y)
        _write(gen / f"ss_hgan_v1_{i}.wav", delayed(y, lag))
    return ref, gen


def test_pair_by_with_lag_scores_differently_named_delayed_files(demo, tmp_path):
    ref, gen = demo
    out = tmp_path / "out"
    args = ["score", "--ref", str(ref), "--gen", str(gen), "--align", "lag", "--pair-by", r"(\d+)\.wav$",
            "--metrics", "stoi", "--out", str(out), "--workers", "1"]
    assert cli_main(args) == 0
    records = _jsonl(out / "scores.jsonl")
    assert [r["utt"] for r in records] == ["1", "10", "2"]  # in the reference files' name order
    by = {r["utt"]: r for r in records}
    assert by["1"]["files"] == {"ref": "ss_gt_1.wav", "gen": "ss_hgan_v1_1.wav"}
    assert {u: r["alignment"]["lag_samples"] for u, r in by.items()} == {"1": 742, "2": 885, "10": 800}
    assert by["2"]["alignment"]["lag_s"] == pytest.approx(885 / SR)
    assert all(r["errors"] == {} and r["stoi"] > 0.999 for r in records)
    settings = json.loads((out / "summary.json").read_text())["stoi"]["settings"]
    assert settings["pair_by"] == r"(\d+)\.wav$" and settings["alignment"]["method"] == "lag"
    assert settings["alignment"]["max_lag"] == "8 hops" and settings["alignment"]["max_lag_samples_at_22050_hz"] == 2048

    # a re-run reads scores and lags from the cache: a sentinel planted there comes back
    with sqlite3.connect(out / "cache.sqlite") as db:
        db.execute("UPDATE scores SET value = 0.5 WHERE metric = 'stoi' AND utt = '1'")
        assert db.execute("SELECT COUNT(*) FROM scores WHERE metric = 'alignment:lag_samples'").fetchone()[0] == 3
    assert cli_main(args) == 0
    again = {r["utt"]: r for r in _jsonl(out / "scores.jsonl")}
    assert again["1"]["stoi"] == 0.5 and again["1"]["alignment"] == by["1"]["alignment"]
    # ... and an unaligned run on the same cache is another score, not the aligned one
    assert cli_main(args[:5] + args[7:]) == 0
    plain = {r["utt"]: r for r in _jsonl(out / "scores.jsonl")}
    assert all(plain[u]["stoi"] < 0.9 for u in plain) and "alignment" not in plain["1"]


def test_pair_by_errors_name_the_key_and_the_files(demo, tmp_path):
    ref, gen = demo
    out = tmp_path / "out"
    with pytest.raises(EvalInputError, match="needs a group"):
        score_dirs(ref, gen, "stoi", out, pair_by=r"\d+\.wav$")
    with pytest.raises(EvalInputError, match="not a valid regular expression"):
        score_dirs(ref, gen, "stoi", out, pair_by=r"(\d+\.wav$")
    (gen / "ss_hgan_v2_1.wav").write_bytes((gen / "ss_hgan_v1_1.wav").read_bytes())
    with pytest.raises(EvalInputError, match=r"key '1' matches two generated files in .*ss_hgan_v1_1.wav and ss_hgan_v2_1.wav"):
        score_dirs(ref, gen, "stoi", out, pair_by=r"(\d+)\.wav$")
    (gen / "ss_hgan_v2_1.wav").unlink()
    (ref / "notes.wav").write_bytes((ref / "ss_gt_1.wav").read_bytes())
    with pytest.raises(EvalInputError, match=r"reference file .*notes.wav gives no key \(the expression does not match"):
        score_dirs(ref, gen, "stoi", out, pair_by=r"(\d+)\.wav$")
    (ref / "notes.wav").unlink()
    # a reference key no generated file has: that utterance fails with the reason, the others score
    (gen / "ss_hgan_v1_2.wav").unlink()
    records, _ = score_dirs(ref, gen, "stoi", out, pair_by=r"(\d+)\.wav$", alignment=parse_alignment("lag"),
                            use_cache=False)
    by = {r["utt"]: r for r in records}
    assert by["2"]["stoi"] is None and "no generated file" in by["2"]["errors"]["stoi"]
    assert "--pair-by key '2'" in by["2"]["errors"]["stoi"] and by["2"]["files"]["gen"] is None
    assert by["1"]["stoi"] > 0.999
    # --align needs references
    with pytest.raises(EvalInputError, match="needs --ref"):
        score_dirs(None, gen, "dnsmos_ovrl", out, alignment=DTW)


def test_score_many_with_dtw_writes_the_table_and_comparisons(tmp_path, speech):
    x, y = speech
    ref, slow, noisy = tmp_path / "ref", tmp_path / "slow", tmp_path / "noisy"
    rng = np.random.default_rng(3)
    for i, seed in enumerate((0, 5)):
        base = x if seed == 0 else utterance(seed=seed)
        stretched = y if seed == 0 else utterance(stretch=1.25, seed=seed)
        _write(ref / f"u{i}.wav", base)
        _write(slow / f"u{i}.wav", stretched)
        _write(noisy / f"u{i}.wav", stretched + 0.02 * rng.standard_normal(len(stretched)).astype(np.float32))
    out = tmp_path / "many"
    # exit 1: stoi was asked for and scored nothing (it needs sample-aligned files); the tables are still written
    assert cli_main(["score-many", "--ref", str(ref), "--gen", f"slow={slow}", "--gen", f"noisy={noisy}",
                     "--baseline", "slow", "--align", "dtw", "--metrics", "mcd,vuv_error,stoi", "--out", str(out),
                     "--workers", "1"]) == 1
    with open(out / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 3
    mcd = {(r["system"], r["utt"]): float(r["value"]) for r in rows if r["metric"] == "mcd"}
    assert all(mcd[("slow", u)] < mcd[("noisy", u)] for u in ("u0", "u1"))
    assert all(r["value"] == "" and "length tolerance" in r["error"] for r in rows if r["metric"] == "stoi")
    doc = json.loads((out / "comparisons.json").read_text())
    assert doc["alignment"]["method"] == "dtw" and doc["alignment"]["step_pattern"].startswith("symmetric2")
    assert doc["comparisons"]["noisy"]["mcd"]["mean_diff"] > 0 and doc["comparisons"]["noisy"]["mcd"]["n"] == 2
    rec = _jsonl(out / "slow" / "scores.jsonl")[0]
    assert rec["alignment"]["duration_ratio"] == pytest.approx(1.25, abs=0.03)


# ----------------------------------------------------------------------------- wer / cer
def test_wer_and_cer_of_a_known_transcript_by_hand(monkeypatch, speech):
    from eval.metrics import asr

    x, _ = speech
    heard = {"value": ""}
    monkeypatch.setattr(asr, "transcribe", lambda wav: heard["value"])

    def rates(text: str, hyp: str) -> tuple[float, float]:
        heard["value"] = hyp
        values, errors = score_arrays(None, x, SR, ["wer", "cer"], text=text)
        assert errors == {}
        return values["wer"], values["cer"]

    # 12 words; "with" deleted, "concerned" -> "concern": 2 errors; case and punctuation are not errors
    text = "Printing, in the only sense with which we are at present concerned,"
    assert rates(text, "printing in the only sense which we are at present concern")[0] == pytest.approx(2 / 12)
    assert rates("the cat", "the bat") == (pytest.approx(1 / 2), pytest.approx(1 / 7))  # 7 characters, 1 wrong
    assert rates("Wood-blocks, 'engraved' in relief!", "wood blocks engraved in relief") == (0.0, 0.0)
    assert rates("in being comparatively modern.", "") == (1.0, 1.0)  # nothing heard: every word deleted
    # insertions count too, so a rate can exceed 1: 2 words inserted / 2; 4 characters (" c d") / 3 ("a b")
    assert rates("a b", "a b c d") == (1.0, pytest.approx(4 / 3))
    _, errors = score_arrays(None, x, SR, ["wer"], text="...")
    assert "empty after normalisation" in errors["wer"]
    _, errors = score_arrays(None, x, SR, ["wer"])
    assert "no text for utterance" in errors["wer"]


def test_texts_are_read_strictly_and_the_text_metrics_need_them(tmp_path, speech):
    x, _ = speech
    meta = tmp_path / "metadata.csv"
    meta.write_text("LJ001-0002|in being comparatively modern.|in being comparatively modern.\n"
                    "u1|Mr. Smith, 1886.|Mister Smith, eighteen eighty-six.\n\nu2|two fields\n")
    assert read_texts(meta) == {"LJ001-0002": "in being comparatively modern.",
                                "u1": "Mister Smith, eighteen eighty-six.", "u2": "two fields"}
    for body, needle in (("a|x\na|y\n", r":2: utterance 'a' given twice"), ("a x\n", ":1: expected 'id|text'"),
                         ("|x\n", ":1: empty id"), ("a|\n", ":1: empty text"), ("\n", "no texts")):
        bad = tmp_path / "bad.txt"
        bad.write_text(body)
        with pytest.raises(ValueError, match=needle):
            read_texts(bad)
    with pytest.raises(FileNotFoundError, match="text file not found"):
        read_texts(tmp_path / "nope.txt")

    gen = tmp_path / "gen"
    _write(gen / "u1.wav", x)
    _write(gen / "u3.wav", x)
    with pytest.raises(EvalInputError, match="need the utterances' texts: pass --text"):
        score_dirs(None, gen, "wer,dnsmos_ovrl", tmp_path / "o")
    assert cli_main(["score", "--gen", str(gen), "--metrics", "wer", "--out", str(tmp_path / "o"),
                     "--text", str(tmp_path / "nope.txt")]) == 2
    # 'all' without texts is every metric whose inputs are given: no wer, cer
    records, summary = score_dirs(None, gen, "all", tmp_path / "o", use_cache=False)
    assert "wer" not in summary and "cer" not in summary and "dnsmos_ovrl" in summary


# ----------------------------------------------------------------------------- real speech (ljspeech_mini)
@pytest.fixture(scope="module")
def lj() -> dict[str, np.ndarray]:
    import soundfile as sf

    if not (LJ / "metadata.csv").is_file():
        pytest.skip(f"real-speech corpus not found at {LJ} (../shared/data/ljspeech_mini)")
    out = {}
    for utt in ("LJ001-0016", "LJ001-0004"):  # 5.3 s and 5.1 s
        x, sr = sf.read(str(LJ / "wavs" / f"{utt}.wav"), dtype="float32")
        assert sr == SR
        out[utt] = x
    return out


def test_real_speech_time_stretched_and_delayed_copies_order_as_expected(lj):
    import librosa

    x, other = lj["LJ001-0016"][: 3 * SR], lj["LJ001-0004"][: 3 * SR]
    slow = librosa.effects.time_stretch(x, rate=0.8).astype(np.float32)  # 25 % longer, same pitch
    assert len(slow) == pytest.approx(1.25 * len(x), rel=0.01)
    same = score_arrays(x, x.copy(), SR, WORLD, alignment=DTW)[0]
    warped = score_arrays(x, slow, SR, WORLD, alignment=DTW)[0]
    unaligned = score_arrays(x, slow, SR, WORLD, length_policy=ANY_LENGTH)[0]
    wrong = score_arrays(x, other, SR, WORLD, alignment=DTW)[0]
    assert same["mcd"] == 0.0
    # the same words stretched are far closer than the same file unaligned, and than other words aligned
    assert 0.0 < warped["mcd"] < 0.5 * unaligned["mcd"] and warped["mcd"] < wrong["mcd"]
    assert warped["vuv_error"] < unaligned["vuv_error"] and warped["f0_rmse"] < unaligned["f0_rmse"]
    assert "length tolerance" in score_arrays(x, slow, SR, ["mcd"])[1]["mcd"]  # without --align: refused

    late = delayed(x, 800) + 0.003 * np.random.default_rng(1).standard_normal(len(x)).astype(np.float32)
    pair = Pair("u", x, late, SR, alignment=parse_alignment("lag"))
    assert pair.lag == 800
    # (not PESQ: P.862 compensates a constant delay itself)
    shifted = score_arrays(x, late, SR, ["stoi", "mcd"], alignment=parse_alignment("lag"))[0]
    plain = score_arrays(x, late, SR, ["stoi", "mcd"])[0]
    assert shifted["stoi"] > 0.9 > plain["stoi"] + 0.3 and shifted["mcd"] < plain["mcd"] - 2.0  # dB


def test_pocketsphinx_wer_on_real_recordings_is_low_and_the_wrong_text_is_not(lj, tmp_path):
    import importlib.metadata

    wavs = tmp_path / "wavs"
    for utt, x in lj.items():
        _write(wavs / f"{utt}.wav", x)
    texts = read_texts(LJ / "metadata.csv")
    records, summary = score_dirs(None, wavs, "wer,cer", tmp_path / "out", texts=texts,
                                  text_source=str(LJ / "metadata.csv"), use_cache=False)
    for r in records:  # measured 0.083 and 0.143 with pocketsphinx 5.1.1's bundled model
        assert r["errors"] == {} and 0.0 <= r["wer"] < 0.3 and 0.0 <= r["cer"] < r["wer"] + 0.05, r
    s = summary["wer"]
    assert s["mean"] < 0.25 and s["needs_text"] is True and s["settings"]["texts"].endswith("metadata.csv")
    assert f"pocketsphinx {importlib.metadata.version('pocketsphinx')}" in s["version"]
    assert s["settings"]["model_files"]["lm"] == "en-us/en-us.lm.bin"
    # the same recording against another utterance's text is mostly wrong
    x = lj["LJ001-0016"]
    wrong, errors = score_arrays(None, x, SR, ["wer"], text=texts["LJ001-0004"])
    assert errors == {} and wrong["wer"] > 0.7


def test_the_stage_api_passes_alignment_and_texts_through(tmp_path, speech, monkeypatch):
    """experiments.scoring.score_sets (the pipeline's one call into eval) scores TTS-length audio by DTW and
    the text metrics with {utt: text}, per set label."""
    from types import SimpleNamespace

    from eval.metrics import asr
    from experiments.scoring import score_sets

    x, y = speech
    ref, gen = tmp_path / "ref", tmp_path / "E3"
    _write(ref / "u0.wav", x)
    _write(gen / "u0.wav", y)
    monkeypatch.setattr(asr, "transcribe", lambda wav: "hello world")  # workers=1: scored in this process
    cfg = SimpleNamespace(metrics=["mcd", "wer"], workers=1, bootstrap_seed=0, n_boot=100)
    out = score_sets([("E3", gen, ref)], ["u0"], cfg, tmp_path / "work", alignment=DTW,
                     texts={"u0": "Hello, world!"})
    (rec,) = out["E3"]
    assert rec["utt"] == "u0" and rec["errors"] == {} and rec["wer"] == 0.0
    assert rec["mcd"] == pytest.approx(warped_mcd(x, y)) and rec["alignment"]["duration_ratio"] > 1.2
    # without the alignment the same audio is refused for its length, never scored as if aligned
    (plain,) = score_sets([("E3", gen, ref)], ["u0"], cfg, tmp_path / "work", texts={"u0": "Hello, world!"})["E3"]
    assert plain["mcd"] is None and "length tolerance" in plain["errors"]["mcd"]
