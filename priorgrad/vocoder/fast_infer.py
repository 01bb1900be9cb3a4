"""Fast synthesis: conditioner once, noise drawn up front, optional bf16 network and one CUDA graph per shape.

``FastSampler`` runs the one sampler (``Diffusion.sample``) with every standard normal draw taken
before the step loop, so the loop is device work only: on a GPU it can be captured whole (conditioner
+ S network calls + updates) in one CUDA graph and replayed, which removes the per-kernel launch cost
that dominates batch-1 synthesis of a small network. ``generate_fast`` gives exactly ``generate``'s
output in fp32 (same seeds, same draws); ``precision="bf16"`` runs the network (not the sampler's
arithmetic) in bfloat16, within ``BF16_LS_MAE_TOLERANCE`` of fp32 (tests check it on CPU).
"""
from __future__ import annotations

import contextlib
import logging
from typing import Sequence

import numpy as np
import torch

from priorgrad.core.diffusion import Diffusion
from priorgrad.core.audio import MelPreset, get_preset
from priorgrad.vocoder.prior import Prior
from priorgrad.core.prior_contract import DiagonalDraw, sigma_of
from priorgrad.vocoder.sampling_inputs import batch_mels, utterance_noise

log = logging.getLogger(__name__)

# Stated tolerance of bf16 synthesis: mean |log_mel(bf16 output) - log_mel(fp32 output)| (the LS-MAE
# between the two syntheses of the same mel and noise) stays below this, in nats of the log-mel. For
# scale: a trained base model's LS-MAE against the reference recording is ~0.2-0.4 after 1M steps.
BF16_LS_MAE_TOLERANCE = 0.05
PRECISIONS = ("fp32", "bf16")


def check_graph_device(device: torch.device) -> None:
    if device.type != "cuda":
        raise ValueError(f"cuda_graphs: synthesis CUDA graphs need a CUDA device, got {device} "
                         f"(leave --cuda-graphs off on this machine)")


class FastSampler:
    """Samples (B, N) waveforms from mel (B, n_mels, F), sigma (B, N) and pre-drawn noise (S, B, N)."""

    def __init__(self, model: torch.nn.Module, diffusion: Diffusion, steps: int | list[float],
                 device: torch.device | str, precision: str = "fp32", cuda_graphs: bool = False):
        if precision not in PRECISIONS:
            raise ValueError(f"synthesis precision must be one of {PRECISIONS}, got {precision!r}")
        self.device = torch.device(device)
        if cuda_graphs:
            check_graph_device(self.device)
        self.model, self.diffusion, self.steps = model, diffusion, steps
        self.n_steps = len(diffusion.schedule(steps)[0])  # rejects an unalignable schedule now
        self.precision, self.cuda_graphs = precision, cuda_graphs
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor]]] = {}

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        # cache off: cached bf16 weight copies would be graph-owned and stale after a weight change
        return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=False)

    @torch.no_grad()
    def run(self, mel: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The eager sampler: conditioner once, S network calls, noise[k] as the k-th draw."""
        if noise.shape[0] != self.n_steps or noise.shape[1:] != sigma.shape:
            raise ValueError(f"noise must have shape ({self.n_steps}, {tuple(sigma.shape)}) for this "
                             f"{self.n_steps}-step schedule, got {tuple(noise.shape)}")
        model = self.model
        with self._autocast():
            cond = model.condition(mel, sigma)
            out = self.diffusion.sample(lambda x, _c, t: model.denoise(x, cond, t), None, DiagonalDraw(sigma), self.steps,
                                        noise=lambda k: noise[k])
        return out.float()

    @torch.no_grad()
    def __call__(self, mel: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        if not self.cuda_graphs:
            return self.run(mel, sigma, noise)
        key = (tuple(mel.shape), tuple(sigma.shape))
        if key not in self._graphs:
            self._graphs[key] = self._capture(mel, sigma, noise)
        graph, static = self._graphs[key]
        static["mel"].copy_(mel)
        static["sigma"].copy_(sigma)
        static["noise"].copy_(noise)
        graph.replay()
        return static["out"].clone()

    def _capture(self, mel: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor):
        """Warm up once on a side stream (lazy initialisation, cuDNN choices), then capture the whole sampler."""
        static = {"mel": mel.clone(), "sigma": sigma.clone(), "noise": noise.clone()}
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self.run(static["mel"], static["sigma"], static["noise"])
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static["out"] = self.run(static["mel"], static["sigma"], static["noise"])
        torch.cuda.synchronize()
        log.info("captured the %d-step sampler for shape %s in a CUDA graph", self.n_steps, tuple(sigma.shape))
        return graph, static


def draw_all(seeds: Sequence[int], lengths: Sequence[int], hop_length: int, shape: tuple[int, int],
             n_steps: int) -> torch.Tensor:
    """(S, B, N): every draw the sampler takes, in its order (the same values ``generate`` draws)."""
    draw = utterance_noise(seeds, lengths, hop_length, shape)
    return torch.stack([draw(k) for k in range(n_steps)])


@torch.no_grad()
def generate_fast(sampler: FastSampler, prior: Prior, mels: Sequence[np.ndarray], seeds: Sequence[int],
                  preset: str | MelPreset) -> list[np.ndarray]:
    """``generate`` through a FastSampler: the same waveforms in fp32 (tests check it)."""
    hop_length = get_preset(preset).hop_length
    mel, lengths, n_samples = batch_mels(mels, preset)
    sigma = sigma_of(prior.condition(mels, hop_length, n_samples, sampler.device))
    if sigma is None:  # the captured graph holds static input tensors: a diagonal prior's sigma is one
        raise ValueError("the fast sampler takes a diagonal prior (DiagonalDraw); use the default sampler")
    noise = draw_all(seeds, lengths, hop_length, (len(mels), n_samples), sampler.n_steps).to(sampler.device)
    out = sampler(torch.from_numpy(mel).to(sampler.device), sigma, noise)
    out = out.cpu().numpy()
    return [out[i, :lengths[i] * hop_length].copy() for i in range(len(mels))]
