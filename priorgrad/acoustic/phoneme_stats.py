"""Per-token mel statistics of the phoneme prior (spec section 4).

mu_p[k], s_p[k] = mean and population std (ddof 0) of ln-mel bin k over every frame of the
full-length training utterances aligned to token p (pause and silence tokens included); every split
uses them. Rules, in order:
- missing (0 train frames): mu = 0, s = 1 (official; e.g. <pad> and '|', which never own a frame);
- rare (0 < frames < ``min_frames``; ours, 0 = off = official): the stress-stripped token's statistics
  when that token has >= min_frames frames, else the statistics of all training frames;
- clipping: s <- max(s, std_min), then s <- min(s, std_max) unless std_max = -1. Missing tokens keep s = 1.
  (The official s == 0 -> 1 replacement is not copied: it was meant for padding and also hits real
  bins that sit on the log floor.)

``phoneme_stats.npz`` holds mu, std (float32 [V, 80], final), count (int64 [V]) and mel_min, mel_max
(float32 [80], the training mels' per-bin range: the sampler's optional x0 clip, acoustic.infer.clip_x0);
``phoneme_stats.json`` beside it records the settings and which tokens backed off.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from priorgrad.acoustic.text import Vocabulary, strip_stress
from priorgrad.core.fileio import write_json_atomic


class StatsError(ValueError):
    """Statistics cannot be computed or loaded; the message names the file or utterance."""


def frame_token_ids(tokens: np.ndarray, mel2ph: np.ndarray) -> np.ndarray:
    """Vocabulary id of each frame's token (0 where mel2ph is 0, i.e. padding)."""
    return np.concatenate([[0], np.asarray(tokens, dtype=np.int64)])[np.asarray(mel2ph, dtype=np.int64)]


class StatsAccumulator:
    """Running per-token sums (float64) over frames."""

    def __init__(self, vocab_size: int, n_mels: int = 80):
        self.count = np.zeros(vocab_size, dtype=np.int64)
        self.sum = np.zeros((vocab_size, n_mels), dtype=np.float64)
        self.sumsq = np.zeros((vocab_size, n_mels), dtype=np.float64)
        self.mel_min = np.full(n_mels, np.inf)
        self.mel_max = np.full(n_mels, -np.inf)

    def add(self, mel: np.ndarray, frame_ids: np.ndarray, utt: str = "<utt>") -> None:
        mel = np.asarray(mel, dtype=np.float64)
        ids = np.asarray(frame_ids, dtype=np.int64)
        if mel.ndim != 2 or mel.shape[0] != self.sum.shape[1] or mel.shape[1] != len(ids):
            raise StatsError(f"utterance {utt}: mel {mel.shape} does not match {len(ids)} frame ids")
        if not np.all(np.isfinite(mel)):
            raise StatsError(f"utterance {utt}: mel contains NaN or infinite values")
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.count)):
            raise StatsError(f"utterance {utt}: token id outside the vocabulary of {len(self.count)}")
        np.add.at(self.count, ids, 1)
        np.add.at(self.sum, ids, mel.T)
        np.add.at(self.sumsq, ids, mel.T ** 2)
        if mel.shape[1]:
            self.mel_min = np.minimum(self.mel_min, mel.min(axis=1))
            self.mel_max = np.maximum(self.mel_max, mel.max(axis=1))

    def raw(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, population std) per token; rows of unseen tokens are 0."""
        c = np.maximum(self.count, 1)[:, None]
        mean = self.sum / c
        var = np.maximum(self.sumsq / c - mean ** 2, 0.0)
        return mean, np.sqrt(var)


def finalize(acc: StatsAccumulator, vocab: Vocabulary, std_min: float, std_max: float,
             min_frames: int) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """(mu, s, backoff) with the spec's missing / backoff / clipping rules (module doc);
    backoff maps each backed-off token to what it took its statistics from."""
    if len(vocab) != len(acc.count):
        raise StatsError(f"vocabulary of {len(vocab)} tokens but statistics of {len(acc.count)}")
    if acc.count.sum() == 0:
        raise StatsError("no training frames to compute the phoneme statistics from")
    mean, std = acc.raw()
    total = acc.count.sum()
    all_mean = acc.sum.sum(axis=0) / total
    all_std = np.sqrt(np.maximum(acc.sumsq.sum(axis=0) / total - all_mean ** 2, 0.0))
    mu, s = mean.copy(), std.copy()
    backoff: dict[str, str] = {}
    for i, tok in enumerate(vocab.tokens):
        n = int(acc.count[i])
        if n == 0 or n >= min_frames:
            continue
        bare = strip_stress(tok)
        if bare != tok and bare in vocab and acc.count[vocab.id(bare)] >= min_frames:
            j = vocab.id(bare)
            mu[i], s[i] = mean[j], std[j]
            backoff[tok] = bare
        else:
            mu[i], s[i] = all_mean, all_std
            backoff[tok] = "<all>"
    s = np.maximum(s, std_min)
    if std_max != -1:
        s = np.minimum(s, std_max)
    missing = acc.count == 0
    mu[missing], s[missing] = 0.0, 1.0
    return mu.astype(np.float32), s.astype(np.float32), backoff


def save_stats(path: str | Path, mu: np.ndarray, std: np.ndarray, count: np.ndarray, info: dict[str, Any],
               mel_range: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """phoneme_stats.npz (atomic) + phoneme_stats.json beside it (settings, backoff, counts)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.npz")
    extra = {} if mel_range is None else {"mel_min": np.asarray(mel_range[0], np.float32),
                                          "mel_max": np.asarray(mel_range[1], np.float32)}
    np.savez(tmp, mu=mu.astype(np.float32), std=std.astype(np.float32), count=count.astype(np.int64), **extra)
    os.replace(tmp, path)
    write_json_atomic(path.with_suffix(".json"), info)


def load_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu [V, 80], std [V, 80], count [V]) from phoneme_stats.npz, checked."""
    path = Path(path)
    if not path.is_file():
        raise StatsError(f"{path}: phoneme statistics not found (run `priorgrad acoustic prior-stats` first)")
    try:
        with np.load(path) as z:
            mu, std, count = z["mu"], z["std"], z["count"]
    except (OSError, KeyError, ValueError) as e:
        raise StatsError(f"{path}: not a phoneme statistics file ({e})") from e
    if mu.ndim != 2 or mu.shape != std.shape or count.shape != (mu.shape[0],):
        raise StatsError(f"{path}: inconsistent shapes mu {mu.shape}, std {std.shape}, count {count.shape}")
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise StatsError(f"{path}: statistics must be finite with std > 0")
    return mu, std, count


def load_mel_range(path: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(mel_min, mel_max) [80] of a statistics file, or None for a file written before they were stored."""
    path = Path(path)
    try:
        with np.load(path) as z:
            if "mel_min" not in z.files or "mel_max" not in z.files:
                return None
            lo, hi = z["mel_min"].astype(np.float32), z["mel_max"].astype(np.float32)
    except (OSError, ValueError) as e:
        raise StatsError(f"{path}: not a phoneme statistics file ({e})") from e
    if lo.ndim != 1 or lo.shape != hi.shape or not (np.all(np.isfinite(lo)) and np.all(lo <= hi)):
        raise StatsError(f"{path}: mel_min / mel_max must be finite 1-D arrays with mel_min <= mel_max")
    return lo, hi


def compute_phoneme_stats(items: Iterable[tuple[str, np.ndarray, np.ndarray, np.ndarray]], vocab: Vocabulary,
                          std_min: float, std_max: float, min_frames: int, n_mels: int = 80
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Statistics over (utt, mel [80, N], tokens, mel2ph) of the training split -> (mu, std, count, info);
    info["mel_range"] = the training mels' per-bin [min, max] (two lists of 80)."""
    acc = StatsAccumulator(len(vocab), n_mels)
    n_utts = 0
    for utt, mel, tokens, mel2ph in items:
        if (np.asarray(mel2ph) == 0).any():
            raise StatsError(f"utterance {utt}: mel2ph has padding frames (0): not a full-length utterance")
        acc.add(mel, frame_token_ids(tokens, mel2ph), utt)
        n_utts += 1
    if n_utts == 0:
        raise StatsError("no training utterances to compute the phoneme statistics from")
    mu, std, backoff = finalize(acc, vocab, std_min, std_max, min_frames)
    info = {"std_min": std_min, "std_max": std_max, "min_frames": min_frames, "split": "train",
            "n_utterances": n_utts, "n_frames": int(acc.count.sum()), "vocab_size": len(vocab),
            "backoff": backoff, "missing": [t for t, c in zip(vocab.tokens, acc.count) if c == 0],
            "count": {t: int(c) for t, c in zip(vocab.tokens, acc.count)},
            "mel_range": [acc.mel_min.astype(np.float32).tolist(), acc.mel_max.astype(np.float32).tolist()]}
    return mu, std, acc.count.copy(), info


def prior_stats_from_features(features_dir: str | Path, out_path: str | Path, std_min: float, std_max: float,
                              min_frames: int) -> dict[str, Any]:
    """`priorgrad acoustic prior-stats`: the features directory's train split -> phoneme_stats.npz/.json."""
    from priorgrad.acoustic.preprocess import iter_utterances, read_acoustic_manifest

    features_dir = Path(features_dir)
    vocab = Vocabulary.load(features_dir / "vocab.json")
    records = [r for r in read_acoustic_manifest(features_dir) if r["split"] == "train"]

    def items():
        for rec, arrays in iter_utterances(features_dir, records):
            yield rec["utt"], arrays["mel"], arrays["tokens"], arrays["mel2ph"]

    mu, std, count, info = compute_phoneme_stats(items(), vocab, std_min, std_max, min_frames)
    info["features"] = str(features_dir)
    mel_range = info.pop("mel_range")
    save_stats(out_path, mu, std, count, info, (np.asarray(mel_range[0]), np.asarray(mel_range[1])))
    return {k: v for k, v in info.items() if k != "count"}
