"""Quality checks of a duration alignment that need no reference boundaries (spec section 2, MAS (b), (c)).

(b) held-out per-frame NLL: per-token mean and population std of the ln-mel (floored at ``std_min``) from
    the train utterances' frames under the alignment, then the mean Gaussian negative log-likelihood per
    frame and bin of the held-out (non-train) frames under their own token's N(mu, s^2). A better
    alignment groups frames of one sound under one token, so its statistics fit held-out frames better.
    The floor is a uniform split within each word (the word spans of the same alignment, '|' tokens
    separating words, each word's frames shared evenly by its tokens): it keeps the word boundaries and
    discards everything the alignment says inside a word.
(c) silent frames: the share of all-zero frames (every mel bin at the front-end's silence value, i.e. a
    window of digital silence) that the alignment gives to a pause, clause, <UNK> or <EOS> token. The
    spec's target is >= 95% (UNVERIFIED). eSpeak synthesises the closure of a stop (p t k, tS, ...) as
    digital silence too, inside words: on the default corpus its own event durations put only 71% of the
    all-zero frames on those tokens (the closures go to the token before the stop, spec section 2 "Bias").
    So the share is also reported with closures allowed: a zero frame on a stop, or on the token right
    before one (word boundaries skipped), counts as placed.

Tokens unseen in the train split back off to the statistics of all train frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

LN_2PI = math.log(2.0 * math.pi)
# eSpeak NG (en-us) stops and affricates, whose closure eSpeak renders as digital silence
STOPS = frozenset({"p", "t", "k", "b", "d", "g", "tS", "dZ", "t2", "d2", "t#", "?"})


@dataclass
class AlignedUtterance:
    utt: str
    split: str
    tokens: np.ndarray   # int64 [n_tokens]
    mel: np.ndarray      # float32 [80, n_frames]


def uniform_within_words(durations: np.ndarray, tokens: np.ndarray, word_id: int) -> np.ndarray:
    """Each word's frames (the tokens between '|' separators) split as evenly as possible over its tokens;
    '|' keeps 0 frames. The word spans, hence the sum, are those of ``durations``."""
    durations, tokens = np.asarray(durations, np.int64), np.asarray(tokens)
    out = np.zeros_like(durations)
    bounds = [-1] + [i for i, t in enumerate(tokens) if t == word_id] + [len(tokens)]
    for a, b in zip(bounds[:-1], bounds[1:]):
        idx = np.arange(a + 1, b)
        if len(idx) == 0:
            continue
        total = int(durations[idx].sum())
        edges = np.floor(np.arange(len(idx) + 1) * total / len(idx)).astype(np.int64)
        out[idx] = np.diff(edges)
    if out.sum() != durations.sum():
        raise ValueError("uniform_within_words: frames lost (a '|' token holds frames?)")
    return out


def _frame_tokens(u: AlignedUtterance, durations: np.ndarray) -> np.ndarray:
    d = np.asarray(durations, np.int64)
    if d.shape != u.tokens.shape or int(d.sum()) != u.mel.shape[1]:
        raise ValueError(f"utterance {u.utt}: durations of {d.shape} tokens summing to {int(d.sum())} do not fit "
                         f"{len(u.tokens)} tokens and {u.mel.shape[1]} frames")
    return np.repeat(u.tokens, d)


def heldout_nll(utts: Sequence[AlignedUtterance], durations: Mapping[str, np.ndarray], std_min: float = 0.1
                ) -> float:
    """Mean per-frame, per-bin Gaussian NLL of the non-train frames under train per-token statistics."""
    sums: dict[int, np.ndarray] = {}
    sq: dict[int, np.ndarray] = {}
    count: dict[int, int] = {}
    all_frames = []
    for u in utts:
        if u.split != "train":
            continue
        ft = _frame_tokens(u, durations[u.utt])
        all_frames.append(u.mel)
        for tok in np.unique(ft):
            f = u.mel[:, ft == tok].astype(np.float64)
            sums[int(tok)] = sums.get(int(tok), 0.0) + f.sum(1)
            sq[int(tok)] = sq.get(int(tok), 0.0) + (f ** 2).sum(1)
            count[int(tok)] = count.get(int(tok), 0) + f.shape[1]
    if not all_frames:
        raise ValueError("heldout_nll: no train utterances")
    every = np.concatenate(all_frames, axis=1).astype(np.float64)
    g_mu, g_s = every.mean(1), np.maximum(every.std(1), std_min)
    stats = {}
    for tok, n in count.items():
        mu = sums[tok] / n
        stats[tok] = (mu, np.maximum(np.sqrt(np.maximum(sq[tok] / n - mu ** 2, 0.0)), std_min))
    total, frames = 0.0, 0
    for u in utts:
        if u.split == "train":
            continue
        ft = _frame_tokens(u, durations[u.utt])
        mu = np.stack([stats.get(int(t), (g_mu, g_s))[0] for t in ft], axis=1)
        s = np.stack([stats.get(int(t), (g_mu, g_s))[1] for t in ft], axis=1)
        total += float((0.5 * ((u.mel - mu) / s) ** 2 + np.log(s) + 0.5 * LN_2PI).sum())
        frames += u.mel.shape[1]
    if frames == 0:
        raise ValueError("heldout_nll: no held-out (non-train) utterances")
    return total / (frames * utts[0].mel.shape[0])


def silent_frame_share(utts: Sequence[AlignedUtterance], durations: Mapping[str, np.ndarray],
                       silent_ids: set[int], silence: float, tol: float = 1e-3, stop_ids: set[int] = frozenset(),
                       word_id: int = -1) -> tuple[int, float, float]:
    """(number of all-zero frames, share of them on a token in ``silent_ids``, share on a silent token, a stop
    or the token before a stop); the shares are nan without any zero frame."""
    n, on_silent, on_closure = 0, 0, 0
    for u in utts:
        d = np.asarray(durations[u.utt], np.int64)
        _frame_tokens(u, d)
        pos = np.repeat(np.arange(len(u.tokens)), d)          # token index of each frame
        nxt = np.full(len(u.tokens), -1, np.int64)            # the next token that is not '|'
        following = -1
        for i in range(len(u.tokens) - 1, -1, -1):
            nxt[i] = following
            if u.tokens[i] != word_id:
                following = int(u.tokens[i])
        zero = np.where(u.mel.max(axis=0) <= silence + tol)[0]
        tok = u.tokens[pos[zero]]
        silent = np.isin(tok, list(silent_ids))
        closure = np.isin(tok, list(stop_ids)) | np.isin(nxt[pos[zero]], list(stop_ids))
        n += len(zero)
        on_silent += int(silent.sum())
        on_closure += int((silent | closure).sum())
    nan = float("nan")
    return n, (on_silent / n if n else nan), (on_closure / n if n else nan)


def alignment_report(utts: Sequence[AlignedUtterance], alignments: Mapping[str, Mapping[str, np.ndarray]],
                     vocab: Sequence[str], silence: float, std_min: float = 0.1) -> dict[str, dict[str, float]]:
    """(b) and (c) for each named alignment, plus (b) of its uniform-within-words floor."""
    from priorgrad.acoustic.text import SILENT_TOKENS, WORD

    ids = {t: i for i, t in enumerate(vocab)}
    silent_ids = {ids[t] for t in SILENT_TOKENS if t in ids}
    stop_ids = {i for t, i in ids.items() if t.lstrip("',") in STOPS}
    word_id = ids.get(WORD, -1)
    out: dict[str, dict[str, float]] = {}
    for name, durs in alignments.items():
        floor = {u.utt: uniform_within_words(durs[u.utt], u.tokens, word_id) for u in utts}
        n_zero, share, with_closures = silent_frame_share(utts, durs, silent_ids, silence, stop_ids=stop_ids,
                                                          word_id=word_id)
        out[name] = {"heldout_nll": heldout_nll(utts, durs, std_min),
                     "uniform_within_words_nll": heldout_nll(utts, floor, std_min),
                     "zero_frames": n_zero, "zero_frames_on_silent_tokens": share,
                     "zero_frames_on_silent_or_stop_closure": with_closures}
    return out


def report_features_dirs(dirs: Mapping[str, str], silence: float, std_min: float = 0.1
                         ) -> dict[str, dict[str, float]]:
    """alignment_report of acoustic features directories of the same corpus that differ in their durations
    (e.g. {"espeak": ..., "mas": ...}); the tokens, mels and splits are taken from the first one."""
    from priorgrad.acoustic.preprocess import iter_utterances, read_acoustic_manifest
    from priorgrad.acoustic.text import Vocabulary

    names = list(dirs)
    base = dirs[names[0]]
    vocab = Vocabulary.load(f"{base}/vocab.json").tokens
    utts, alignments = [], {}
    for name in names:
        if Vocabulary.load(f"{dirs[name]}/vocab.json").tokens != vocab:
            raise ValueError(f"{dirs[name]}: vocabulary differs from {base}'s")
        durs = {}
        for rec, a in iter_utterances(dirs[name], read_acoustic_manifest(dirs[name])):
            durs[rec["utt"]] = a["durations"]
            if name == names[0]:
                utts.append(AlignedUtterance(rec["utt"], rec["split"], a["tokens"].astype(np.int64),
                                             a["mel"].astype(np.float32)))
        alignments[name] = durs
    common = set.intersection(*(set(d) for d in alignments.values()))
    utts = [u for u in utts if u.utt in common]
    return alignment_report(utts, alignments, vocab, silence, std_min)


if __name__ == "__main__":  # python -m priorgrad.acoustic.alignment_quality NAME=FEATURES_DIR ...
    import json
    import sys

    from priorgrad.core.audio import PRESETS

    pairs = dict(a.split("=", 1) for a in sys.argv[1:])
    print(json.dumps(report_features_dirs(pairs, PRESETS["hifigan"].silence), indent=2))
