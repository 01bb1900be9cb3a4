"""The straightforward reference: the official PriorGrad-vocoder training step and sampler, plainly written.

Written from the spec (../shared/spec/priorgrad-vocoder.md, sections 3-5) in the shape of the official
code (microsoft/NeuralSpeech PriorGrad-vocoder on lmnt-com/diffwave): eager, fp32, no fusion, the
conditioner (upsampler + per-layer projections) recomputed at every network call, the sampler's
coefficients recomputed in the loop. It deliberately imports nothing from ``priorgrad`` so that it is
an independent check of the project's model and diffusion code, and the baseline every GPU figure in
``benchmarks/bench_gpu.py`` is a ratio against (measured in the same run).

Parameter names follow the official code (``spectrogram_upsampler.conv1/conv2``); ``load_project_state``
maps a ``priorgrad.vocoder.model.DiffWave`` state_dict onto them.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TRAIN_BETAS = dict(num_steps=50, beta_start=1e-4, beta_end=0.05)
FAST = {6: [1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5],
        12: [1e-4, 5e-4, 8e-4, 1e-3, 5e-3, 8e-3, 1e-2, 0.05, 0.08, 0.1, 0.2, 0.5]}


# ----------------------------------------------------------------------------- network (spec section 4)
def Conv1d(*args, **kwargs) -> nn.Conv1d:
    layer = nn.Conv1d(*args, **kwargs)
    nn.init.kaiming_normal_(layer.weight)
    return layer


class DiffusionEmbedding(nn.Module):
    def __init__(self, max_steps: int):
        super().__init__()
        steps = torch.arange(max_steps).unsqueeze(1).float()
        dims = torch.arange(64).unsqueeze(0).float()
        table = steps * 10.0 ** (dims * 4.0 / 63.0)
        self.register_buffer("embedding", torch.cat([torch.sin(table), torch.cos(table)], dim=1), persistent=False)
        self.projection1 = nn.Linear(128, 512)
        self.projection2 = nn.Linear(512, 512)

    def _lerp_embedding(self, t: torch.Tensor) -> torch.Tensor:
        low_idx = torch.floor(t).long()
        high_idx = torch.ceil(t).long()
        low = self.embedding[low_idx]
        high = self.embedding[high_idx]
        return low + (high - low) * (t - low_idx).unsqueeze(-1)

    def forward(self, diffusion_step: torch.Tensor) -> torch.Tensor:
        if diffusion_step.dtype in (torch.int32, torch.int64):
            x = self.embedding[diffusion_step]
        else:
            x = self._lerp_embedding(diffusion_step)
        x = F.silu(self.projection1(x))
        x = F.silu(self.projection2(x))
        return x


class SpectrogramUpsampler(nn.Module):
    """Two ConvTranspose2d, x16 each for hop 256 (the official code hard-codes the two layers)."""

    def __init__(self, factors: Sequence[int] = (16, 16)):
        super().__init__()
        if len(factors) != 2:
            raise ValueError(f"the reference has the official two upsampling layers, got factors {list(factors)}")
        f1, f2 = factors
        self.conv1 = nn.ConvTranspose2d(1, 1, [3, 2 * f1], stride=[1, f1], padding=[1, f1 // 2])
        self.conv2 = nn.ConvTranspose2d(1, 1, [3, 2 * f2], stride=[1, f2], padding=[1, f2 // 2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.unsqueeze(x, 1)
        x = self.conv1(x)
        x = F.leaky_relu(x, 0.4)
        x = self.conv2(x)
        x = F.leaky_relu(x, 0.4)
        x = torch.squeeze(x, 1)
        return x


class ResidualBlock(nn.Module):
    def __init__(self, n_mels: int, residual_channels: int, dilation: int):
        super().__init__()
        self.dilated_conv = Conv1d(residual_channels, 2 * residual_channels, 3, padding=dilation, dilation=dilation)
        self.diffusion_projection = nn.Linear(512, residual_channels)
        self.conditioner_projection = Conv1d(n_mels, 2 * residual_channels, 1)
        self.output_projection = Conv1d(residual_channels, 2 * residual_channels, 1)

    def forward(self, x, conditioner, diffusion_step):
        diffusion_step = self.diffusion_projection(diffusion_step).unsqueeze(-1)
        conditioner = self.conditioner_projection(conditioner)
        y = x + diffusion_step
        y = self.dilated_conv(y) + conditioner
        gate, filter = torch.chunk(y, 2, dim=1)
        y = torch.sigmoid(gate) * torch.tanh(filter)
        y = self.output_projection(y)
        residual, skip = torch.chunk(y, 2, dim=1)
        return (x + residual) / math.sqrt(2.0), skip


class ReferenceDiffWave(nn.Module):
    """DiffWave as the official code writes it: forward(audio, spectrogram, t) recomputes the conditioner."""

    def __init__(self, n_mels: int = 80, residual_layers: int = 30, residual_channels: int = 64,
                 dilation_cycle_length: int = 10, upsample_factors: Sequence[int] = (16, 16), max_steps: int = 50):
        super().__init__()
        self.input_projection = Conv1d(1, residual_channels, 1)
        self.diffusion_embedding = DiffusionEmbedding(max_steps)
        self.spectrogram_upsampler = SpectrogramUpsampler(upsample_factors)
        self.residual_layers = nn.ModuleList([
            ResidualBlock(n_mels, residual_channels, 2 ** (i % dilation_cycle_length))
            for i in range(residual_layers)])
        self.skip_projection = Conv1d(residual_channels, residual_channels, 1)
        self.output_projection = Conv1d(residual_channels, 1, 1)
        nn.init.zeros_(self.output_projection.weight)

    def forward(self, audio, spectrogram, diffusion_step):
        x = audio.unsqueeze(1)
        x = self.input_projection(x)
        x = F.relu(x)
        diffusion_step = self.diffusion_embedding(diffusion_step)
        spectrogram = self.spectrogram_upsampler(spectrogram)
        skip = []
        for layer in self.residual_layers:
            x, skip_connection = layer(x, spectrogram, diffusion_step)
            skip.append(skip_connection)
        x = torch.sum(torch.stack(skip), dim=0) / math.sqrt(len(self.residual_layers))
        x = self.skip_projection(x)
        x = F.relu(x)
        x = self.output_projection(x)
        return x


def load_project_state(ref: ReferenceDiffWave, project_state: dict[str, torch.Tensor]) -> None:
    """Copy a priorgrad.vocoder.model.DiffWave state_dict into the reference (upsampler convs.i -> conv{i+1})."""
    mapped = {}
    for k, v in project_state.items():
        if k.startswith("spectrogram_upsampler.convs."):
            idx, rest = k[len("spectrogram_upsampler.convs."):].split(".", 1)
            k = f"spectrogram_upsampler.conv{int(idx) + 1}.{rest}"
        mapped[k] = v
    ref.load_state_dict(mapped, strict=True)


# ----------------------------------------------------------------------------- diffusion (spec section 3)
def training_noise_schedule(num_steps: int = 50, beta_start: float = 1e-4, beta_end: float = 0.05) -> np.ndarray:
    return np.linspace(beta_start, beta_end, num_steps)


def reference_loss(model: nn.Module, audio: torch.Tensor, spectrogram: torch.Tensor, target_std: torch.Tensor,
                   t: torch.Tensor, n: torch.Tensor, beta: np.ndarray | None = None) -> torch.Tensor:
    """The official training objective for given steps t (B,) and standard normal draws n (B, N)."""
    beta = training_noise_schedule(**TRAIN_BETAS) if beta is None else beta
    noise_level = torch.tensor(np.cumprod(1 - beta).astype(np.float32), device=audio.device)
    noise_scale = noise_level[t].unsqueeze(1)
    noise_scale_sqrt = noise_scale ** 0.5
    noise = n * target_std
    noisy_audio = noise_scale_sqrt * audio + (1.0 - noise_scale) ** 0.5 * noise
    predicted = model(noisy_audio, spectrogram, t.float())
    return nn.MSELoss()(noise / target_std, predicted.squeeze(1) / target_std)


def reference_train_step(model: nn.Module, optimizer: torch.optim.Optimizer, audio: torch.Tensor,
                         spectrogram: torch.Tensor, target_std: torch.Tensor, t: torch.Tensor,
                         n: torch.Tensor) -> torch.Tensor:
    """zero_grad, loss, backward, Adam step; fp32, no gradient clipping (the official defaults)."""
    for param in model.parameters():
        param.grad = None
    loss = reference_loss(model, audio, spectrogram, target_std, t, n)
    loss.backward()
    optimizer.step()
    return loss.detach()


def inference_schedule(steps: int) -> np.ndarray:
    if steps in FAST:
        return np.array(FAST[steps])
    return np.linspace(1e-4, 0.05, steps)


def aligned_steps(inference_noise_schedule: np.ndarray, training_noise_schedule: np.ndarray) -> list[float]:
    """The official T_align loop (0-based steps; raises when a gamma_bar falls below alpha_bar_T)."""
    talpha_cum = np.cumprod(1 - training_noise_schedule)
    alpha_cum = np.cumprod(1 - inference_noise_schedule)
    T = []
    for s in range(len(inference_noise_schedule)):
        if alpha_cum[s] >= talpha_cum[0]:
            T.append(0.0)
            continue
        for t in range(len(training_noise_schedule) - 1):
            if talpha_cum[t + 1] <= alpha_cum[s] <= talpha_cum[t]:
                twiddle = (talpha_cum[t] ** 0.5 - alpha_cum[s] ** 0.5) / (talpha_cum[t] ** 0.5 - talpha_cum[t + 1] ** 0.5)
                T.append(t + twiddle)
                break
        else:
            raise ValueError(f"inference step {s + 1} cannot be aligned to the training schedule")
    return T


@torch.no_grad()
def reference_sample(model: nn.Module, spectrogram: torch.Tensor, target_std: torch.Tensor, steps: int,
                     draws: Sequence[torch.Tensor]) -> torch.Tensor:
    """Ancestral sampling from x_S = sigma * draws[0]; draws[k] is the k-th standard normal draw (B, N).

    model(audio, spectrogram, t) is called per step, so the conditioner is recomputed S times.
    """
    beta = inference_schedule(steps)
    alpha = 1 - beta
    alpha_cum = np.cumprod(alpha)
    T = aligned_steps(beta, training_noise_schedule(**TRAIN_BETAS))
    audio = draws[0] * target_std
    for k, n in enumerate(range(len(alpha) - 1, -1, -1)):
        c1 = 1 / alpha[n] ** 0.5
        c2 = beta[n] / (1 - alpha_cum[n]) ** 0.5
        t = torch.tensor([T[n]] * audio.shape[0], device=audio.device, dtype=torch.float32)
        audio = c1 * (audio - c2 * model(audio, spectrogram, t).squeeze(1))
        if n > 0:
            sigma = ((1.0 - alpha_cum[n - 1]) / (1.0 - alpha_cum[n]) * beta[n]) ** 0.5
            audio += sigma * draws[k + 1] * target_std
        audio = torch.clamp(audio, -1.0, 1.0)
    return audio
