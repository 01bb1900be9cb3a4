"""The preprocessed feature set (``priorgrad preprocess``): its manifest and per-utterance arrays.

Family-neutral: the vocoder trains on it, and the acoustic model's features are built from it (the same
mels), so it sits in the core. Arrays are memory-mapped, so a full LJSpeech feature set does not have to
fit in memory.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MANIFEST = "manifest.jsonl"


class FeatureError(ValueError):
    """Missing or inconsistent preprocessed features; the message names the file."""


@dataclass
class Item:
    utt: str
    split: str
    audio_path: Path
    mel_path: Path
    samples: int
    frames: int
    text: str = ""

    def audio(self) -> np.ndarray:
        return np.load(self.audio_path, mmap_mode="r")

    def mel(self) -> np.ndarray:
        return np.load(self.mel_path, mmap_mode="r")


def read_manifest(features_dir: str | Path, split: str | None = None) -> list[Item]:
    features_dir = Path(features_dir)
    path = features_dir / MANIFEST
    if not path.exists():
        raise FeatureError(f"{path}: feature manifest not found (run `priorgrad preprocess` first)")
    items = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            item = Item(rec["utt"], rec["split"], features_dir / rec["audio"], features_dir / rec["mel"],
                        int(rec["samples"]), int(rec["frames"]), rec.get("text", ""))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise FeatureError(f"{path}:{i}: malformed manifest line ({e})") from e
        if split is None or item.split == split:
            items.append(item)
    return items


def load_item_arrays(item: Item, hop_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(audio, mel) of one utterance, checked against each other and the manifest."""
    for p in (item.audio_path, item.mel_path):
        if not p.exists():
            raise FeatureError(f"{p}: feature file missing for utterance {item.utt}")
    audio, mel = item.audio(), item.mel()
    if audio.ndim != 1 or mel.ndim != 2 or mel.shape[1] * hop_length != audio.shape[0]:
        raise FeatureError(f"{item.mel_path}: mel shape {mel.shape} does not match audio of {audio.shape} samples "
                           f"at hop {hop_length}")
    return audio, mel
