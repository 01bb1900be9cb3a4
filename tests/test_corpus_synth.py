"""The default corpus: eSpeak NG synthesis, determinism, size, idempotence, sentence generator."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from priorgrad.corpus import espeak, synth
from priorgrad.corpus.ljspeech import CorpusError, read_metadata
from priorgrad.corpus.sentences import generate_sentences, word_count
from priorgrad.corpus.validate import format_report, validate_corpus


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def default_corpus(tmp_path_factory) -> tuple[Path, dict]:
    """The full default corpus, made once (about 2 s: eSpeak runs ~1000x faster than real time)."""
    out = tmp_path_factory.mktemp("synth") / "default"
    return out, synth.make_corpus(out, progress=False)


# ----------------------------------------------------------------------------- eSpeak
def test_espeak_speaks_english_at_22050():
    eng = espeak.engine()
    assert eng.sample_rate == espeak.NATIVE_SAMPLE_RATE == 22050
    assert eng.version.startswith("1.")
    short = espeak.synthesize("Hello.", espeak.Prosody(rate=175))
    long = espeak.synthesize("The quick brown fox jumps over the lazy dog near the quiet river bank.")
    assert short.dtype == np.float32 and np.abs(long).max() > 0.1
    assert len(long) > 2 * len(short) and len(long) / 22050 > 2.0
    slow = espeak.synthesize("The quick brown fox jumps over the lazy dog.", espeak.Prosody(rate=100))
    fast = espeak.synthesize("The quick brown fox jumps over the lazy dog.", espeak.Prosody(rate=300))
    assert len(slow) > 1.8 * len(fast)  # the rate parameter reaches the library


def test_espeak_rejects_bad_input():
    with pytest.raises(ValueError, match="rate must be in"):
        espeak.synthesize("hi", espeak.Prosody(rate=1000))
    with pytest.raises(ValueError, match="empty text"):
        espeak.synthesize("   ")
    with pytest.raises(espeak.EspeakError, match="voice 'xx-nonexistent' not found"):
        espeak.synthesize("hello", voice="xx-nonexistent")


# ----------------------------------------------------------------------------- sentences
def test_sentences_deterministic_distinct_and_varied():
    a = generate_sentences(400, seed=0)
    assert a == generate_sentences(400, seed=0)
    assert a[:50] == generate_sentences(50, seed=0)  # growing the corpus keeps its sentences
    assert a != generate_sentences(400, seed=1)
    assert len(set(a)) == 400
    counts = np.array([word_count(s) for s in a])
    assert counts.min() >= 3 and counts.max() <= 25
    assert (counts <= 6).sum() >= 20 and (counts >= 20).sum() >= 20  # short and long both present
    ends = {s[-1] for s in a}
    assert ends == {".", "?", "!"}
    assert all(s[0].isupper() for s in a)
    assert len({w.lower().strip(",.?!") for s in a for w in s.split()}) > 400  # broad vocabulary
    assert not [s for s in a if " a a" in s.lower() or " a e" in s.lower() or " a o" in s.lower()]


# ----------------------------------------------------------------------------- corpus
def test_default_corpus_size_and_variety(default_corpus):
    out, summary = default_corpus
    assert summary["n_utterances"] == 300 >= 200
    assert summary["total_seconds"] >= 5 * 60  # several minutes (about 23 min)
    assert summary["min_seconds"] >= 0.5
    utts = summary["utterances"]
    for key, (lo, hi) in [("rate", (130, 210)), ("pitch", (30, 70)), ("pitch_range", (20, 80))]:
        vals = np.array([u[key] for u in utts])
        assert vals.min() >= lo and vals.max() <= hi
        assert vals.std() > (hi - lo) / 5  # spread over the range, not constant
    assert len(read_metadata(out, require_wavs=True)) == 300
    x, sr = sf.read(out / "wavs" / "SYN0-0001.wav", dtype="int16")
    info = sf.info(out / "wavs" / "SYN0-0001.wav")
    assert sr == 22050 and info.channels == 1 and info.subtype == "PCM_16"
    # trimmed: at most ~50 ms of low-level audio at each end
    lvl = np.abs(x.astype(np.float32)) > 0.01 * np.abs(x).max()
    assert np.argmax(lvl) <= 0.06 * sr and np.argmax(lvl[::-1]) <= 0.06 * sr


def test_default_corpus_validates_clean(default_corpus):
    out, _ = default_corpus
    report = validate_corpus(out, progress=False)
    assert report.ok and not report.problems, format_report(report)


def test_rerun_is_a_no_op(default_corpus):
    out, _ = default_corpus
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = synth.make_corpus(out, progress=False)
    assert again["up_to_date"] and again["written"] == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_deterministic_bytes_and_partial_completion(tmp_path):
    a = synth.make_corpus(tmp_path / "a", n_utterances=4, seed=5, progress=False)
    synth.make_corpus(tmp_path / "b", n_utterances=4, seed=5, progress=False)
    assert a["written"] == 4 and not a["up_to_date"]
    ref = _tree_bytes(tmp_path / "a")
    assert ref == _tree_bytes(tmp_path / "b")
    assert set(ref) == {"corpus.json", "metadata.csv", synth.EVENTS_FILE, *(f"wavs/SYN5-000{i}.wav" for i in range(1, 5))}
    # an interrupted run: summary and metadata not yet written, one wav missing, one truncated
    (tmp_path / "a/corpus.json").unlink()
    (tmp_path / "a/metadata.csv").unlink()
    (tmp_path / "a/wavs/SYN5-0002.wav").unlink()
    (tmp_path / "a/wavs/SYN5-0003.wav").write_bytes(b"RIFF")
    redo = synth.make_corpus(tmp_path / "a", n_utterances=4, seed=5, progress=False)
    assert redo["written"] == 2
    assert _tree_bytes(tmp_path / "a") == ref
    c = synth.make_corpus(tmp_path / "c", n_utterances=4, seed=6, progress=False)
    assert c["utterances"][0]["id"] == "SYN6-0001"
    assert _tree_bytes(tmp_path / "c")["wavs/SYN6-0001.wav"] != ref["wavs/SYN5-0001.wav"]


def test_changed_arguments_rebuild_and_remove_stale_files(tmp_path):
    synth.make_corpus(tmp_path / "a", n_utterances=5, seed=0, progress=False)
    small = synth.make_corpus(tmp_path / "a", n_utterances=3, seed=0, progress=False)
    assert not small["up_to_date"]
    assert sorted(p.name for p in (tmp_path / "a/wavs").iterdir()) == [f"SYN0-000{i}.wav" for i in (1, 2, 3)]
    assert json.loads((tmp_path / "a/corpus.json").read_text())["args"]["n_utterances"] == 3
    assert validate_corpus(tmp_path / "a", progress=False).problems == []


def test_refuses_to_overwrite_a_foreign_corpus(tmp_path):
    root = tmp_path / "lj"
    (root / "wavs").mkdir(parents=True)
    (root / "metadata.csv").write_text("LJ001-0001|Printing, in the only sense|Printing, in the only sense\n")
    with pytest.raises(CorpusError, match=r"metadata\.csv: holds utterances not made by the synthesiser"):
        synth.make_corpus(root, n_utterances=2, progress=False)
    assert (root / "metadata.csv").read_text().startswith("LJ001-0001")


def test_too_short_clips_are_replaced_or_raise(tmp_path):
    # 3-word sentences at up to 210 wpm last about 1 s: with a 1.6 s minimum some must be re-made
    out = synth.make_corpus(tmp_path / "a", n_utterances=12, seed=0, min_seconds=1.6, max_words=5, progress=False)
    assert out["replaced_sentences"] >= 1
    assert min(u["seconds"] for u in out["utterances"]) >= 1.6
    texts = [u.text for u in read_metadata(tmp_path / "a")]
    assert len(texts) == 12 and all(word_count(t) >= 3 for t in texts)
    with pytest.raises(CorpusError, match=r"utterance SYN0-0001: audio stays shorter than 60"):
        synth.make_corpus(tmp_path / "b", n_utterances=1, seed=0, min_seconds=60, progress=False)


def test_other_sample_rate(tmp_path):
    synth.make_corpus(tmp_path / "a", n_utterances=2, sample_rate=16000, progress=False)
    info = sf.info(tmp_path / "a/wavs/SYN0-0001.wav")
    assert info.samplerate == 16000
    assert validate_corpus(tmp_path / "a", sample_rate=16000, min_seconds=0.5, progress=False).ok
    assert not validate_corpus(tmp_path / "a", progress=False).ok  # 22050 expected: wrong rate


def test_main_make_cli(tmp_path, capsys):
    assert synth.main_make(["--out", str(tmp_path / "c"), "--n", "2", "--seed", "3", "--no-progress"]) == 0
    assert "2 utterances" in capsys.readouterr().out
    assert synth.main_make(["--out", str(tmp_path / "c"), "--n", "2", "--seed", "3", "--no-progress"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert synth.main_make(["--out", str(tmp_path / "d"), "--n", "2", "--rate", "50", "60"]) == 1
    assert "rate must be in" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "d/metadata.csv")
