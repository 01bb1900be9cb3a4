"""The prior contract at the diffusion boundary, the same for both families (family-neutral, self-contained).

A prior conditioned on one batch (a ``PriorDraw``) is a Gaussian N(mean, L L^T) in the target's own shape:
waveform samples (B, N) for the vocoder, mel bins x frames (B, 80, N) for the acoustic model. The diffusion
module (priorgrad/core/diffusion.py) calls only its three methods, so it never knows which prior it runs:

- ``mean()``: the prior mean (0.0 for the vocoder priors and B1; mu for the acoustic ones), diffused around;
- ``draw(n)``: L n, turning white noise n of the target's shape into prior noise;
- ``whiten(r)``: L^-1 r, for PriorGrad's loss ||L^-1 (eps_hat - eps)||^2.

Each family's prior object turns a batch's conditioning into a PriorDraw (the vocoder's from the log-mels and
the waveform length, ``priorgrad.vocoder.prior.Prior.condition``; the acoustic model's from the frame-level prior
moments, ``priorgrad.acoustic.priors``); docs/architecture.md, "How to add a prior", lists the files.
``DiagonalDraw`` is L = diag(sigma), which every prior registered today is; a non-diagonal prior (e.g. a
SpecGrad-style filtered noise, L = ISTFT(m * STFT(.))) implements the three methods in its own module.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class PriorDraw(Protocol):
    """A prior conditioned on one batch, in the target's own shape."""

    def mean(self) -> torch.Tensor | float:
        """The prior mean: 0.0 (a float: nothing is subtracted or added) or a tensor of the target's shape."""

    def draw(self, n: torch.Tensor) -> torch.Tensor:
        """L n: white noise n of the target's shape -> prior noise of the same shape."""

    def whiten(self, r: torch.Tensor) -> torch.Tensor:
        """L^-1 r: a residual in the target's shape -> its whitened form (the loss is a mean over it)."""


class DiagonalDraw:
    """L = diag(sigma): draw = sigma * n, whiten = r / sigma, mean = mu (or 0.0).

    ``sigma`` is broadcastable to the target (a tensor, or 1.0 for N(0, I) without one); ``mu`` None means
    a zero mean (0.0: the diffusion then neither subtracts nor adds it, exactly as before the contract).
    """

    def __init__(self, sigma: torch.Tensor | float, mu: torch.Tensor | None = None):
        self.sigma = sigma
        self.mu = mu

    def mean(self) -> torch.Tensor | float:
        return 0.0 if self.mu is None else self.mu

    def draw(self, n: torch.Tensor) -> torch.Tensor:
        return self.sigma * n

    def whiten(self, r: torch.Tensor) -> torch.Tensor:
        return r / self.sigma

    def draw_scaled(self, n: torch.Tensor, scale: float) -> torch.Tensor:
        """(scale * sigma) * n: the float order the samplers have always used for a step's noise, so that
        the results stay bit-identical (scale * (sigma * n) rounds differently)."""
        return scale * self.sigma * n


def draw_scaled(prior: PriorDraw, n: torch.Tensor, scale: float) -> torch.Tensor:
    """scale * L n (a sampler step's noise). A prior may provide ``draw_scaled(n, scale)`` to fix the float
    order (DiagonalDraw does); otherwise this is scale * draw(n), which is all the contract requires."""
    own = getattr(prior, "draw_scaled", None)
    return own(n, scale) if own is not None else scale * prior.draw(n)


def has_mean(prior: PriorDraw) -> bool:
    """Whether the prior's mean is a tensor (diffused around) rather than the scalar 0.0."""
    return torch.is_tensor(prior.mean())


def sigma_of(prior: PriorDraw) -> torch.Tensor | None:
    """A diagonal prior's sigma tensor (what the vocoder's condition_on_sigma ablation feeds the network),
    None for any other prior."""
    sigma = getattr(prior, "sigma", None)
    return sigma if isinstance(prior, DiagonalDraw) and torch.is_tensor(sigma) else None
