"""Mel metrics of the acoustic model (spec section 11), on ln-mels of equal length (E1 / E2).

- mel_l1: mean |gen - gt| over bins and real frames (official validation metric).
- mel_cd: (10 / ln 10) * sqrt(2 * sum_{d=1..24} (c_d - c'_d)^2) per frame, averaged over frames, with
  c = orthonormal DCT-II of the ln-mel frame (c_0, the level, excluded).
- gv_ratio: mean over bins of var_frames(gen) / var_frames(gt) (1 = as much variation as the
  recording; L1 rewards blur, so a low L1 with a low gv_ratio is an over-smoothed mel).
- floor: mel_l1 of the prior mean alone (mu_ph gathered by the ground-truth durations).
"""
from __future__ import annotations

import numpy as np
from scipy.fft import dct

CD_COEFFS = 24


def _check(gen: np.ndarray, gt: np.ndarray) -> None:
    if gen.shape != gt.shape or gen.ndim != 2:
        raise ValueError(f"mel metrics need two (80, frames) mels of equal shape, got {gen.shape} and {gt.shape}")


def mel_l1(gen: np.ndarray, gt: np.ndarray) -> float:
    _check(gen, gt)
    return float(np.mean(np.abs(gen - gt)))


def mel_cd(gen: np.ndarray, gt: np.ndarray, n_coeffs: int = CD_COEFFS) -> float:
    _check(gen, gt)
    c1 = dct(gen, type=2, norm="ortho", axis=0)[1:n_coeffs + 1]
    c2 = dct(gt, type=2, norm="ortho", axis=0)[1:n_coeffs + 1]
    per_frame = (10.0 / np.log(10.0)) * np.sqrt(2.0 * np.sum((c1 - c2) ** 2, axis=0))
    return float(per_frame.mean())


def gv_ratio(gen: np.ndarray, gt: np.ndarray) -> float:
    _check(gen, gt)
    vg, vt = gen.var(axis=1), gt.var(axis=1)
    ok = vt > 1e-12
    return float(np.mean(vg[ok] / vt[ok])) if ok.any() else float("nan")


def mel_metrics(gen: np.ndarray, gt: np.ndarray, floor_mu: np.ndarray | None = None) -> dict[str, float]:
    out = {"mel_l1": mel_l1(gen, gt), "mel_cd": mel_cd(gen, gt), "gv_ratio": gv_ratio(gen, gt)}
    if floor_mu is not None:
        out["floor_mel_l1"] = mel_l1(floor_mu, gt)
    return out
