"""PriorGrad's acoustic prior N(mu_ph, diag(s_ph^2)) from per-token statistics (spec section 4).

The prior registry name is "phoneme" (label "PriorGrad (phoneme prior)"). Modes are the spec's
ablations: ``mean_std`` (PriorGrad), ``mean_only`` (s = 1), ``std_only`` (mu = 0).

``frame_stats`` takes each frame's vocabulary token id (0 = <pad> = padding); from an utterance's
``tokens`` and ``mel2ph`` arrays use :func:`frame_token_ids` (``tokens`` padded with a leading 0, then
indexed by mel2ph). Padding frames get mu = 0, s = 1 in every mode.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from priorgrad.acoustic.phoneme_stats import StatsError, frame_token_ids, load_mel_range, load_stats

MODES = ("mean_std", "mean_only", "std_only")
NAME = "phoneme"
LABEL = "PriorGrad (phoneme prior)"

__all__ = ["PhonemePrior", "MODES", "NAME", "LABEL", "frame_token_ids"]


@dataclass(eq=False)  # holds arrays: compare their contents explicitly
class PhonemePrior:
    mu: np.ndarray                 # [V, 80] float32
    std: np.ndarray                # [V, 80] float32, > 0
    mode: str = "mean_std"
    name: str = field(default=NAME)
    mel_range: tuple[np.ndarray, np.ndarray] | None = None  # training mels' per-bin [min, max] (x0 clip)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"phoneme prior mode {self.mode!r} not in {MODES}")
        self.mu = np.asarray(self.mu, dtype=np.float32)
        self.std = np.asarray(self.std, dtype=np.float32)
        if self.mu.ndim != 2 or self.mu.shape != self.std.shape:
            raise ValueError(f"mu {self.mu.shape} and std {self.std.shape} must both be [V, n_mels]")
        if not np.all(self.std > 0):
            raise ValueError("std must be > 0 everywhere")

    @property
    def vocab_size(self) -> int:
        return int(self.mu.shape[0])

    def frame_stats(self, frame_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame token ids [n_frames] (0 = padding) -> (mu, s), each float32 [80, n_frames]."""
        ids = np.asarray(frame_ids, dtype=np.int64)
        if ids.ndim != 1:
            raise ValueError(f"frame_stats expects a 1-D array of frame token ids, got shape {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token id {int(ids.max() if ids.max() >= self.vocab_size else ids.min())} "
                             f"outside the prior's vocabulary of {self.vocab_size}")
        mu = self.mu[ids].T.copy()
        s = self.std[ids].T.copy()
        if self.mode == "mean_only":
            s[:] = 1.0
        elif self.mode == "std_only":
            mu[:] = 0.0
        pad = ids == 0
        mu[:, pad], s[:, pad] = 0.0, 1.0
        return mu, s

    def utterance_stats(self, tokens: np.ndarray, mel2ph: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mu, s) [80, n_frames] of one utterance from its tokens and mel2ph arrays."""
        return self.frame_stats(frame_token_ids(tokens, mel2ph))

    @classmethod
    def load(cls, path: str | Path, mode: str = "mean_std") -> "PhonemePrior":
        mu, std, _ = load_stats(path)
        try:
            return cls(mu, std, mode, mel_range=load_mel_range(path))
        except ValueError as e:
            raise StatsError(f"{path}: {e}") from e
