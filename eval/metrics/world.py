"""WORLD-based metrics: MCD, F0 RMSE (cents) and V/UV error from one analysis per signal.

F0 is tracked with dio + stonemask (the spec allows it instead of harvest; harvest costs about
20x more CPU for this corpus). The spectral envelope (cheaptrick) reuses the same F0 track, and both
signals have the same length, so frames are time-aligned without DTW (vocoder setting).
"""
from __future__ import annotations

import functools
import math
import warnings

import numpy as np

from eval.pair import Pair
from eval.registry import MCD_SETTINGS, WORLD_SETTINGS

_MCD_FACTOR = 10.0 / math.log(10.0)


def _import_world():
    # pyworld 0.3.5 and pysptk 1.0.1 import the deprecated pkg_resources; its warning is noise here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        import pysptk
        import pyworld
    return pyworld, pysptk


def mcep_alpha(sample_rate: int) -> float:
    if sample_rate == 22050:
        return float(MCD_SETTINGS["alpha_at_22050"])
    _, pysptk = _import_world()
    return float(pysptk.util.mcepalpha(sample_rate))


def _f0(pair: Pair, which: str) -> tuple[np.ndarray, np.ndarray]:
    def run() -> tuple[np.ndarray, np.ndarray]:
        pyworld, _ = _import_world()
        x = np.ascontiguousarray(pair.signal(which), dtype=np.float64)
        fs = pair.sample_rate
        f0, t = pyworld.dio(x, fs, f0_floor=WORLD_SETTINGS["f0_floor_hz"], f0_ceil=WORLD_SETTINGS["f0_ceil_hz"],
                            frame_period=WORLD_SETTINGS["frame_period_ms"])
        return pyworld.stonemask(x, f0, t, fs), t

    return pair.memo(f"world_f0:{which}", run)


@functools.lru_cache(maxsize=8)
def _freqt_matrix(n_in: int, order: int, alpha: float) -> np.ndarray:
    """pysptk.freqt is linear in its input: its matrix, built from pysptk.freqt of unit vectors."""
    _, pysptk = _import_world()
    eye = np.eye(n_in)
    return np.stack([pysptk.freqt(eye[i], order, alpha) for i in range(n_in)], axis=1)


def sp2mc(sp: np.ndarray, order: int, alpha: float) -> np.ndarray:
    """pysptk.sp2mc for all frames at once (same maths, one matrix product instead of a Python loop).

    pysptk.sp2mc: c = irfft(log(sp)); c[0] /= 2; freqt(c, order, alpha), frame by frame.
    """
    c = np.fft.irfft(np.log(sp), axis=-1)
    c[..., 0] /= 2.0
    return c @ _freqt_matrix(c.shape[-1], order, alpha).T


def _mcep(pair: Pair, which: str) -> np.ndarray:
    def run() -> np.ndarray:
        pyworld, _ = _import_world()
        x = np.ascontiguousarray(pair.signal(which), dtype=np.float64)
        f0, t = _f0(pair, which)
        sp = pyworld.cheaptrick(x, f0, t, pair.sample_rate, f0_floor=WORLD_SETTINGS["f0_floor_hz"])
        return sp2mc(sp, int(MCD_SETTINGS["order"]), mcep_alpha(pair.sample_rate))

    return pair.memo(f"world_mcep:{which}", run)


def mcd(pair: Pair) -> float:
    pair.require_reference()
    ref, gen = _mcep(pair, "ref"), _mcep(pair, "gen")
    n = min(len(ref), len(gen))
    diff = ref[:n, 1:] - gen[:n, 1:]  # c0 (energy) excluded
    return float(np.mean(_MCD_FACTOR * np.sqrt(2.0 * np.sum(diff ** 2, axis=1))))


def _tracks(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    pair.require_reference()
    ref, _ = _f0(pair, "ref")
    gen, _ = _f0(pair, "gen")
    n = min(len(ref), len(gen))
    return ref[:n], gen[:n]


def f0_rmse(pair: Pair) -> float:
    ref, gen = _tracks(pair)
    voiced = (ref > 0) & (gen > 0)
    if not np.any(voiced):
        raise ValueError(f"{pair.gen_name}: no frame is voiced in both reference and generated audio")
    cents = 1200.0 * np.log2(gen[voiced] / ref[voiced])
    return float(np.sqrt(np.mean(cents ** 2)))


def vuv_error(pair: Pair) -> float:
    ref, gen = _tracks(pair)
    return float(np.mean((ref > 0) != (gen > 0)))
