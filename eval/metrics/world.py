"""WORLD-based metrics: MCD, F0 RMSE (cents) and V/UV error from one analysis per signal.

F0 is tracked with dio + stonemask (the spec allows it instead of harvest; harvest costs about
20x more CPU for this corpus). The spectral envelope (cheaptrick) reuses the same F0 track, and both
signals have the same length, so frames are time-aligned without DTW (vocoder setting).

Under ``--align dtw`` (text-to-speech output, whose length and timing differ from the recording) the
whole files are compared instead: each is trimmed of leading and trailing silence, analysed alone,
and its frames are paired along a DTW path on the mel-cepstra (c1..c24, Euclidean, symmetric2); the
three metrics are then the same formulas over the path's frame pairs (registry.DTW_SETTINGS).
"""
from __future__ import annotations

import functools
import math
import warnings

import numpy as np

from eval.pair import Pair
from eval.registry import DTW_SETTINGS, MCD_SETTINGS, REFERENCE_RATE, WORLD_SETTINGS

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


def _speech(pair: Pair, side: str) -> np.ndarray:
    """The whole file of ``side`` ("ref"/"gen"), its leading and trailing silence trimmed (DTW only):
    silence the two files do not share would otherwise be warped onto one frame of the other."""
    def run() -> np.ndarray:
        import librosa

        x = pair.reference_full() if side == "ref" else pair.gen_full
        trim = DTW_SETTINGS["silence_trimming"]
        scale = pair.sample_rate / REFERENCE_RATE
        frame = max(16, int(round(trim["frame_length_at_22050_hz"] * scale)))
        hop = max(4, int(round(trim["hop_length_at_22050_hz"] * scale)))
        y, _ = librosa.effects.trim(x, top_db=trim["top_db"], frame_length=frame, hop_length=hop)
        if len(y) < frame:
            name = pair.ref_name if side == "ref" else pair.gen_name
            raise ValueError(f"{name}: {len(y)} samples left after trimming silence "
                             f"(top_db {trim['top_db']}): too short or silent for DTW")
        return y

    return pair.memo(f"speech:{side}", run)


def _signal(pair: Pair, which: str) -> np.ndarray:
    if which.endswith("_speech"):
        return _speech(pair, which.split("_")[0])
    return pair.signal(which)


def _f0(pair: Pair, which: str) -> tuple[np.ndarray, np.ndarray]:
    def run() -> tuple[np.ndarray, np.ndarray]:
        pyworld, _ = _import_world()
        x = np.ascontiguousarray(_signal(pair, which), dtype=np.float64)
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
        x = np.ascontiguousarray(_signal(pair, which), dtype=np.float64)
        f0, t = _f0(pair, which)
        sp = pyworld.cheaptrick(x, f0, t, pair.sample_rate, f0_floor=WORLD_SETTINGS["f0_floor_hz"])
        return sp2mc(sp, int(MCD_SETTINGS["order"]), mcep_alpha(pair.sample_rate))

    return pair.memo(f"world_mcep:{which}", run)


def _dtw(pair: Pair) -> bool:
    return pair.alignment is not None and pair.alignment.method == "dtw"


def dtw_path(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices (ref, gen) of the DTW path between the silence-trimmed files' mel-cepstra, in time order."""
    def run() -> tuple[np.ndarray, np.ndarray]:
        from librosa.sequence import dtw

        pair.reference_full()
        ref, gen = _mcep(pair, "ref_speech"), _mcep(pair, "gen_speech")
        # symmetric2 (diagonal step weighted 2): a diagonal costs what the two steps it replaces cost, so the
        # path follows the timing instead of preferring the diagonal (librosa's default weights)
        _, wp = dtw(X=ref[:, 1:].T, Y=gen[:, 1:].T, metric="euclidean",
                    step_sizes_sigma=np.array([[1, 1], [0, 1], [1, 0]]), weights_add=np.zeros(3),
                    weights_mul=np.array([2.0, 1.0, 1.0]))
        wp = wp[::-1]
        return np.ascontiguousarray(wp[:, 0]), np.ascontiguousarray(wp[:, 1])

    return pair.memo("dtw_path", run)


def dtw_record(pair: Pair) -> dict[str, float]:
    """What --align dtw records per utterance: speech durations after trimming, their ratio, the path length."""
    i, _ = dtw_path(pair)
    ref_s = len(_speech(pair, "ref")) / pair.sample_rate
    gen_s = len(_speech(pair, "gen")) / pair.sample_rate
    return {"ref_speech_s": ref_s, "gen_speech_s": gen_s, "duration_ratio": gen_s / ref_s,
            "path_frames": float(len(i))}


def _mcd_frames(ref: np.ndarray, gen: np.ndarray) -> np.ndarray:
    diff = ref[:, 1:] - gen[:, 1:]  # c0 (energy) excluded
    return _MCD_FACTOR * np.sqrt(2.0 * np.sum(diff ** 2, axis=1))


def mcd(pair: Pair) -> float:
    if _dtw(pair):
        i, j = dtw_path(pair)
        return float(np.mean(_mcd_frames(_mcep(pair, "ref_speech")[i], _mcep(pair, "gen_speech")[j])))
    pair.require_reference()
    ref, gen = _mcep(pair, "ref"), _mcep(pair, "gen")
    n = min(len(ref), len(gen))
    return float(np.mean(_mcd_frames(ref[:n], gen[:n])))


def _tracks(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """Paired F0 values: frame by frame, or along the DTW path under --align dtw."""
    if _dtw(pair):
        i, j = dtw_path(pair)
        return _f0(pair, "ref_speech")[0][i], _f0(pair, "gen_speech")[0][j]
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
