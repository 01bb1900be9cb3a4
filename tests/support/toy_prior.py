"""A toy prior for both families, written as a new prior would be: this module and a registry entry alone.

Its PriorDraw is NOT diagonal (L n = scale * n reversed along one axis: over the waveform's samples for the
vocoder, over the mel bins for the acoustic model), so nothing can lean on a sigma tensor.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch


class FlipDraw:
    """N(mean, scale^2 P P^T) with P the reversal of the last `dim` axis: draw = scale * P n, whiten = P^-1 r / scale."""

    def __init__(self, scale: float, dim: int, mu: torch.Tensor | None = None):
        self.scale, self.dim, self.mu = scale, dim, mu

    def mean(self) -> torch.Tensor | float:
        return 0.0 if self.mu is None else self.mu

    def draw(self, n: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.flip(n, dims=[self.dim])

    def whiten(self, r: torch.Tensor) -> torch.Tensor:
        return torch.flip(r, dims=[self.dim]) / self.scale


class ToyVocoderPrior:
    name = "toy"

    def condition(self, mels: Sequence[np.ndarray], hop_length: int, n_samples: int,
                  device: torch.device | str = "cpu") -> FlipDraw:
        return FlipDraw(0.5, -1)


class ToyAcousticPrior:
    name = "toy"
    frame_prior = None      # no token table: the moments come from the network's outputs' shape
    learns_mean = False

    def moments(self, frames: dict[str, torch.Tensor], out: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, n = out["mask"].shape
        return torch.full((b, 80, n), -3.0, device=out["mask"].device), torch.ones(b, 80, n, device=out["mask"].device)

    def condition(self, mu: torch.Tensor, s: torch.Tensor) -> FlipDraw:
        return FlipDraw(0.7, 1, mu)   # reversed over the mel bins


def build_vocoder(prior_cfg: Any, stats: dict[str, Any] | None, preset: str) -> ToyVocoderPrior:
    return ToyVocoderPrior()


def build_acoustic(model_cfg: Any, table: Any) -> ToyAcousticPrior:
    return ToyAcousticPrior()
