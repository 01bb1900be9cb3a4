"""Precomputed features: the manifest, random training crops and the fixed validation subset.

Needs only numpy and torch (features are .npy; crops' mels come from ``priorgrad.core.audio``), so
training runs on a bare GPU machine. Arrays are memory-mapped, so a full LJSpeech feature set does
not have to fit in memory.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from priorgrad.core.features import MANIFEST, FeatureError, Item, load_item_arrays, read_manifest  # noqa: F401
from priorgrad.core.audio import MelPreset, get_preset, log_mel_torch

log = logging.getLogger(__name__)

CROP_MODES = ("official", "frames")


class CropSampler:
    """Training crops of ``crop_frames`` frames: (audio, mel) batches of the training split.

    ``mode`` (``train.crop``):

    - ``official`` (PriorGrad-vocoder's ``dataset.py`` and the spec): every epoch is a seeded
      permutation of the usable utterances cut into batches of ``batch_size``, the incomplete last
      batch dropped (``DataLoader(shuffle=True, drop_last=True)``), so an epoch visits each utterance
      at most once; each crop starts at a uniformly random *sample* offset (0 .. samples - crop,
      inclusive), and its mel is recomputed on the cropped audio by the front-end
      (``log_mel_torch``, with the preset's own reflect padding at the crop's edges), so the energy
      prior's sigma also follows that mel.
    - ``frames`` (lmnt-com/diffwave's ``Collator``): utterances drawn with replacement, the crop
      starts on a frame boundary and its mel is sliced from the precomputed full-utterance mel.
      No STFT per step (a few ms per batch at most on CPU, ``benchmarks/results/crops_cpu.json``:
      small against a training step), but the edge frames of a sliced mel see audio outside the crop
      (about 2 frames at each edge differ from the crop's own mel: 4 of 62) and sample offsets are
      multiples of the hop.

    Either way the batch of step k depends only on (seed, k): a resumed run draws exactly the crops
    an uninterrupted one would, without saving sampler state. Clips shorter than the crop are
    skipped (with a warning naming them), as the official collators do.
    """

    def __init__(self, items: list[Item], crop_frames: int, batch_size: int, preset: str | MelPreset, seed: int,
                 mode: str):
        if mode not in CROP_MODES:
            raise ValueError(f"train.crop: {mode!r} not one of {'|'.join(CROP_MODES)}")
        self.preset = get_preset(preset)
        self.hop = self.preset.hop_length
        self.crop_frames = crop_frames
        self.crop_samples = crop_frames * self.hop
        self.batch_size = batch_size
        self.seed = seed
        self.mode = mode
        usable = [it for it in items if it.frames >= crop_frames]
        skipped = [it.utt for it in items if it.frames < crop_frames]
        if skipped:
            # Not silent: the official code skips clips shorter than the crop; we say which.
            log.warning("skipping %d training clip(s) shorter than the crop of %d frames: %s%s", len(skipped),
                        crop_frames, ", ".join(skipped[:10]), " ..." if len(skipped) > 10 else "")
        if not usable:
            raise FeatureError(f"no training utterance has the {crop_frames} frames a crop needs "
                               f"({len(items)} utterances, all too short); lower train.crop_frames")
        if mode == "official":
            if len(usable) < batch_size:
                raise FeatureError(f"train.crop: official drops the incomplete last batch of each epoch, but only "
                                   f"{len(usable)} training utterance(s) can be cropped, fewer than "
                                   f"train.batch_size {batch_size}; lower train.batch_size or use train.crop: frames")
            if self.crop_samples <= self.preset.pad:
                raise FeatureError(f"train.crop_frames: a crop of {crop_frames} frame(s) is too short for the "
                                   f"{self.preset.name} front-end's reflect padding of {self.preset.pad} samples")
        self.items = usable
        self.skipped = skipped

    @property
    def steps_per_epoch(self) -> int:
        """Official mode: full batches per pass over the usable utterances."""
        return len(self.items) // self.batch_size

    def choose(self, step: int) -> tuple[list[int], list[int]]:
        """Indices into ``self.items`` and start *samples* of the crops of step ``step``."""
        if self.mode == "frames":
            rng = np.random.default_rng([self.seed, step])
            idx, starts = [], []
            for _ in range(self.batch_size):
                i = int(rng.integers(len(self.items)))
                idx.append(i)
                starts.append(int(rng.integers(0, self.items[i].frames - self.crop_frames + 1)) * self.hop)
            return idx, starts
        epoch, k = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, 0, epoch]).permutation(len(self.items))
        idx = [int(i) for i in order[k * self.batch_size:(k + 1) * self.batch_size]]
        rng = np.random.default_rng([self.seed, 1, step])
        starts = [int(rng.integers(0, self.items[i].samples - self.crop_samples + 1)) for i in idx]
        return idx, starts

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(audio (B, crop_samples), mel (B, n_mels, crop_frames)) of training step ``step``."""
        idx, starts = self.choose(step)
        audio = np.empty((self.batch_size, self.crop_samples), dtype=np.float32)
        for b, (i, start) in enumerate(zip(idx, starts)):
            audio[b] = self.items[i].audio()[start:start + self.crop_samples]
        if self.mode == "official":
            with torch.no_grad():
                mel = log_mel_torch(torch.from_numpy(audio), self.preset).numpy()
            return audio, mel
        mel = np.empty((self.batch_size, self.preset.n_mels, self.crop_frames), dtype=np.float32)
        for b, (i, start) in enumerate(zip(idx, starts)):
            f0 = start // self.hop
            mel[b] = self.items[i].mel()[:, f0:f0 + self.crop_frames]
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
