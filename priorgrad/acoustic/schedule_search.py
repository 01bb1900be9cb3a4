"""The official grid search for 2 / 6 / 12-step inference schedules (spec section 7), deterministic and capped.

Candidates (official task:579-711): beta_n = digit_n * e_n, where the digit string runs through the
decimal states 11...1, 11...1 + step, ... (G states, step = ceil(9^N / G)), states containing a 0 or
breaking the per-N ordering rules skipped. Counts: 73 (N = 2), 36,446 (N = 6), 16,046 (N = 12).
The states are enumerated here from the digit rules (not by walking all 9^9 states of N = 12), then
filtered by membership of the arithmetic progression. Objective: masked mel L1 of the N-step E2
sample (ground-truth durations, predicted f0 / energy) of the first test utterance, with ONE noise
seed for every candidate (the official code draws fresh noise per candidate). Unalignable candidates
are skipped and counted; an explicitly requested unalignable schedule raises ScheduleError.
"""
from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from tqdm import tqdm

from priorgrad.core.diffusion import ScheduleError, StepSchedule

# N -> (exponents e_n, grid size G, groups of digit positions that must be strictly increasing)
GRIDS: dict[int, tuple[list[float], int, list[tuple[int, ...]]]] = {
    2: ([0.1, 0.1], 9 ** 2, [(0,), (1,)]),
    6: ([1e-4, 1e-3, 1e-2, 0.1, 0.1, 0.1], 9 ** 6, [(0,), (1,), (2,), (3, 4, 5)]),
    12: ([1e-4, 1e-4, 1e-3, 1e-3] + [1e-2] * 4 + [0.1] * 4, 9 ** 9, [(0, 1), (2, 3), (4, 5, 6, 7), (8, 9, 10, 11)]),
}


def _group_options(positions: tuple[int, ...], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, digits) of a group: strictly increasing digits 1..9 over its positions."""
    combos = np.array(list(itertools.combinations(range(1, 10), len(positions))), dtype=np.int64)
    weights = np.array([10 ** (n - 1 - p) for p in positions], dtype=np.int64)
    return combos @ weights, combos


def grid_candidates(n_steps: int) -> np.ndarray:
    """All candidate beta schedules of the official grid for n_steps (2, 6 or 12), in the official order."""
    if n_steps not in GRIDS:
        raise ScheduleError(f"the schedule grid search supports 2, 6 or 12 steps, not {n_steps}")
    exps, size, groups = GRIDS[n_steps]
    start = int("1" * n_steps)
    step = math.ceil(9 ** n_steps / size)
    last = start + (size - 1) * step
    opts = [_group_options(g, n_steps) for g in groups]
    # Merge trailing groups into one vectorised tail; loop over the (few) head combinations.
    tail_vals, k = opts[-1][0], len(opts) - 1
    while k > 0 and len(tail_vals) * len(opts[k - 1][0]) <= 50_000:
        tail_vals = (opts[k - 1][0][:, None] + tail_vals[None, :]).ravel()
        k -= 1
    found = []
    for head in itertools.product(*[o[0] for o in opts[:k]]):
        total = int(sum(head)) + tail_vals
        ok = ((total - start) % step == 0) & (total >= start) & (total <= last)
        found.append(total[ok])
    states = np.sort(np.concatenate(found))
    digits = (states[:, None] // (10 ** np.arange(n_steps - 1, -1, -1, dtype=np.int64))[None, :]) % 10
    return digits.astype(np.float64) * np.asarray(exps)[None, :]


def capped(candidates: np.ndarray, max_candidates: int) -> np.ndarray:
    """At most max_candidates, evenly spaced over the official order (0 = all); deterministic."""
    if max_candidates <= 0 or len(candidates) <= max_candidates:
        return candidates
    idx = np.unique(np.round(np.linspace(0, len(candidates) - 1, max_candidates)).astype(np.int64))
    return candidates[idx]


def search_schedule(model, diffusion, model_cfg, table, utterance, f0_stats, device, n_steps: int,
                    max_candidates: int, seed: int, progress: bool = False, clip_x0: str = "none") -> dict[str, Any]:
    """Best N-step betas for the E2 sample of one utterance; returns the betas, their loss and counts."""
    from priorgrad.acoustic.metrics_mel import mel_l1
    from priorgrad.acoustic.sampler import sample_mels

    cands = capped(grid_candidates(n_steps), max_candidates)
    best: tuple[float, Any, Any, Any] = (math.inf, None, None, None)
    unalignable = 0
    for betas in tqdm(cands, desc=f"search {n_steps} steps", unit="cand", disable=not progress):
        try:
            eta, t = diffusion.schedule(list(betas))
        except ScheduleError:
            unalignable += 1
            continue
        res = sample_mels(model, diffusion, model_cfg, table, [utterance], StepSchedule(eta, t), [seed], "E2",
                          f0_stats, device, clip_x0=clip_x0)[0]
        loss = mel_l1(res["mel"], utterance.mel)
        if loss < best[0]:
            best = (loss, betas, t, eta)
    if best[1] is None:
        raise ScheduleError(f"no alignable {n_steps}-step candidate among {len(cands)}")
    return {"n_steps": n_steps, "betas": best[1].tolist(), "t": best[2].tolist(), "eta": best[3].tolist(),
            "mel_l1": best[0], "clip_x0": clip_x0,
            "n_candidates": int(len(grid_candidates(n_steps))), "n_evaluated": int(len(cands) - unalignable),
            "n_unalignable": unalignable, "seed": seed, "utterance": utterance.utt}
