"""eSpeak phoneme events in the synthetic corpus and the durations taken from them (spec section 2).

The full default corpus (300 utterances) is made twice, with and without phoneme events (~5 s each):
every wav byte must be the same, every utterance's event phonemes must equal its text-to-phoneme
tokens, and the durations must sum to the frame count.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from priorgrad.acoustic import events as ev
from priorgrad.acoustic.text import Vocabulary, is_phoneme, text_to_tokens
from priorgrad.corpus import espeak, synth
from priorgrad.corpus.ljspeech import read_metadata

HOP = 256


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("acoustic-events")
    with_ev = root / "events"
    without = root / "plain"
    synth.make_corpus(with_ev, progress=False)
    synth.make_corpus(without, progress=False, phoneme_events=False)
    return with_ev, without


def test_corpus_format_version_bumped_and_events_recorded(corpora):
    with_ev, without = corpora
    summary = json.loads((with_ev / "corpus.json").read_text())
    assert synth.FORMAT_VERSION == 2 and summary["format_version"] == 2 and summary["phoneme_events"] is True
    assert (with_ev / synth.EVENTS_FILE).is_file() and not (without / synth.EVENTS_FILE).exists()
    events = ev.load_events(with_ev)
    assert len(events) == 300
    first = events["SYN0-0001"]
    assert first.native_rate == 22050 and first.raw_samples > 0 and first.offset >= 0
    # re-running with events on a corpus made without them completes it (the wavs are the same bytes)
    assert not synth.is_complete(without, synth.default_args(), phoneme_events=True)
    assert synth.is_complete(without, synth.default_args(), phoneme_events=False)


def test_audio_bytes_identical_with_events_on_all_300(corpora):
    with_ev, without = corpora
    a = sorted((with_ev / "wavs").glob("*.wav"))
    b = sorted((without / "wavs").glob("*.wav"))
    assert [p.name for p in a] == [p.name for p in b] and len(a) == 300
    same = sum(_sha(x) == _sha(y) for x, y in zip(a, b))
    assert same == 300


def test_event_phonemes_equal_text_to_phonemes_and_durations_sum_to_frames(corpora):
    with_ev, _ = corpora
    events = ev.load_events(with_ev)
    utts = read_metadata(with_ev)
    seqs, matched, summed = [], 0, 0
    for u in utts:
        toks = text_to_tokens(u.text, u.utt_id)
        seqs.append(toks)
        ue = events[u.utt_id]
        matched += [t for t in toks if is_phoneme(t)] == [n for _, n in ue.events if not ev.is_pause(n)]
        n_frames = sf.info(u.wav_path).frames // HOP   # = the mel frame count (hop-trimmed)
        dur = ev.durations_from_events(toks, ue, n_frames, HOP)
        assert dur.dtype == np.int64 and (dur >= 0).all() and len(dur) == len(toks)
        assert dur[[i for i, t in enumerate(toks) if t == "|"]].sum() == 0 and dur[-2] == 0  # '|', last clause token
        summed += int(dur.sum()) == n_frames
    assert (matched, summed) == (300, 300)
    # the default corpus's vocabulary and sequence lengths (spec section 1, measured on eSpeak NG 1.52.0)
    vocab = Vocabulary.build(seqs)
    lengths = np.array([len(s) for s in seqs])
    assert len(vocab) == 104
    assert round(float(lengths.mean()), 2) == 69.39 and int(lengths.max()) == 144


def test_event_boundaries_follow_the_spec_rules():
    toks = ["<UNK>", "h", "'oU", "<,>", "w", "|", "d", "_", "n", "<.>", "<EOS>"]
    # offset 100: the clip starts at raw sample 100; hop 256
    raw = [(356, "h"), (868, "'oU"), (1636, "_:"), (2148, "_"), (2660, "w"), (3172, "d"), (3684, "_:"),
           (4196, "n"), (4708, "_:"), (5732, "_")]
    ue = ev.UttEvents("T1", tuple(raw), offset=100, raw_samples=6000, native_rate=22050)
    dur = ev.durations_from_events(toks, ue, n_frames=20, hop=HOP)
    # boundaries (frames): h 1, 'oU 3, pause run 6..10 -> <,>, w 10, d 12, pause 14 -> '_', n 16, final pause 18 -> EOS
    assert dur.tolist() == [1, 2, 3, 4, 2, 0, 2, 2, 2, 0, 2]
    assert dur.sum() == 20
    # a pause with no '_' / clause token between its phonemes stays with the preceding phoneme
    toks2 = ["<UNK>", "h", "'oU", "<.>", "<EOS>"]
    ue2 = ev.UttEvents("T2", ((356, "h"), (868, "_:"), (1380, "'oU")), 100, 3000, 22050)
    assert ev.durations_from_events(toks2, ue2, 10, HOP).tolist() == [1, 4, 5, 0, 0]
    # at another corpus rate the event samples are rescaled
    half = ev.durations_from_events(toks, ue, n_frames=10, hop=HOP, sample_rate=11025)
    assert half.sum() == 10


def test_events_that_do_not_match_the_transcript_name_the_utterance():
    toks = ["<UNK>", "h", "'oU", "<.>", "<EOS>"]
    ue = ev.UttEvents("SYN0-0042", ((0, "h"), (600, "'aI")), 0, 3000, 22050)
    with pytest.raises(ev.DurationError, match=r"utterance SYN0-0042: eSpeak events do not match"):
        ev.durations_from_events(toks, ue, 10, HOP)
    ue_short = ev.UttEvents("SYN0-0043", ((0, "h"), (600, "'oU")), 0, 1000, 22050)
    with pytest.raises(ev.DurationError, match=r"utterance SYN0-0043: audio of 10 frames is longer"):
        ev.durations_from_events(toks, ue_short, 10, HOP)


def test_corpus_without_events_asked_for_espeak_durations_names_the_file(tmp_path):
    from priorgrad.acoustic.preprocess import resolve_durations

    (tmp_path / "metadata.csv").write_text("A|text|text\n")
    with pytest.raises(ev.DurationError, match=str(tmp_path / "phoneme_events.jsonl") + ": not found"):
        resolve_durations("espeak", tmp_path)
    assert resolve_durations("auto", tmp_path) == "mas"


def test_events_are_per_utterance_sample_indices():
    wav, events = espeak.synthesize_with_events("Hello, world!")
    names = [n for _, n in events]
    assert names[:4] == ["h", "@", "l", "'oU"] and names[-1] == "_"
    samples = [s for s, _ in events]
    assert samples == sorted(samples) and 0 <= samples[0] < 1000 and samples[-1] <= len(wav)
