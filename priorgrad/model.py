"""DiffWave: the non-causal WaveNet denoiser of DiffWave and PriorGrad (spec section 4).

Exactly the official architecture for any (layers, channels, cycle, n_mels, hop_length); the
upsampler's strides derive from hop_length instead of being hard-coded. ``DiffWave(...)`` with the
defaults has 2,619,971 parameters; channels 32 gives 1,227,651.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _conv1d(*args, **kwargs) -> nn.Conv1d:
    layer = nn.Conv1d(*args, **kwargs)
    nn.init.kaiming_normal_(layer.weight)
    return layer


def hop_factors(hop_length: int) -> list[int]:
    """Split hop_length into even upsampling strides, as square as possible (256 -> [16, 16])."""
    if hop_length < 2 or hop_length % 2:
        raise ValueError(f"hop_length must be an even integer >= 2, got {hop_length}")
    root = int(round(math.sqrt(hop_length)))
    for a in range(root, 1, -1):
        if hop_length % a == 0 and a % 2 == 0 and (hop_length // a) % 2 == 0:
            return [a, hop_length // a]
    return [hop_length]


class DiffusionEmbedding(nn.Module):
    """128-d sinusoidal step embedding, linearly interpolated at fractional (aligned) steps."""

    def __init__(self, max_steps: int):
        super().__init__()
        self.register_buffer("embedding", self._build_embedding(max_steps), persistent=False)
        self.projection1 = nn.Linear(128, 512)
        self.projection2 = nn.Linear(512, 512)

    @staticmethod
    def _build_embedding(max_steps: int) -> torch.Tensor:
        steps = torch.arange(max_steps, dtype=torch.float32).unsqueeze(1)  # (T, 1)
        dims = torch.arange(64, dtype=torch.float32).unsqueeze(0)          # (1, 64)
        table = steps * 10.0 ** (dims * 4.0 / 63.0)
        return torch.cat([torch.sin(table), torch.cos(table)], dim=1)

    def _lerp(self, t: torch.Tensor) -> torch.Tensor:
        low_idx = torch.floor(t).long().clamp(0, self.embedding.shape[0] - 1)
        high_idx = torch.ceil(t).long().clamp(0, self.embedding.shape[0] - 1)
        low, high = self.embedding[low_idx], self.embedding[high_idx]
        return low + (high - low) * (t - low_idx.to(t.dtype)).unsqueeze(-1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if t.dtype in (torch.int32, torch.int64):
            x = self.embedding[t]
        else:
            x = self._lerp(t.to(self.embedding.dtype))
        x = F.silu(self.projection1(x))
        return F.silu(self.projection2(x))


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


def gated_tanh(y: torch.Tensor) -> torch.Tensor:
    """sigmoid(gate) * tanh(filter) of y = [gate; filter] along the channels."""
    gate, filt = torch.chunk(y, 2, dim=1)
    return torch.sigmoid(gate) * torch.tanh(filt)


_fused_gated_tanh = None


def fused_gated_tanh(y: torch.Tensor) -> torch.Tensor:
    """gated_tanh as one generated kernel (torch.compile), forward and backward.

    Eager gated_tanh reads and writes the 2C-channel activation several times (chunk, sigmoid, tanh,
    product, and as many kernels again in backward); on a GPU, where this network is memory-bound, one
    fused kernel moves a third of the bytes. Compiled lazily at the first call (seconds; a C++ compiler
    on CPU, Triton on CUDA). Same maths: tests compare it with gated_tanh.
    """
    global _fused_gated_tanh
    if _fused_gated_tanh is None:
        _fused_gated_tanh = torch.compile(gated_tanh, fullgraph=True, dynamic=True)
    return _fused_gated_tanh(y)


class ResidualBlock(nn.Module):
    def __init__(self, n_cond: int, channels: int, dilation: int, fused_gate: bool = False):
        super().__init__()
        self.gate = fused_gated_tanh if fused_gate else gated_tanh
        self.dilated_conv = _conv1d(channels, 2 * channels, 3, padding=dilation, dilation=dilation)
        self.diffusion_projection = nn.Linear(512, channels)
        self.conditioner_projection = _conv1d(n_cond, 2 * channels, 1)
        self.output_projection = _conv1d(channels, 2 * channels, 1)

    def forward(self, x: torch.Tensor, step: torch.Tensor, cond_proj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.dilated_conv(x + self.diffusion_projection(step).unsqueeze(-1)) + cond_proj
        y = self.output_projection(self.gate(y))
        residual, skip = torch.chunk(y, 2, dim=1)
        return (x + residual) / math.sqrt(2.0), skip


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


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(params) -> DiffWave:
    """The model a Params (or its dict form, e.g. from a checkpoint) describes."""
    from priorgrad.config import Params

    if isinstance(params, dict):
        params = Params.from_dict(params, source="checkpoint params")
    m = params.model
    return DiffWave(n_mels=params.n_mels, residual_layers=m.residual_layers, residual_channels=m.residual_channels,
                    dilation_cycle=m.dilation_cycle, hop_length=params.hop_length,
                    upsample_factors=m.upsample_factors, max_steps=params.diffusion.num_steps,
                    condition_on_sigma=params.prior.condition_on_sigma, fused_gate=m.fused_gate)
