"""Corpus validation: every problem class is found, with its file, at the right severity."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from priorgrad.corpus.validate import format_report, main_validate, validate_corpus

MINI = Path(__file__).resolve().parents[1].parent / "shared/data/ljspeech_mini"
SR = 22050


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a syllable-like envelope, peak 0.5 (not silent, not clipped)."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    x = sum(np.sin(2 * np.pi * f * t) / (k + 1) for k, f in enumerate([140, 280, 420, 560]))
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)) + 0.01 * rng.standard_normal(len(t))
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


@pytest.fixture()
def bad_corpus(tmp_path: Path) -> Path:
    """One good utterance plus one file per problem class."""
    root = tmp_path / "bad"
    w = root / "wavs"
    w.mkdir(parents=True)
    good = _speechlike(1.5)
    sf.write(w / "good.wav", good, SR, subtype="PCM_16")
    (w / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really a wav file")
    (w / "empty.wav").write_bytes(b"")
    sf.write(w / "nosamples.wav", np.zeros(0, np.float32), SR, subtype="PCM_16")
    sf.write(w / "silent.wav", np.zeros(SR, np.float32), SR, subtype="PCM_16")
    clipped = good.copy() * 4.0
    sf.write(w / "clipped.wav", np.clip(clipped, -1, 1), SR, subtype="PCM_16")
    sf.write(w / "rate.wav", _speechlike(1.5)[:24000], 16000, subtype="PCM_16")
    sf.write(w / "stereo.wav", np.stack([good, good], axis=1), SR, subtype="PCM_16")
    sf.write(w / "short.wav", _speechlike(0.3), SR, subtype="PCM_16")
    nan = good.copy()
    nan[100] = np.nan
    sf.write(w / "nan.wav", nan, SR, subtype="FLOAT")
    sf.write(w / "orphan.wav", good, SR, subtype="PCM_16")  # no transcript line
    ids = ["good", "corrupt", "empty", "nosamples", "silent", "clipped", "rate", "stereo", "short", "nan", "nowav"]
    lines = [f"{i}|text of {i}|text of {i}" for i in ids] + ["malformed line without separator"]
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


EXPECTED = {  # kind -> (severity, file name in the message)
    "corrupt": ("error", "corrupt.wav"),
    "empty": ("error", "empty.wav"),
    "silent": ("error", "silent.wav"),
    "clipped": ("warning", "clipped.wav"),
    "wrong_rate": ("error", "rate.wav"),
    "stereo": ("warning", "stereo.wav"),
    "too_short": ("warning", "short.wav"),
    "nan": ("error", "nan.wav"),
    "missing_wav": ("error", "nowav.wav"),
    "missing_transcript": ("warning", "orphan.wav"),
    "malformed_metadata": ("error", "metadata.csv:12"),
}


def test_every_problem_class_is_reported_with_its_file(bad_corpus):
    report = validate_corpus(bad_corpus)
    by_kind: dict[str, list] = {}
    for p in report.problems:
        by_kind.setdefault(p.kind, []).append(p)
    for kind, (severity, name) in EXPECTED.items():
        assert kind in by_kind, f"{kind} not reported: {format_report(report)}"
        assert any(name in p.message and name in p.file for p in by_kind[kind]), (kind, by_kind[kind])
        assert all(p.severity == severity for p in by_kind[kind]), (kind, by_kind[kind])
    # the two kinds of empty file are both reported, and nothing is reported about the good file
    assert {Path(p.file).name for p in by_kind["empty"]} == {"empty.wav", "nosamples.wav"}
    assert not [p for p in report.problems if Path(p.file).name == "good.wav"]
    assert not report.ok
    # usable: good, clipped, stereo, short (warnings only); trainable: all but short
    assert report.n_usable == 4 and report.n_trainable == 3
    assert report.n_metadata == 11 and report.n_wavs == 11
    text = format_report(report)
    assert "NOT USABLE" in text and "short.wav" in text and "ERROR" in text and "WARNING" in text


def test_resampling_allowed_turns_wrong_rate_into_warning(bad_corpus):
    report = validate_corpus(bad_corpus, allow_resample=True)
    rate = [p for p in report.problems if p.kind == "wrong_rate"]
    assert [p.severity for p in rate] == ["warning"]
    assert report.n_usable == 5


def test_min_seconds_parameter(bad_corpus):
    report = validate_corpus(bad_corpus, min_seconds=0.2)
    assert "too_short" not in report.kinds()
    report = validate_corpus(bad_corpus, min_seconds=2.0)
    assert report.n_trainable == 0 and "no_trainable_utterances" in report.kinds()


def test_missing_metadata_and_missing_dir(tmp_path):
    (tmp_path / "c/wavs").mkdir(parents=True)
    sf.write(tmp_path / "c/wavs/a.wav", _speechlike(1.0), SR)
    report = validate_corpus(tmp_path / "c")
    assert [p.kind for p in report.errors] == ["missing_metadata"]
    assert "metadata.csv" in report.errors[0].message
    report = validate_corpus(tmp_path / "absent")
    assert [p.kind for p in report.errors] == ["missing_corpus"] and "absent" in report.errors[0].message


def test_no_usable_utterances_and_duplicates(tmp_path):
    root = tmp_path / "c"
    (root / "wavs").mkdir(parents=True)
    sf.write(root / "wavs/a.wav", np.zeros(SR, np.float32), SR, subtype="PCM_16")
    (root / "metadata.csv").write_text("a|one\na|again\nb|\n")
    report = validate_corpus(root)
    kinds = report.kinds()
    assert {"silent", "duplicate_id", "empty_transcript", "no_usable_utterances"} <= kinds
    assert any("metadata.csv:2" in p.message for p in report.problems if p.kind == "duplicate_id")


def test_main_validate_exit_codes(bad_corpus, tmp_path, capsys):
    assert main_validate([str(bad_corpus), "--no-progress", "--json", str(tmp_path / "r.json")]) == 1
    out = capsys.readouterr().out
    assert "corrupt.wav" in out and "NOT USABLE" in out
    assert '"ok": false' in (tmp_path / "r.json").read_text()
    good = tmp_path / "good"
    (good / "wavs").mkdir(parents=True)
    sf.write(good / "wavs/a.wav", _speechlike(1.0), SR, subtype="PCM_16")
    (good / "metadata.csv").write_text("a|hello there|hello there\n")
    assert main_validate([str(good), "--no-progress"]) == 0
    assert "result: OK" in capsys.readouterr().out


def test_ljspeech_mini_has_no_errors():
    if not MINI.exists():
        pytest.skip(f"shared LJSpeech sample not found at {MINI}")
    report = validate_corpus(MINI, progress=False)
    assert report.ok, format_report(report)
    assert report.n_usable == report.n_metadata == 32
    assert not [p for p in report.problems if p.kind in ("clipped", "stereo", "wrong_rate")], format_report(report)


def test_truncated_wav_and_phoneme_less_transcript_through_the_cli(tmp_path):
    """Issue 18's probes: a wav cut to half its bytes and a transcript of punctuation only both fail
    `priorgrad corpus validate`, each named (with both sizes; with its utterance)."""
    from support.core import run_cli

    root = tmp_path / "c"
    (root / "wavs").mkdir(parents=True)
    for name in ("good", "cut", "punct"):
        sf.write(root / "wavs" / f"{name}.wav", _speechlike(1.5), SR, subtype="PCM_16")
    data = (root / "wavs/cut.wav").read_bytes()
    declared = int.from_bytes(data[40:44], "little")  # the data chunk's size in a 44-byte PCM header
    (root / "wavs/cut.wav").write_bytes(data[: len(data) // 2])
    (root / "metadata.csv").write_text("good|Hello there.|Hello there.\ncut|A cut file.|A cut file.\n"
                                       "punct|...!?;--|...!?;--\n")
    proc = run_cli("corpus", "validate", str(root), check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert (f"{root / 'wavs/cut.wav'}: truncated: its header declares {declared} data bytes, "
            f"{len(data) // 2 - 44} are present") in proc.stdout
    assert f"{root / 'metadata.csv'}: utterance punct: eSpeak NG found no phonemes in '...!?;--'" in proc.stdout
    assert "utterance good" not in proc.stdout and "NOT USABLE (2 error(s))" in proc.stdout
    # a corpus only the vocoder will use: transcripts are not run through the acoustic front-end
    proc = run_cli("corpus", "validate", str(root), "--skip-transcripts", check=False)
    assert proc.returncode == 1 and "punct" not in proc.stdout and "NOT USABLE (1 error(s))" in proc.stdout
    # the library call checks transcripts only when given the front-end (this package imports no family)
    assert "unusable_transcript" not in validate_corpus(root).kinds()
