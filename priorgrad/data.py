"""Precomputed features: the manifest, random training crops and the fixed validation subset.

Needs only numpy and torch (features are .npy), so training runs on a bare GPU machine. Arrays are
memory-mapped, so a full LJSpeech feature set does not have to fit in memory.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

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


class CropSampler:
    """Random aligned (audio, mel) crops of ``crop_frames`` frames from the training split.

    The crops of step k depend only on (seed, k): a resumed run draws exactly the crops an
    uninterrupted one would, without saving sampler state.
    """

    def __init__(self, items: list[Item], crop_frames: int, hop_length: int, seed: int):
        self.hop = hop_length
        self.crop_frames = crop_frames
        self.seed = seed
        usable = [it for it in items if it.frames >= crop_frames]
        skipped = [it.utt for it in items if it.frames < crop_frames]
        if skipped:
            # Not silent: the official code skips clips shorter than the crop; we say which.
            log.warning("skipping %d training clip(s) shorter than the crop of %d frames: %s%s", len(skipped),
                        crop_frames, ", ".join(skipped[:10]), " ..." if len(skipped) > 10 else "")
        if not usable:
            raise FeatureError(f"no training utterance has the {crop_frames} frames a crop needs "
                               f"({len(items)} utterances, all too short); lower train.crop_frames")
        self.items = usable
        self.skipped = skipped

    def picks(self, step: int, batch_size: int) -> list[tuple[int, int]]:
        """(index into self.items, first frame) of each crop of step ``step``."""
        rng = np.random.default_rng([self.seed, step])
        out = []
        for _ in range(batch_size):
            i = int(rng.integers(len(self.items)))
            out.append((i, int(rng.integers(0, self.items[i].frames - self.crop_frames + 1))))
        return out

    def batch(self, step: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        audio = np.empty((batch_size, self.crop_frames * self.hop), dtype=np.float32)
        mel = None
        for b, (i, start) in enumerate(self.picks(step, batch_size)):
            item = self.items[i]
            a, m = item.audio(), item.mel()
            if mel is None:
                mel = np.empty((batch_size, m.shape[0], self.crop_frames), dtype=np.float32)
            mel[b] = m[:, start:start + self.crop_frames]
            audio[b] = a[start * self.hop:(start + self.crop_frames) * self.hop]
        return audio, mel


def validation_subset(items: list[Item], n: int, max_frames: int, hop_length: int) -> list[dict[str, Any]]:
    """The fixed validation subset: the first n utterances of the valid split, cropped from the start."""
    if not items:
        raise FeatureError("the feature set has no validation utterances (split 'valid')")
    out = []
    for item in items[:n]:
        audio, mel = load_item_arrays(item, hop_length)
        frames = mel.shape[1] if max_frames <= 0 else min(max_frames, mel.shape[1])
        out.append({"utt": item.utt, "audio": np.array(audio[:frames * hop_length]),
                    "mel": np.array(mel[:, :frames])})
    return out
