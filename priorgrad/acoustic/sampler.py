"""The one sampling routine of the acoustic model (validation, synthesis, the schedule search and the
benchmark all call ``sample_mels``), its schedules (the few-step protocols) and the prior it samples from.

Apart from ``synthesize`` (files in, files out) and ``schedule_search`` (which samples candidates), so that
neither imports the other.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from priorgrad.acoustic.dataset import Utterance, collate
from priorgrad.acoustic.model import AcousticModel, TablePrior, apply_prior_mode
from priorgrad.acoustic.priors import acoustic_prior
from priorgrad.core.diffusion import Diffusion, ScheduleError, StepSchedule, strided_schedule

CONDITIONS = ("E1", "E2", "E3")

# The official 6-step inference betas (microsoft/NeuralSpeech@8cf4fbc PriorGrad-acoustic/configs/tts/
# priorgrad.yaml:43); the official code publishes no 2- or 12-step betas (only the search grids of
# schedule_search). Aligned to the T = 400 schedule they run at t~ = [2.684, 11.994, 30.254, 50.431, 115.745, 196.635].
OFFICIAL_BETAS: dict[int, list[float]] = {6: [0.001, 0.01, 0.05, 0.1, 0.5, 0.8]}


def make_schedule(diffusion: Diffusion, kind: str, steps: int, betas: Sequence[float] = ()) -> StepSchedule:
    """strided / uniform (t~ set directly), official (the official config's betas, 6 steps only) or explicit
    betas (aligned; ScheduleError when impossible). S = T is the training schedule under every protocol.
    ``searched`` needs a model: ``searched_schedule``."""
    if kind in ("strided", "uniform"):
        return strided_schedule(diffusion.betas, steps, "quadratic" if kind == "strided" else "uniform")
    if kind == "official":
        if steps == diffusion.num_steps:
            return strided_schedule(diffusion.betas, steps)
        if steps not in OFFICIAL_BETAS:
            raise ScheduleError(f"schedule 'official': the official code publishes betas for "
                                f"{sorted(OFFICIAL_BETAS)} steps only, not {steps} (use strided or searched)")
        eta, t = diffusion.schedule(list(OFFICIAL_BETAS[steps]))
        return StepSchedule(eta, t, f"official{steps}")
    if kind == "betas":
        eta, t = diffusion.schedule([float(b) for b in betas])
        return StepSchedule(eta, t, f"betas{len(eta)}")
    if kind == "searched":
        raise ValueError("schedule 'searched' is found per model: use searched_schedule(...)")
    raise ValueError(f"unknown schedule kind {kind!r} (strided | official | searched | uniform | betas)")


def x0_range_of(table: TablePrior | None, clip_x0: str, device: torch.device
                ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The sampler's x0 clip range (1, 80, 1) for acoustic.infer.clip_x0, or None for 'none'."""
    if clip_x0 == "none":
        return None
    if clip_x0 != "data_range":
        raise ValueError(f"acoustic.infer.clip_x0 must be none or data_range, got {clip_x0!r}")
    if table is None or table.mel_range is None:
        raise ValueError("acoustic.infer.clip_x0 is 'data_range' but the phoneme statistics carry no mel range "
                         "(mel_min / mel_max): re-run `priorgrad acoustic prior-stats` and retrain, or set "
                         "acoustic.infer.clip_x0: none")
    lo, hi = (torch.from_numpy(np.asarray(v, np.float32)).view(1, -1, 1).to(device) for v in table.mel_range)
    return lo, hi


def frame_ids(tokens: torch.Tensor, mel2ph: torch.Tensor) -> list[np.ndarray]:
    """Per utterance, the token id of each real frame (mel2ph 1-based, 0 = padding)."""
    out = []
    for tok, m in zip(tokens.cpu().numpy(), mel2ph.cpu().numpy()):
        m = m[m > 0]
        out.append(tok[m - 1])
    return out


@torch.no_grad()
def sample_mels(model: AcousticModel, diffusion: Diffusion, model_cfg, table: TablePrior | None,
                utts: Sequence[Utterance] | None, schedule: StepSchedule, seeds: Sequence[int], condition: str,
                f0_stats: tuple[float, float], device: torch.device, tokens: torch.Tensor | None = None,
                clip_x0: str = "none", clipped: list[float] | None = None, start_only: bool = False
                ) -> list[dict[str, np.ndarray]]:
    """Sample mels for a batch of utterances (or bare token sequences under E3).

    Returns per utterance {"mel": (80, n), "mu": (80, n) the prior mean used (zeros for B1),
    "s": (80, n) the prior's scale, "x_start": (80, n) the sampler's start point x_S + mu (= the
    system's prior draw in the data domain: mu + s n, learned mean + n, n), "mel2ph": (n,)}.
    Utterance i's noise comes from its own generator seeded by seeds[i], drawn at its own length, so the
    result does not depend on the batch it is in. ``clip_x0`` (acoustic.infer.clip_x0): none, or
    data_range (x0 clipped to the training mels' per-bin range, carried by ``table``); the clipped
    fraction of each step (mean over the batch's real elements) is appended to ``clipped``.
    ``start_only``: no denoising, "mel" = x_start (the system's prior draw: the acoustic floor), from the
    same preparation and noise as the sampler, so draw 0 is exactly the sampler's start.
    """
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {CONDITIONS}, got {condition!r}")
    if utts is not None:
        b = collate(utts)
        tokens = b["tokens"]
        gt = condition in ("E1", "E2")
        out = model.adapt(tokens.to(device), b["mel2ph"].to(device) if gt else None,
                          b["f0"].to(device) if condition == "E1" else None,
                          b["uv"].to(device) if condition == "E1" else None,
                          b["energy"].to(device) if condition == "E1" else None, *f0_stats)
    else:
        if condition != "E3" or tokens is None:
            raise ValueError("synthesis from bare tokens is only possible under E3 (everything predicted)")
        out = model.adapt(tokens.to(device), None, None, None, None, *f0_stats)
    mask, mel2ph = out["mask"], out["mel2ph"]
    bsz, n = mel2ph.shape
    lengths = (mel2ph > 0).sum(1).tolist()
    prior = acoustic_prior(model_cfg, table)
    frames: dict[str, torch.Tensor] = {}
    if prior.frame_prior is not None:  # the token-level table's per-frame moments (else the network's)
        mu_np = np.zeros((bsz, 80, n), np.float32)
        s_np = np.ones((bsz, 80, n), np.float32)
        for i, ids in enumerate(frame_ids(tokens, mel2ph)):
            m, sd = apply_prior_mode(*prior.frame_prior.frame_stats(ids), model_cfg.prior_mode)
            mu_np[i, :, :len(ids)], s_np[i, :, :len(ids)] = m, sd
        frames = {"mu": torch.from_numpy(mu_np).to(device), "s": torch.from_numpy(s_np).to(device)}
    mu, s = prior.moments(frames, out)
    draw = prior.condition(mu, s)
    gens = [torch.Generator().manual_seed(int(x)) for x in seeds]

    def noise(_k: int) -> torch.Tensor:
        z = torch.zeros(bsz, 80, n)
        for i, g in enumerate(gens):
            z[i, :, :lengths[i]] = torch.randn(80, lengths[i], generator=g)
        return z.to(device)

    starts: list[torch.Tensor] = []

    def noise_kept(k: int) -> torch.Tensor:
        z = noise(k)
        if k == 0:
            starts.append(z)
        return z

    cond_proj = model.decoder.condition(out["cond"])  # once per utterance, not once per step
    x0_range = None if start_only else x0_range_of(table, clip_x0, device)
    if start_only:
        noise_kept(0)
        mel = (draw.draw(starts[0]) + draw.mean()) * mask
    else:
        mel = diffusion.sample(lambda x, _c, t: model.decoder.denoise(x, cond_proj, t, mask), None, draw, schedule,
                               noise=noise_kept, clamp=False, mask=mask, x0_range=x0_range, clipped=clipped)
    start = (draw.draw(starts[0]) + draw.mean()) * mask
    mel, mu = mel.float().cpu().numpy(), (mu * mask).float().cpu().numpy()
    s_np, start = s.float().cpu().numpy(), start.float().cpu().numpy()
    m2p = mel2ph.cpu().numpy()
    return [{"mel": mel[i, :, :lengths[i]].copy(), "mu": mu[i, :, :lengths[i]].copy(),
             "s": s_np[i, :, :lengths[i]].copy(), "x_start": start[i, :, :lengths[i]].copy(),
             "mel2ph": m2p[i, :lengths[i]].copy()} for i in range(bsz)]
