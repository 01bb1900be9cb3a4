"""The inputs every vocoder sampler shares (the eager ``infer.generate``, the fast ``fast_infer`` one, the
trainer's validation): per-utterance seeds and noise, and the padded mel batch (the device choice is the
training runtime's ``resolve_device``).

Below both samplers, so that neither imports the other.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from priorgrad.core.audio import MelPreset, get_preset
from priorgrad.core.seeds import utterance_seed  # noqa: F401  (the samplers' per-utterance seeds)


def batch_mels(mels: Sequence[np.ndarray], preset: str | MelPreset) -> tuple[np.ndarray, list[int], int]:
    """(mel (B, n_mels, F), lengths in frames, waveform samples F * hop): the batch padded to its longest mel.

    Shorter mels are padded with the preset's silent frame (its compressed 1e-5 floor: ln(1e-5) for
    hifigan, 0 for diffwave); the prior's padding rule is its own (``Prior.condition`` gets the
    unpadded mels).
    """
    p = get_preset(preset)
    lengths = [m.shape[1] for m in mels]
    frames = max(lengths)
    mel = np.full((len(mels), mels[0].shape[0], frames), p.silence, dtype=np.float32)
    for i, m in enumerate(mels):
        mel[i, :, :m.shape[1]] = m
    return mel, lengths, frames * p.hop_length


def utterance_noise(seeds: Sequence[int], lengths: Sequence[int], hop_length: int,
                    shape: tuple[int, int]) -> Callable[[int], torch.Tensor]:
    """noise(k): the k-th standard normal draw of the batch (CPU), one generator per utterance.

    Each utterance draws from its own generator at its own length: the result does not depend on
    which other utterances share the batch (up to the padded tail's receptive field). Draws must be
    taken in order k = 0, 1, ... (the sampler does).
    """
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def noise(_k: int) -> torch.Tensor:
        z = torch.zeros(shape)
        for i, g in enumerate(gens):
            n = lengths[i] * hop_length
            z[i, :n] = torch.randn(n, generator=g)
        return z

    return noise
