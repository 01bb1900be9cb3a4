"""Spectral distances: the multi-resolution STFT distance and LS-MAE on the project's log-mel.

mrstft follows the spec (and auraloss' MultiResolutionSTFTLoss with batch size 1): per resolution,
spectral convergence ||G| - |R||_F / ||R||_F plus mean |ln|G| - ln|R||, magnitudes floored at 1e-7,
centred reflect-padded Hann STFT, averaged over resolutions. Computed in float32 like auraloss
(float64 doubles the cost and changes the value by about 1e-6 relative).
"""
from __future__ import annotations

import numpy as np

from eval.pair import Pair
from eval.registry import MRSTFT_MAG_FLOOR, MRSTFT_RESOLUTIONS


def _magnitude(x, n_fft: int, hop: int, win: int):  # torch tensors in, out
    import torch

    window = torch.hann_window(win, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop, win, window, center=True, pad_mode="reflect", return_complex=True)
    # the magnitude floored at 1e-7 (auraloss floors the power at its eps: eps = 1e-14 is the same)
    return torch.clamp(spec.abs(), min=MRSTFT_MAG_FLOOR)


def mrstft_distance(ref: np.ndarray, gen: np.ndarray,
                    resolutions: tuple[tuple[int, int, int], ...] = MRSTFT_RESOLUTIONS) -> float:
    import torch

    min_len = max(n_fft // 2 for n_fft, _, _ in resolutions) + 1
    if len(ref) < min_len:
        raise ValueError(f"{len(ref)} samples is too short for the largest STFT resolution "
                         f"(needs at least {min_len} samples)")
    r = torch.from_numpy(np.asarray(ref, dtype=np.float32))
    g = torch.from_numpy(np.asarray(gen, dtype=np.float32))
    total = 0.0
    with torch.no_grad():
        for n_fft, hop, win in resolutions:
            rm, gm = _magnitude(r, n_fft, hop, win), _magnitude(g, n_fft, hop, win)
            sc = torch.linalg.norm(gm - rm) / torch.linalg.norm(rm)
            logmag = torch.mean(torch.abs(torch.log(gm / rm)))
            total += float(sc + logmag)
    return total / len(resolutions)


def mrstft(pair: Pair) -> float:
    return mrstft_distance(pair.require_reference(), pair.gen)


def ls_mae(pair: Pair) -> float:
    from priorgrad.core.audio import PRESETS, log_mel

    sr = PRESETS["hifigan"].sample_rate
    pair.require_reference()
    ref_mel = pair.memo("log_mel:ref", lambda: log_mel(pair.signal("ref", sr), preset="hifigan"))
    gen_mel = pair.memo("log_mel:gen", lambda: log_mel(pair.signal("gen", sr), preset="hifigan"))
    return float(np.mean(np.abs(gen_mel.astype(np.float64) - ref_mel.astype(np.float64))))
