"""Token durations from eSpeak NG's phoneme events (spec section 2, the default for the synthetic corpus).

The corpus stage (:mod:`priorgrad.corpus.synth`) stores, per utterance, eSpeak's type-7 events
``[sample, name]`` (sample = exact index of the phoneme's first output sample in the raw synthesis),
the raw length and the trim offset. Tokens always come from text-to-phonemes; events only give the
boundaries. With pause events (names starting with '_') dropped, event phonemes equal the token
sequence's phonemes one for one (checked here for every utterance; a test checks the default corpus).

Boundary frame of an event = clip(floor((sample - offset) * rate / native_rate / hop), 0, N), like the
official int(t * sr / hop). Durations:
- a phoneme: from its boundary to the next event's (pause or phoneme), or to N;
- a run of pause events between two phonemes: to the '_' or clause token between those phonemes; when
  the tokens have none there (eSpeak paused without a text mark) the run stays with the preceding phoneme;
- '|' and the last clause token: 0; '<UNK>': the frames before the first event plus a leading pause
  run; '<EOS>': the final pause run.
The durations sum to N exactly. eSpeak's own bias (stop closures and liquid/nasal-to-vowel onsets are
reported with the preceding phoneme) is kept: consistent, though not phonetic truth.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from priorgrad.acoustic.text import CLAUSE_TOKENS, EOS, PAUSE, UNK, is_phoneme
from priorgrad.corpus.synth import CORPUS_JSON, EVENTS_FILE


class DurationError(ValueError):
    """Durations cannot be derived; the message names the file or utterance."""


@dataclass(frozen=True)
class UttEvents:
    utt: str
    events: tuple[tuple[int, str], ...]   # (raw native-rate sample, eSpeak phoneme name)
    offset: int                            # raw sample that became the clip's first sample
    raw_samples: int                       # length of the raw synthesis
    native_rate: int                       # eSpeak's rate (22050 Hz)


def has_events(corpus_dir: str | Path) -> bool:
    return (Path(corpus_dir) / EVENTS_FILE).is_file()


def load_events(corpus_dir: str | Path) -> dict[str, UttEvents]:
    """The phoneme events of a synthetic corpus; a corpus without them is an error naming the file."""
    path = Path(corpus_dir) / EVENTS_FILE
    if not path.is_file():
        raise DurationError(f"{path}: not found: the corpus {corpus_dir} has no eSpeak phoneme events "
                            f"(only corpora made by `priorgrad corpus make` have them); use "
                            f"acoustic.features.durations: mas (or auto) for this corpus")
    out: dict[str, UttEvents] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            ev = tuple((int(s), str(n)) for s, n in rec["events"])
            item = UttEvents(str(rec["id"]), ev, int(rec["offset"]), int(rec["raw_samples"]), int(rec["native_rate"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise DurationError(f"{path}:{lineno}: malformed events line ({e})") from e
        if any(b[0] < a[0] for a, b in zip(ev, ev[1:])):
            raise DurationError(f"{path}:{lineno}: events of utterance {item.utt} are not in sample order")
        out[item.utt] = item
    return out


def corpus_sample_rate(corpus_dir: str | Path) -> int | None:
    """The sample rate recorded in a synthetic corpus's corpus.json (None when absent)."""
    path = Path(corpus_dir) / CORPUS_JSON
    if not path.is_file():
        return None
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["args"]["sample_rate"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise DurationError(f"{path}: unreadable corpus summary ({e})") from e


def is_pause(name: str) -> bool:
    return name.startswith("_")


def boundary_frames(samples: np.ndarray, offset: int, n_frames: int, hop: int, ratio: float = 1.0) -> np.ndarray:
    """clip(floor((sample - offset) * ratio / hop), 0, N) per event."""
    pos = (np.asarray(samples, dtype=np.float64) - offset) * ratio
    return np.clip(np.floor(pos / hop), 0, n_frames).astype(np.int64)


def durations_from_events(tokens: Sequence[str], ue: UttEvents, n_frames: int, hop: int,
                          sample_rate: int | None = None) -> np.ndarray:
    """Frames per token (int64, sums to ``n_frames``) from one utterance's eSpeak events (module doc)."""
    utt = ue.utt
    rate = ue.native_rate if sample_rate is None else int(sample_rate)
    ratio = rate / ue.native_rate
    # The clip must fit in the raw synthesis: otherwise the audio is not the one these events describe.
    if n_frames * hop > (ue.raw_samples - ue.offset) * ratio + hop:
        raise DurationError(f"utterance {utt}: audio of {n_frames} frames is longer than the eSpeak synthesis the "
                            f"events describe ({ue.raw_samples - ue.offset} samples after the trim offset)")
    ph_pos = [i for i, t in enumerate(tokens) if is_phoneme(t)]
    ph_names = [tokens[i] for i in ph_pos]
    ev_names = [n for _, n in ue.events if not is_pause(n)]
    if ph_names != ev_names:
        k = next((j for j, (a, b) in enumerate(zip(ph_names, ev_names)) if a != b), min(len(ph_names), len(ev_names)))
        raise DurationError(f"utterance {utt}: eSpeak events do not match the transcript's phonemes "
                            f"({len(ev_names)} event phonemes vs {len(ph_names)} tokens; first difference at "
                            f"phoneme {k}: {ev_names[k:k + 3]} vs {ph_names[k:k + 3]})")
    if not ph_pos:
        raise DurationError(f"utterance {utt}: no phonemes to align")
    bounds = boundary_frames(np.array([s for s, _ in ue.events]), ue.offset, n_frames, hop, ratio)
    ends = np.append(bounds[1:], n_frames)
    dur = np.zeros(len(tokens), dtype=np.int64)
    unk, eos = tokens.index(UNK), len(tokens) - 1 - tokens[::-1].index(EOS)
    dur[unk] += bounds[0] if len(bounds) else n_frames  # frames before the first boundary

    silent_slots = {PAUSE, *CLAUSE_TOKENS}
    k = -1  # index of the last phoneme event seen
    for e, (_, name) in enumerate(ue.events):
        span = int(ends[e] - bounds[e])
        if not is_pause(name):
            k += 1
            dur[ph_pos[k]] += span
        elif k < 0:
            dur[unk] += span                   # leading pause run
        elif k == len(ph_pos) - 1:
            dur[eos] += span                   # final pause run
        else:
            between = [i for i in range(ph_pos[k] + 1, ph_pos[k + 1]) if tokens[i] in silent_slots]
            dur[between[0] if between else ph_pos[k]] += span
    if int(dur.sum()) != n_frames:  # cannot happen (the spans tile [first boundary, N)): a guard
        raise DurationError(f"utterance {utt}: durations sum to {int(dur.sum())}, not {n_frames} frames")
    return dur
