"""DiffWave: the non-causal WaveNet denoiser of DiffWave and PriorGrad (spec section 4).

Exactly the official architecture for any (layers, channels, cycle, n_mels, hop_length); the
upsampler's strides derive from hop_length instead of being hard-coded. ``DiffWave(...)`` with the
defaults has 2,619,971 parameters; channels 32 gives 1,227,651.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from priorgrad.core import checkpoint as ckpt_io

from priorgrad.core.layers import (DiffusionEmbedding, ResidualBlock, _conv1d, count_parameters,  # noqa: F401
                                   fused_gated_tanh, gated_tanh)


def hop_factors(hop_length: int) -> list[int]:
    """Split hop_length into even upsampling strides, as square as possible (256 -> [16, 16])."""
    if hop_length < 2 or hop_length % 2:
        raise ValueError(f"hop_length must be an even integer >= 2, got {hop_length}")
    root = int(round(math.sqrt(hop_length)))
    for a in range(root, 1, -1):
        if hop_length % a == 0 and a % 2 == 0 and (hop_length // a) % 2 == 0:
            return [a, hop_length // a]
    return [hop_length]


class SpectrogramUpsampler(nn.Module):
    """Frames -> samples with one ConvTranspose2d(kernel [3, 2f], stride [1, f]) per factor f."""

    def __init__(self, factors: list[int]):
        super().__init__()
        self.factors = list(factors)
        self.convs = nn.ModuleList(
            nn.ConvTranspose2d(1, 1, [3, 2 * f], stride=[1, f], padding=[1, f // 2]) for f in self.factors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.4)
        return x.squeeze(1)


class DiffWave(nn.Module):
    def __init__(self, n_mels: int = 80, residual_layers: int = 30, residual_channels: int = 64,
                 dilation_cycle: int = 10, hop_length: int = 256, upsample_factors: list[int] | None = None,
                 max_steps: int = 50, condition_on_sigma: bool = False, fused_gate: bool = False):
        super().__init__()
        factors = list(upsample_factors) if upsample_factors else hop_factors(hop_length)
        if math.prod(factors) != hop_length:
            raise ValueError(f"upsample factors {factors} multiply to {math.prod(factors)}, not hop_length {hop_length}")
        self.hop_length = hop_length
        self.condition_on_sigma = condition_on_sigma
        # Ablation of the official code: sigma as one more conditioning channel next to the mel bins.
        n_cond = n_mels + (1 if condition_on_sigma else 0)
        self.input_projection = _conv1d(1, residual_channels, 1)
        self.diffusion_embedding = DiffusionEmbedding(max_steps)
        self.spectrogram_upsampler = SpectrogramUpsampler(factors)
        self.residual_layers = nn.ModuleList(
            ResidualBlock(n_cond, residual_channels, 2 ** (i % dilation_cycle), fused_gate)
            for i in range(residual_layers))
        self.skip_projection = _conv1d(residual_channels, residual_channels, 1)
        self.output_projection = _conv1d(residual_channels, 1, 1)
        nn.init.zeros_(self.output_projection.weight)

    def condition(self, mel: torch.Tensor, sigma: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Upsample the mel (and sigma for the ablation) and project it for every layer.

        Independent of x and t, so a sampler computes it once per utterance, not once per step.
        """
        c = self.spectrogram_upsampler(mel)
        if self.condition_on_sigma:
            if sigma is None:
                raise ValueError("this model conditions on sigma (prior.condition_on_sigma) but none was given")
            c = torch.cat([c, sigma.unsqueeze(1).to(c.dtype)], dim=1)
        return [layer.conditioner_projection(c) for layer in self.residual_layers]

    def denoise(self, audio: torch.Tensor, cond: list[torch.Tensor], t: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.input_projection(audio.unsqueeze(1)))
        step = self.diffusion_embedding(t)
        skip = None
        for layer, cp in zip(self.residual_layers, cond):
            x, s = layer(x, step, cp)
            skip = s if skip is None else skip + s
        x = skip / math.sqrt(len(self.residual_layers))
        x = F.relu(self.skip_projection(x))
        return self.output_projection(x).squeeze(1)

    def forward(self, audio: torch.Tensor, mel: torch.Tensor, t: torch.Tensor,
                sigma: torch.Tensor | None = None) -> torch.Tensor:
        """eps_hat for waveform (B, N), mel (B, n_mels, N / hop), steps (B,) (int or fractional)."""
        return self.denoise(audio, self.condition(mel, sigma), t)


def build_model(params) -> DiffWave:
    """The model a Params (or its dict form, e.g. from a checkpoint) describes."""
    from priorgrad.core.config import Params

    if isinstance(params, dict):
        params = Params.from_dict(params, source="checkpoint params")
    m = params.model
    return DiffWave(n_mels=params.n_mels, residual_layers=m.residual_layers, residual_channels=m.residual_channels,
                    dilation_cycle=m.dilation_cycle, hop_length=params.hop_length,
                    upsample_factors=m.upsample_factors, max_steps=params.diffusion.num_steps,
                    condition_on_sigma=params.prior.condition_on_sigma, fused_gate=m.fused_gate)


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """(model in eval mode, checkpoint dict) with the model rebuilt from the checkpoint's params."""
    ckpt = ckpt_io.load(path)
    model = build_model(ckpt["params"])
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt
