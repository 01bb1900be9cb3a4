"""The acoustic features directory (see the contract in the data side's docs) -> padded torch batches.

Layout read here: manifest.jsonl, vocab.json, f0_stats.json and utts/<utt>.npz (tokens, durations,
mel2ph, mel, f0, uv, energy). Every array is checked once when loaded; a problem names the file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from priorgrad.acoustic.model import N_MELS, apply_prior_mode

ARRAYS = ("tokens", "durations", "mel2ph", "mel", "f0", "uv", "energy")


class AcousticFeatureError(ValueError):
    """Missing or inconsistent acoustic features; the message names the file."""


@dataclass
class Utterance:
    utt: str
    split: str
    text: str
    tokens: np.ndarray      # int64 (n_tokens,)
    durations: np.ndarray   # int64 (n_tokens,)
    mel2ph: np.ndarray      # int64 (n_frames,), 1-based token index
    mel: np.ndarray         # float32 (80, n_frames)
    f0: np.ndarray          # float32 (n_frames,), z-scored
    uv: np.ndarray          # float32 (n_frames,), 1 = unvoiced
    energy: np.ndarray      # float32 (n_frames,)

    @property
    def n_frames(self) -> int:
        return int(self.mel.shape[1])

    def frame_ids(self) -> np.ndarray:
        """Token id of every frame (what the prior's frame_stats takes)."""
        return self.tokens[self.mel2ph - 1]


def _read_json(path: Path) -> Any:
    if not path.exists():
        raise AcousticFeatureError(f"{path}: not found (run `priorgrad acoustic preprocess` first)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise AcousticFeatureError(f"{path}: not valid JSON ({e})") from e


def load_utterance(path: Path, rec: dict[str, Any]) -> Utterance:
    if not path.exists():
        raise AcousticFeatureError(f"{path}: utterance features not found")
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in ARRAYS}
    except KeyError as e:
        raise AcousticFeatureError(f"{path}: missing array {e}") from e
    except Exception as e:  # a truncated or foreign file
        raise AcousticFeatureError(f"{path}: unreadable ({e})") from e
    n_tok, n = len(arrays["tokens"]), arrays["mel"].shape[-1]
    if arrays["mel"].ndim != 2 or arrays["mel"].shape[0] != N_MELS:
        raise AcousticFeatureError(f"{path}: mel must be ({N_MELS}, frames), got {arrays['mel'].shape}")
    if n != int(rec["n_frames"]) or n_tok != int(rec["n_tokens"]):
        raise AcousticFeatureError(f"{path}: {n} frames / {n_tok} tokens, manifest says "
                                   f"{rec['n_frames']} / {rec['n_tokens']}")
    for k in ("mel2ph", "f0", "uv", "energy"):
        if arrays[k].shape != (n,):
            raise AcousticFeatureError(f"{path}: {k} has shape {arrays[k].shape}, expected ({n},)")
    if arrays["durations"].shape != (n_tok,) or int(arrays["durations"].sum()) != n:
        raise AcousticFeatureError(f"{path}: durations sum to {int(arrays['durations'].sum())}, not {n} frames")
    m2p = arrays["mel2ph"].astype(np.int64)
    if n and (m2p.min() < 1 or m2p.max() > n_tok or np.any(np.diff(m2p) < 0)):
        raise AcousticFeatureError(f"{path}: mel2ph must be non-decreasing in 1..{n_tok}")
    for k in ("mel", "f0", "uv", "energy"):
        if not np.all(np.isfinite(arrays[k])):
            raise AcousticFeatureError(f"{path}: {k} contains NaN or infinite values")
    return Utterance(rec["utt"], rec["split"], rec.get("text", ""), arrays["tokens"].astype(np.int64),
                     arrays["durations"].astype(np.int64), m2p, arrays["mel"].astype(np.float32),
                     arrays["f0"].astype(np.float32), arrays["uv"].astype(np.float32),
                     arrays["energy"].astype(np.float32))


class FeatureSet:
    """One features directory: vocabulary, f0 statistics and utterances by split (loaded on first use)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        manifest = self.root / "manifest.jsonl"
        if not manifest.exists():
            raise AcousticFeatureError(f"{manifest}: not found (run `priorgrad acoustic preprocess` first)")
        self.records: list[dict[str, Any]] = []
        for i, line in enumerate(manifest.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                for key in ("utt", "split", "n_frames", "n_tokens"):
                    rec[key]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise AcousticFeatureError(f"{manifest}:{i}: malformed manifest line ({e})") from e
            self.records.append(rec)
        vocab = _read_json(self.root / "vocab.json")
        if not isinstance(vocab, dict) or not isinstance(vocab.get("tokens"), list):
            raise AcousticFeatureError(f"{self.root / 'vocab.json'}: expected {{\"tokens\": [...]}}")
        self.vocab: list[str] = vocab["tokens"]
        stats = _read_json(self.root / "f0_stats.json")
        for key in ("mean", "std"):
            if not isinstance(stats.get(key), (int, float)):
                raise AcousticFeatureError(f"{self.root / 'f0_stats.json'}: missing numeric key {key!r}")
        self.f0_mean, self.f0_std = float(stats["mean"]), float(stats["std"])
        self._cache: dict[str, Utterance] = {}

    def utterances(self, split: str) -> list[Utterance]:
        out = []
        for rec in self.records:
            if rec["split"] != split:
                continue
            if rec["utt"] not in self._cache:
                self._cache[rec["utt"]] = load_utterance(self.root / "utts" / f"{rec['utt']}.npz", rec)
            out.append(self._cache[rec["utt"]])
        return out


def prior_stats_batch(utts: Sequence[Utterance], frame_ids: Sequence[np.ndarray], prior: Any, mode: str,
                      n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(mu, s) (B, 80, N) from a prior's frame_stats; padding frames mu = 0, s = 1."""
    mu = np.zeros((len(utts), N_MELS, n_frames), np.float32)
    s = np.ones((len(utts), N_MELS, n_frames), np.float32)
    for i, ids in enumerate(frame_ids):
        m, sd = apply_prior_mode(*prior.frame_stats(ids), mode)
        mu[i, :, :len(ids)], s[i, :, :len(ids)] = m, sd
    return mu, s


def collate(utts: Sequence[Utterance], prior: Any | None = None, mode: str = "mean_std") -> dict[str, torch.Tensor]:
    """Pad a list of utterances into a batch; with a prior, also its frame-level (mu, s)."""
    b = len(utts)
    t_max = max(len(u.tokens) for u in utts)
    n_max = max(u.n_frames for u in utts)
    tokens = np.zeros((b, t_max), np.int64)
    durations = np.zeros((b, t_max), np.int64)
    mel2ph = np.zeros((b, n_max), np.int64)
    mel = np.zeros((b, N_MELS, n_max), np.float32)
    f0, uv, energy = (np.zeros((b, n_max), np.float32) for _ in range(3))
    for i, u in enumerate(utts):
        n, t = u.n_frames, len(u.tokens)
        tokens[i, :t], durations[i, :t], mel2ph[i, :n] = u.tokens, u.durations, u.mel2ph
        mel[i, :, :n], f0[i, :n], uv[i, :n], energy[i, :n] = u.mel, u.f0, u.uv, u.energy
    batch = {"tokens": tokens, "durations": durations, "mel2ph": mel2ph, "mel": mel, "f0": f0, "uv": uv,
             "energy": energy, "lengths": np.array([u.n_frames for u in utts], np.int64)}
    if prior is not None:
        batch["mu"], batch["s"] = prior_stats_batch(utts, [u.frame_ids() for u in utts], prior, mode, n_max)
    return {k: torch.from_numpy(v) for k, v in batch.items()}
