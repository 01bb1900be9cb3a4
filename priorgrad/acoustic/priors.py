"""The acoustic model's priors (spec priorgrad-acoustic.md section 8), one builder each for the registry.

An acoustic prior turns a batch's conditioning into a ``PriorDraw`` (priorgrad/core/prior_contract.py) over mels
(B, 80, N) in two steps, so that the trainer can crop its window in between:

1. ``moments(frames, out)`` -> (mu, s), each (B, 80, N): the frame-level prior moments, from the token-level
   table's per-frame values (``frames["mu"]``, ``frames["s"]``, made from ``frame_prior`` by the caller; only
   when ``frame_prior`` is not None) or from the network's outputs ``out`` (B2's learned mean ``out["mu"]``);
2. ``condition(mu, s)`` -> the PriorDraw of (a window of) those moments.

The trainer and the sampler ask these objects (``frame_prior``, ``learns_mean``) instead of comparing prior
names; the registry (priorgrad/core/registry.py) names each builder, which takes (model_cfg, table).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from priorgrad.acoustic.model import FramePrior, StandardFramePrior, TablePrior
from priorgrad.core.prior_contract import DiagonalDraw, PriorDraw


@dataclass
class PhonemeAcousticPrior:
    """PriorGrad: N(mu_ph, diag(s_ph^2)) from the phoneme-level statistics table (under acoustic.model.prior_mode)."""

    frame_prior: FramePrior
    name: str = "phoneme"
    learns_mean: bool = False

    def moments(self, frames: dict[str, torch.Tensor], out: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        return frames["mu"], frames["s"]

    def condition(self, mu: torch.Tensor, s: torch.Tensor) -> PriorDraw:
        return DiagonalDraw(s, mu)


@dataclass
class StandardAcousticPrior:
    """B1: N(0, I). Its frame moments are zeros and ones (reported as the mean reference); the draw has no
    mean (the process diffuses the mel itself) and keeps s = 1 as a tensor (the same float ops as before)."""

    frame_prior: FramePrior = field(default_factory=StandardFramePrior)
    name: str = "standard"
    learns_mean: bool = False

    def moments(self, frames: dict[str, torch.Tensor], out: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        return frames["mu"], frames["s"]

    def condition(self, mu: torch.Tensor, s: torch.Tensor) -> PriorDraw:
        return DiagonalDraw(s)


@dataclass
class TrainableAcousticPrior:
    """B2 (Grad-TTS-style): N(mu_theta, I), mu_theta = Linear(H -> 80) of the encoder output (the model's
    ``mu_head``, built because ``learns_mean``); the trainer adds its prior loss."""

    frame_prior: None = None
    name: str = "trainable"
    learns_mean: bool = True

    def moments(self, frames: dict[str, torch.Tensor], out: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        return out["mu"], torch.ones_like(out["mu"])

    def condition(self, mu: torch.Tensor, s: torch.Tensor) -> PriorDraw:
        return DiagonalDraw(s, mu)


def build_phoneme(model_cfg: Any, table: TablePrior | None) -> PhonemeAcousticPrior:
    if table is None:
        raise ValueError("acoustic.model.prior is 'phoneme' but no phoneme statistics were given (--stats)")
    return PhonemeAcousticPrior(table)


def build_standard(model_cfg: Any, table: TablePrior | None) -> StandardAcousticPrior:
    return StandardAcousticPrior()


def build_trainable(model_cfg: Any, table: TablePrior | None) -> TrainableAcousticPrior:
    return TrainableAcousticPrior()


def acoustic_prior(model_cfg: Any, table: TablePrior | None) -> Any:
    """The prior named by acoustic.model.prior, through the registry's builder."""
    from priorgrad.core import registry

    prior = registry.builder(model_cfg.prior, "acoustic")(model_cfg, table)
    # the network is built from the registry's flag (build_acoustic_model needs no prior object): they must agree
    if bool(prior.learns_mean) != registry.prior(model_cfg.prior, "acoustic").learns_mean:
        raise ValueError(f"acoustic prior {model_cfg.prior!r}: its object's learns_mean ({prior.learns_mean}) "
                         f"differs from its registry entry's; set the same in both")
    return prior
