"""LJSpeech layout: metadata reader errors, writer round trip, deterministic and official splits."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from priorgrad.corpus import ljspeech
from priorgrad.corpus.ljspeech import (CorpusError, Utterance, read_metadata, split_utterances,
                                       write_ljspeech)

MINI = Path(__file__).resolve().parents[1].parent / "shared/data/ljspeech_mini"


def _corpus(tmp_path: Path, text: str | bytes) -> Path:
    root = tmp_path / "c"
    (root / "wavs").mkdir(parents=True)
    data = text.encode("utf-8") if isinstance(text, str) else text
    (root / "metadata.csv").write_bytes(data)
    return root


# ----------------------------------------------------------------------------- reader
def test_reads_three_and_two_field_lines_preferring_normalized_text(tmp_path):
    root = _corpus(tmp_path, "A-1|Dr. Smith paid $5.|Doctor Smith paid five dollars.\r\nA-2|plain text\n\n")
    utts = read_metadata(root)
    assert [u.utt_id for u in utts] == ["A-1", "A-2"]
    assert utts[0].text == "Doctor Smith paid five dollars."
    assert utts[1].text == "plain text"
    assert utts[0].wav_path == root / "wavs" / "A-1.wav"


def test_missing_metadata_names_the_file(tmp_path):
    (tmp_path / "c").mkdir()
    with pytest.raises(CorpusError, match=r"c/metadata\.csv: missing"):
        read_metadata(tmp_path / "c")
    with pytest.raises(CorpusError, match="corpus directory not found"):
        read_metadata(tmp_path / "nope")


@pytest.mark.parametrize("bad_line, pattern", [
    ("just-an-id", r"metadata\.csv:2: malformed line.*got 1"),
    ("X-9|a|b|c", r"metadata\.csv:2: malformed line.*got 4"),
    ("bad id|text", r"metadata\.csv:2: malformed line: invalid utterance id"),
    ("X-9||", r"metadata\.csv:2: empty transcript for utterance X-9"),
    ("A-1|again", r"metadata\.csv:2: duplicate utterance id A-1 \(first on line 1\)"),
])
def test_bad_metadata_lines_name_file_and_line(tmp_path, bad_line, pattern):
    root = _corpus(tmp_path, f"A-1|fine|fine\n{bad_line}\n")
    with pytest.raises(CorpusError, match=pattern):
        read_metadata(root)


def test_invalid_utf8_and_empty_file(tmp_path):
    root = _corpus(tmp_path, b"A-1|ok\nA-2|caf\xe9\n")
    with pytest.raises(CorpusError, match=r"metadata\.csv:2: not valid UTF-8"):
        read_metadata(root)
    root2 = tmp_path / "e"
    (root2 / "wavs").mkdir(parents=True)
    (root2 / "metadata.csv").write_text("")
    with pytest.raises(CorpusError, match="no utterances"):
        read_metadata(root2)


def test_require_wavs(tmp_path):
    root = _corpus(tmp_path, "A-1|text\n")
    assert len(read_metadata(root)) == 1
    with pytest.raises(CorpusError, match=r"wavs/A-1\.wav: audio file missing"):
        read_metadata(root, require_wavs=True)


# ----------------------------------------------------------------------------- writer
def test_write_ljspeech_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    float_wav = (rng.uniform(-0.5, 0.5, 4000)).astype(np.float32)
    int_wav = rng.integers(-20000, 20000, 3000).astype(np.int16)
    items = [("U-1", "first one", float_wav), ("U-2", "second one", int_wav)]
    write_ljspeech(tmp_path / "out", items, 22050)
    utts = read_metadata(tmp_path / "out", require_wavs=True)
    assert [(u.utt_id, u.text) for u in utts] == [("U-1", "first one"), ("U-2", "second one")]
    x, sr = sf.read(utts[1].wav_path, dtype="int16")
    assert sr == 22050 and np.array_equal(x, int_wav)
    y, _ = sf.read(utts[0].wav_path, dtype="float32")
    assert np.max(np.abs(y - float_wav)) <= 1 / 32768  # 16-bit quantisation only
    # a second write of the same float audio gives the same bytes (read/write is exact after one trip)
    write_ljspeech(tmp_path / "out2", [("U-1", "first one", y)], 22050)
    assert (tmp_path / "out2/wavs/U-1.wav").read_bytes() == utts[0].wav_path.read_bytes()
    assert not list((tmp_path / "out").rglob(".*tmp*"))  # no temp files left behind


@pytest.mark.parametrize("items, pattern", [
    ([("a b", "t", np.zeros(10))], "invalid utterance id"),
    ([("A", "x|y", np.zeros(10))], "without '|'"),
    ([("A", "  ", np.zeros(10))], "non-empty"),
    ([("A", "t", np.zeros(10)), ("A", "u", np.zeros(10))], "duplicate utterance id A"),
    ([("A", "t", np.array([0.0, np.nan]))], "utterance A: waveform contains NaN"),
])
def test_write_ljspeech_rejects_bad_items(tmp_path, items, pattern):
    with pytest.raises(CorpusError, match=pattern):
        write_ljspeech(tmp_path / "out", items, 22050)
    assert not (tmp_path / "out/metadata.csv").exists()


# ----------------------------------------------------------------------------- seeded split
def _utts(ids) -> list[Utterance]:
    return [Utterance(i, "text", Path("wavs") / f"{i}.wav") for i in ids]


def test_seeded_split_is_deterministic_sized_disjoint_and_order_independent():
    utts = _utts(f"S-{i:03d}" for i in range(100))
    a = split_utterances(utts, 5, 10, seed=3)
    assert {k: len(v) for k, v in a.items()} == {"train": 85, "valid": 5, "test": 10}
    ids = {k: [u.utt_id for u in v] for k, v in a.items()}
    assert set(ids["train"]) | set(ids["valid"]) | set(ids["test"]) == {u.utt_id for u in utts}
    assert not set(ids["valid"]) & set(ids["test"])
    assert all(v == sorted(v) for v in ids.values())
    shuffled = [utts[i] for i in np.random.default_rng(1).permutation(len(utts))]
    assert split_utterances(shuffled, 5, 10, seed=3) == a  # input order does not matter
    assert split_utterances(utts, 5, 10, seed=3) == a
    assert split_utterances(utts, 5, 10, seed=4)["valid"] != a["valid"]


def test_seeded_split_size_errors():
    utts = _utts(f"S-{i}" for i in range(10))
    with pytest.raises(CorpusError, match="10 utterances: too few"):
        split_utterances(utts, 5, 5, seed=0)
    with pytest.raises(CorpusError, match=">= 0"):
        split_utterances(utts, -1, 2, seed=0)
    with pytest.raises(CorpusError, match="duplicate utterance id S-1"):
        split_utterances(utts + utts[1:2], 1, 1, seed=0)
    with pytest.raises(ValueError, match="official must be"):
        split_utterances(utts, 1, 1, seed=0, official="maybe")


# ----------------------------------------------------------------------------- official split
def _full_ljspeech_ids() -> list[str]:
    shipped = set(ljspeech.read_id_list(ljspeech.SPLITS_DIR / "ljspeech_valid.txt")) | set(
        ljspeech.read_id_list(ljspeech.SPLITS_DIR / "ljspeech_test.txt"))
    ids = set(shipped)
    chapter, n = 1, 1
    while len(ids) < ljspeech.LJSPEECH_SIZE:
        ids.add(f"LJ{chapter:03d}-{n:04d}")
        n += 1
        if n > 400:
            chapter, n = chapter + 1, 1
    return sorted(ids)


def test_shipped_official_lists():
    valid = ljspeech.read_id_list(ljspeech.SPLITS_DIR / "ljspeech_valid.txt")
    test = ljspeech.read_id_list(ljspeech.SPLITS_DIR / "ljspeech_test.txt")
    assert valid == ["LJ033-0112", "LJ047-0089", "LJ048-0040", "LJ010-0096", "LJ022-0092"]
    assert len(test) == 95 and len(set(test)) == 95 and not set(test) & set(valid)
    assert test[0] == "LJ027-0160" and test[-1] == "LJ046-0238"


def test_full_ljspeech_uses_official_13000_5_95():
    utts = _utts(_full_ljspeech_ids())
    assert ljspeech.is_full_ljspeech(utts)
    s = split_utterances(utts, n_valid=8, n_test=24, seed=0)  # sizes from params are overridden
    assert {k: len(v) for k, v in s.items()} == {"train": 13000, "valid": 5, "test": 95}
    assert [u.utt_id for u in s["valid"]] == ljspeech.read_id_list(ljspeech.SPLITS_DIR / "ljspeech_valid.txt")
    assert split_utterances(utts, 8, 24, seed=7) == s  # the official split does not depend on the seed
    seeded = split_utterances(utts, 8, 24, seed=0, official="no")
    assert len(seeded["valid"]) == 8


def test_auto_without_lists_falls_back_to_seeded_13000_5_95_with_warning(tmp_path, monkeypatch, caplog):
    utts = _utts(_full_ljspeech_ids())
    monkeypatch.setattr(ljspeech, "SPLITS_DIR", tmp_path / "no_lists")
    with caplog.at_level(logging.WARNING, logger="priorgrad.corpus.ljspeech"):
        s = split_utterances(utts, 8, 24, seed=0)
    assert {k: len(v) for k, v in s.items()} == {"train": 13000, "valid": 5, "test": 95}
    assert "not the official" in caplog.text
    with pytest.raises(CorpusError, match="official split lists not found.*--split-lists"):
        split_utterances(utts, 8, 24, seed=0, official="yes")


def test_official_yes_with_user_lists(tmp_path):
    utts = _utts(f"S-{i:02d}" for i in range(10))
    d = tmp_path / "lists"
    d.mkdir()
    (d / "ljspeech_valid.txt").write_text("# comment\n/data/wavs/S-03.wav\n")
    (d / "ljspeech_test.txt").write_text("S-07|some text\nS-01\n")
    s = split_utterances(utts, 0, 0, seed=0, official="yes", lists_dir=d)
    assert [u.utt_id for u in s["valid"]] == ["S-03"]
    assert [u.utt_id for u in s["test"]] == ["S-07", "S-01"]  # list order kept
    assert len(s["train"]) == 7
    assert split_utterances(utts, 0, 0, seed=0, lists_dir=d) == s  # auto + explicit lists: use them
    assert len(split_utterances(utts, 2, 2, seed=0, official="no", lists_dir=d)["valid"]) == 2
    with pytest.raises(CorpusError, match="official split lists not found"):
        split_utterances(utts, 2, 2, seed=0, lists_dir=tmp_path)  # explicit but empty directory
    # a listed id absent from the corpus, an id in two lists, an explicit train list missing one
    (d / "ljspeech_test.txt").write_text("S-07\nS-99\n")
    with pytest.raises(CorpusError, match=r"ljspeech_test\.txt: 1 listed utterance\(s\) not in the corpus"):
        split_utterances(utts, 0, 0, seed=0, official="yes", lists_dir=d)
    (d / "ljspeech_test.txt").write_text("S-03\n")
    with pytest.raises(CorpusError, match="S-03 is also in the valid list"):
        split_utterances(utts, 0, 0, seed=0, official="yes", lists_dir=d)
    (d / "ljspeech_test.txt").write_text("S-04\n")
    (d / "ljspeech_train.txt").write_text("\n".join(f"S-{i:02d}" for i in range(5, 10)) + "\n")
    with pytest.raises(CorpusError, match="in no split list"):
        split_utterances(utts, 0, 0, seed=0, official="yes", lists_dir=d)
    (d / "ljspeech_test.txt").write_text("S-04\nS-04\n")
    with pytest.raises(CorpusError, match=r"ljspeech_test\.txt:2: duplicate utterance id S-04"):
        split_utterances(utts, 0, 0, seed=0, official="yes", lists_dir=d)


def test_mini_ljspeech_reads_and_splits_seeded():
    if not MINI.exists():
        pytest.skip(f"shared LJSpeech sample not found at {MINI}")
    utts = read_metadata(MINI, require_wavs=True)
    assert len(utts) == 32 and all(u.utt_id.startswith("LJ") for u in utts)
    s = split_utterances(utts, 4, 4, seed=0)  # auto: not the full LJSpeech, so seeded
    assert {k: len(v) for k, v in s.items()} == {"train": 24, "valid": 4, "test": 4}
