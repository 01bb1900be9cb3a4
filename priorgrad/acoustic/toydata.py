"""A toy "language" written in the acoustic features directory format (tests and benchmarks).

Every token has its own mean mel pattern; within an utterance the mel also follows a smooth f0 curve
(mel = mu_token + a * f0_z + small noise), so the per-token mean alone (the mu-alone floor) leaves a
predictable part that a trained model given the ground-truth f0 and energy (condition E1) can recover.
The phoneme statistics are the train frames' per-token mean and population std, floored at 0.1
(the data side's full rules: backoff, clipping, live in priorgrad/acoustic/phoneme_stats.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from priorgrad.core.fileio import write_json_atomic, write_text_atomic

N_MELS = 80
PHONES = [chr(ord("a") + i) for i in range(16)]
UNVOICED = set(PHONES[:3])


def make_toy_features(out: str | Path, n_train: int = 48, n_valid: int = 4, n_test: int = 4, seed: int = 0,
                      min_tokens: int = 6, max_tokens: int = 14) -> Path:
    out = Path(out)
    rng = np.random.default_rng(seed)
    vocab = ["<pad>", "<EOS>", "<UNK>"] + PHONES
    k = np.arange(N_MELS)
    patterns = np.zeros((len(vocab), N_MELS), np.float32)
    for i in range(2, len(vocab)):  # smooth random spectra, roughly the range of speech log-mels
        c = rng.normal(size=4)
        patterns[i] = -5.0 + 1.5 * c[0] * np.cos(np.pi * k / 80 * (1 + abs(c[1]) * 3)) + c[2] * (k / 80) - 1.0 * abs(c[3])
    patterns[1] = patterns[2] = -9.0  # silence-like
    slope = (1.2 * np.cos(np.pi * k / 160)).astype(np.float32)  # how strongly each bin follows f0
    (out / "utts").mkdir(parents=True, exist_ok=True)
    records, f0s = [], []
    splits = ["train"] * n_train + ["valid"] * n_valid + ["test"] * n_test
    raw = []
    for i, split in enumerate(splits):
        n_tok = int(rng.integers(min_tokens, max_tokens + 1))
        phones = rng.integers(3, len(vocab), size=n_tok)
        tokens = np.concatenate([[2], phones, [1]]).astype(np.int64)
        durations = np.concatenate([[rng.integers(2, 5)], rng.integers(3, 11, size=n_tok),
                                    [rng.integers(2, 5)]]).astype(np.int64)
        n = int(durations.sum())
        mel2ph = np.repeat(np.arange(1, len(tokens) + 1), durations).astype(np.int64)
        t = np.arange(n) / 86.0
        f0_hz = 140 + 35 * np.sin(2 * np.pi * rng.uniform(0.6, 2.0) * t + rng.uniform(0, 6.3)) + 8 * rng.normal()
        ids = tokens[mel2ph - 1]
        uv = np.array([vocab[j] in UNVOICED or j < 3 for j in ids], np.float32)
        raw.append((split, tokens, durations, mel2ph, f0_hz, uv))
        if split == "train":
            f0s.append(f0_hz[uv == 0])
    voiced = np.concatenate(f0s)
    f0_mean, f0_std = float(voiced.mean()), float(voiced.std())
    train_frames: dict[int, list[np.ndarray]] = {}
    for i, (split, tokens, durations, mel2ph, f0_hz, uv) in enumerate(raw):
        utt = f"toy{i:04d}"
        f0_z = ((f0_hz - f0_mean) / f0_std).astype(np.float32)
        ids = tokens[mel2ph - 1]
        mel = (patterns[ids].T + slope[:, None] * f0_z[None, :]
               + 0.05 * rng.normal(size=(N_MELS, len(ids)))).astype(np.float32)
        energy = np.linalg.norm(np.exp(mel), axis=0).astype(np.float32)
        np.savez(out / "utts" / f"{utt}.npz", tokens=tokens, durations=durations, mel2ph=mel2ph, mel=mel,
                 f0=f0_z, uv=uv, energy=energy)
        records.append({"utt": utt, "split": split, "n_frames": int(len(ids)), "n_tokens": int(len(tokens)),
                        "text": " ".join(vocab[j] for j in tokens[1:-1]), "durations_from": "espeak"})
        if split == "train":
            for j in np.unique(ids):
                train_frames.setdefault(int(j), []).append(mel[:, ids == j])
    write_text_atomic(out / "manifest.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    write_json_atomic(out / "vocab.json", {"tokens": vocab})
    write_json_atomic(out / "f0_stats.json", {"mean": f0_mean, "std": f0_std, "n_frames": int(len(voiced))})
    mu = np.zeros((len(vocab), N_MELS), np.float32)
    std = np.ones((len(vocab), N_MELS), np.float32)
    count = np.zeros(len(vocab), np.int64)
    for j, frames in train_frames.items():
        f = np.concatenate(frames, axis=1)
        mu[j], std[j], count[j] = f.mean(axis=1), np.maximum(f.std(axis=1), 0.1), f.shape[1]
    every = np.concatenate([f for frames in train_frames.values() for f in frames], axis=1)
    np.savez(out / "phoneme_stats.npz", mu=mu, std=std, count=count,  # + the training mels' per-bin range
             mel_min=every.min(axis=1).astype(np.float32), mel_max=every.max(axis=1).astype(np.float32))
    return out
