"""The optional fast training paths (params ``train.features_on_device``, ``train.compile``,
``train.cuda_graphs``; ``train.precision`` and ``model.fused_gate`` act elsewhere).

Every path computes the same objective on the same crops and noise as the default eager step
(``Diffusion.training_loss_given`` with t and n drawn on the CPU from (seed, step)), so a run's loss
curve does not depend on which paths are on beyond floating-point rounding.

- ``ResidentCrops``: all training audio, mels (and a frame-diagonal prior's per-frame sigmas) copied to the device once; a step's
  crops (the same picks as ``CropSampler``) are gathered there instead of sliced from memory-mapped
  files and copied host-to-device every step.
- ``TrainStep``: the step itself: eager (the default), ``torch.compile``d, and/or captured whole
  (forward, backward and Adam update) in one CUDA graph and replayed. CUDA graphs need a CUDA device:
  asking for them elsewhere is an error (a silent fallback would make a benchmark lie about what ran).
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np
import torch

from priorgrad.core.audio import log_mel_torch
from priorgrad.vocoder.data import CropSampler, load_item_arrays
from priorgrad.core.diffusion import Diffusion
from priorgrad.vocoder.prior import Prior
from priorgrad.core.prior_contract import DiagonalDraw, PriorDraw, sigma_of
from priorgrad.core.runtime import autocast, compile_model, scaled_update

log = logging.getLogger(__name__)


class ResidentCrops:
    """Training features resident on ``device``; ``batch(step)`` returns the crops CropSampler chooses.

    The same utterances and offsets as ``CropSampler.batch`` (both ask ``CropSampler.choose``); the audio
    is gathered on the device. ``frames`` crops slice the resident mel (and a frame-diagonal prior's
    resident sigma: one with ``sigma_frames``); ``official`` crops recompute the mel on the device with the
    front-end (as the sampler does on the host). Otherwise the prior is conditioned on the crop's mel on
    the host (``Prior.condition`` is numpy code: a copy of the crop's mel per step).
    """

    def __init__(self, sampler: CropSampler, prior: Prior, hop_length: int, device: torch.device | str):
        self.sampler = sampler
        self.prior = prior
        self.hop = hop_length
        self.device = torch.device(device)
        audios, mels, sigmas, frame_offsets, sample_offsets, frames, samples = [], [], [], [], [], 0, 0
        sigma_frames = getattr(prior, "sigma_frames", None)  # a frame-diagonal prior: its sigma can be resident
        for item in sampler.items:
            audio, mel = load_item_arrays(item, hop_length)
            audios.append(np.asarray(audio, dtype=np.float32))
            mels.append(np.asarray(mel, dtype=np.float32))
            # sigma is a per-frame function of the mel: computing it on the whole utterance gives each
            # frame-aligned crop exactly the values computing it on the crop would
            if sigma_frames is not None:
                sigmas.append(np.asarray(sigma_frames(mel), dtype=np.float32))
            frame_offsets.append(frames)
            sample_offsets.append(samples)
            frames += mel.shape[1]
            samples += len(audio)
        self.frame_offsets = np.asarray(frame_offsets, dtype=np.int64)
        self.sample_offsets = np.asarray(sample_offsets, dtype=np.int64)
        self.audio = torch.from_numpy(np.concatenate(audios)).to(self.device)          # (total samples,)
        self.mel = torch.from_numpy(np.concatenate(mels, axis=1)).to(self.device)      # (n_mels, total frames)
        self.sigma = (torch.from_numpy(np.concatenate(sigmas)).to(self.device)        # (total frames,)
                      if sigma_frames is not None else None)
        self._frame_range = torch.arange(sampler.crop_frames, device=self.device)
        self._sample_range = torch.arange(sampler.crop_samples, device=self.device)
        log.info("training features resident on %s: %.1f MiB", self.device, self.nbytes / 2 ** 20)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.audio, self.mel, self.sigma) if t is not None)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, PriorDraw]:
        """(audio (B, N), mel (B, n_mels, frames), the prior of the batch) of step ``step``, on the device."""
        idx, starts = self.sampler.choose(step)
        first = torch.tensor([int(self.sample_offsets[i]) + s for i, s in zip(idx, starts)], device=self.device)
        audio = self.audio[first.unsqueeze(1) + self._sample_range]
        if self.sampler.mode == "official":
            with torch.no_grad():
                mel = log_mel_torch(audio, self.sampler.preset)
            return audio, mel, self.prior.condition(mel.cpu().numpy(), self.hop, audio.shape[-1], self.device)
        first_frame = torch.tensor([int(self.frame_offsets[i]) + s // self.hop for i, s in zip(idx, starts)],
                                   device=self.device)
        frames = first_frame.unsqueeze(1) + self._frame_range                  # (B, crop_frames)
        mel = self.mel[:, frames].permute(1, 0, 2).contiguous()
        if self.sigma is None:
            return audio, mel, self.prior.condition(mel.cpu().numpy(), self.hop, audio.shape[-1], self.device)
        return audio, mel, DiagonalDraw(self.sigma[frames].repeat_interleave(self.hop, dim=1))


def check_cuda_graphs(device: torch.device, precision: str) -> None:
    """The conditions train.cuda_graphs needs; raises a ValueError naming the key otherwise."""
    if device.type != "cuda":
        raise ValueError(f"train.cuda_graphs: CUDA graphs need a CUDA device, but train.device resolved to "
                         f"{device} (set train.cuda_graphs: false on this machine)")
    if precision == "fp16":
        raise ValueError("train.cuda_graphs: cannot be combined with train.precision fp16 (the grad scaler "
                         "synchronises with the host every step); use bf16 or fp32")


class TrainStep:
    """One optimisation step on given (x0, mel, prior, t, n), by the path the options pick.

    ``__call__`` returns the loss as a float and calls ``check(loss)`` (which may raise) before the
    update in the eager and compiled paths; a captured graph updates the weights in the same replay,
    so there the check runs after the update (the run still stops at that step).
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                 diffusion: Diffusion, device: torch.device, precision: str, compile: bool = False,
                 cuda_graphs: bool = False, compile_backend: str = "inductor"):
        if cuda_graphs:
            check_cuda_graphs(device, precision)
        self.model, self.optimizer, self.scaler, self.diffusion = model, optimizer, scaler, diffusion
        self.device, self.precision, self.cuda_graphs = device, precision, cuda_graphs
        self.forward = compile_model(model, compile_backend) if compile else model
        self.path = "+".join(["compiled" if compile else "eager"] + (["cuda_graph"] if cuda_graphs else []))
        self._graph: Any = None
        self._static: dict[str, torch.Tensor] = {}

    def loss(self, x0: torch.Tensor, mel: torch.Tensor, prior: PriorDraw, t: torch.Tensor,
             n: torch.Tensor) -> torch.Tensor:
        forward = self.forward
        sigma = sigma_of(prior)  # only the condition_on_sigma ablation reads it
        with autocast(self.device, self.precision, cache_enabled=not self.cuda_graphs):
            return self.diffusion.training_loss_given(lambda x, c, s: forward(x, c, s, sigma), x0, mel, prior, t, n)

    def __call__(self, x0: torch.Tensor, mel: torch.Tensor, prior: PriorDraw, t: torch.Tensor, n: torch.Tensor,
                 check: Callable[[float], None] = lambda v: None) -> float:
        self.model.train()
        if self.cuda_graphs:
            return self._graph_step(x0, mel, prior, t, n, check)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(x0, mel, prior, t, n)
        value = float(loss.detach())
        check(value)
        scaled_update(loss, self.optimizer, self.scaler)
        return value

    # ------------------------------------------------------------------ CUDA graph
    def _graph_step(self, x0, mel, prior: PriorDraw, t, n, check) -> float:
        sigma = sigma_of(prior)
        if sigma is None:  # the graph holds static input tensors: a diagonal prior's sigma is one
            raise ValueError("train.cuda_graphs: the captured step takes a diagonal prior (DiagonalDraw); "
                             f"got {type(prior).__name__} (turn train.cuda_graphs off for this prior)")
        inputs = {"x0": x0, "mel": mel, "sigma": sigma, "t": t, "n": n}
        if self._graph is None:
            self._capture(inputs)
        for k, v in inputs.items():
            if v.shape != self._static[k].shape:
                raise ValueError(f"train.cuda_graphs: the captured step takes {k} of shape "
                                 f"{tuple(self._static[k].shape)}, got {tuple(v.shape)}")
            self._static[k].copy_(v, non_blocking=True)
        self._graph.replay()
        value = float(self._static["loss"])
        check(value)
        return value

    def _body(self) -> None:
        s = self._static
        self._static["loss"] = self.loss(s["x0"], s["mel"], DiagonalDraw(s["sigma"]), s["t"], s["n"])
        self._static["loss"].backward()
        self.optimizer.step()

    def _capture(self, inputs: dict[str, torch.Tensor]) -> None:
        """Warm up on a side stream, capture one step, then undo the warm-up's updates in place.

        The recipe of the PyTorch CUDA-graph docs (whole-network capture); the optimiser must have been
        built with capturable=True. Warm-up steps update the weights and Adam's moments; they are put
        back (in place: the graph holds their addresses) so the run's first step is the real one.
        """
        for group in self.optimizer.param_groups:
            if not group.get("capturable", False):
                raise ValueError("train.cuda_graphs: the optimiser must be built with capturable=True")
        self._static = {k: v.detach().clone() for k, v in inputs.items()}
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        saved_params = [p.detach().clone() for p in params]
        saved_state = {id(p): {k: v.detach().clone() for k, v in self.optimizer.state[p].items()
                               if torch.is_tensor(v)} for p in params if p in self.optimizer.state}
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                self.optimizer.zero_grad(set_to_none=True)
                self._body()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            self._body()
        torch.cuda.synchronize()
        with torch.no_grad():
            for p, saved in zip(params, saved_params):
                p.copy_(saved)
            for p in params:
                before = saved_state.get(id(p), {})
                for k, v in self.optimizer.state[p].items():
                    if torch.is_tensor(v):
                        # a state absent before the warm-up is a fresh Adam's: zeros (moments, step)
                        v.copy_(before[k]) if k in before else v.zero_()
        self._graph = graph
        log.info("captured the training step in a CUDA graph")


def make_optimizer(model: torch.nn.Module, learning_rate: float, cuda_graphs: bool) -> torch.optim.Adam:
    """Adam as the official code sets it; capturable (state on the device) when the step is a CUDA graph."""
    if cuda_graphs:
        return torch.optim.Adam(model.parameters(), lr=learning_rate, capturable=True)
    return torch.optim.Adam(model.parameters(), lr=learning_rate)


def make_capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """After loading a checkpoint written without CUDA graphs: capturable flag and device-resident steps."""
    for group in optimizer.param_groups:
        group["capturable"] = True
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            if "step" in state and torch.is_tensor(state["step"]):
                state["step"] = state["step"].to(device=device, dtype=torch.float32)
