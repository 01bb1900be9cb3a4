"""Frame-level features of one utterance for the acoustic model (spec section 3).

- mel: the project's one front-end (:mod:`priorgrad.core.audio`), taken from the vocoder features so the
  two are identical; N = floor(samples / 256).
- mel2ph: the 1-based token index of each frame (0 is reserved for padding).
- f0: pyworld dio + stonemask at hop 256 / 22050 Hz, fitted to N frames; z-scored with the training
  split's voiced mean/std (Hz); unvoiced frames linearly interpolated in the normalised domain; uv flag.
- energy: E = ||exp(mel_frame)||_2 (the official acoustic task's definition, not the vocoder's sqrt-sum).
"""
from __future__ import annotations

import numpy as np

# pyworld returns N+1 frames for a hop-trimmed clip (its frame 0 centres on sample 0); more than this
# many frames off means the audio and mel do not belong together.
MAX_F0_FRAME_MISMATCH = 2


class FeatureError(ValueError):
    """A feature cannot be computed; the message names the utterance."""


def mel2ph_from_durations(durations: np.ndarray) -> np.ndarray:
    """1-based token index per frame: token i (0-based) fills durations[i] frames with i + 1."""
    d = np.asarray(durations, dtype=np.int64)
    if d.ndim != 1 or (d < 0).any():
        raise ValueError(f"durations must be a 1-D array of non-negative ints, got {d}")
    return np.repeat(np.arange(1, len(d) + 1, dtype=np.int64), d)


def durations_from_mel2ph(mel2ph: np.ndarray, n_tokens: int) -> np.ndarray:
    """Inverse of :func:`mel2ph_from_durations` (padding frames, 0, are ignored)."""
    m = np.asarray(mel2ph, dtype=np.int64)
    return np.bincount(m[m > 0] - 1, minlength=n_tokens).astype(np.int64)


def f0_hz(audio: np.ndarray, n_frames: int, sample_rate: int, hop_length: int, utt: str = "<audio>",
          f0_floor: float = 71.0, f0_ceil: float = 800.0) -> np.ndarray:
    """Raw f0 in Hz per frame (0 = unvoiced), fitted to ``n_frames`` (pyworld dio + stonemask)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyworld 0.3.5 imports the deprecated pkg_resources
        import pyworld

    x = np.asarray(audio, dtype=np.float64)
    period_ms = hop_length / sample_rate * 1000.0
    f0, t = pyworld.dio(x, sample_rate, f0_floor=f0_floor, f0_ceil=f0_ceil, frame_period=period_ms)
    f0 = pyworld.stonemask(x, f0, t, sample_rate)
    delta = n_frames - len(f0)
    if abs(delta) > MAX_F0_FRAME_MISMATCH:
        raise FeatureError(f"utterance {utt}: pyworld gives {len(f0)} f0 frames for {n_frames} mel frames")
    if delta > 0:  # as the official code: repeat the last value
        f0 = np.concatenate([f0, np.full(delta, f0[-1] if len(f0) else 0.0)])
    return f0[:n_frames].astype(np.float32)


def normalise_f0(f0: np.ndarray, mean: float, std: float) -> tuple[np.ndarray, np.ndarray]:
    """(z-scored f0 with unvoiced frames linearly interpolated, uv flag 1.0 where unvoiced).

    At least one voiced frame is needed (an all-unvoiced utterance is dropped by the caller)."""
    f0 = np.asarray(f0, dtype=np.float64)
    uv = f0 <= 0
    if uv.all():
        raise FeatureError("no voiced frame")
    z = (f0 - mean) / std
    idx = np.arange(len(f0))
    z[uv] = np.interp(idx[uv], idx[~uv], z[~uv])  # ends: held at the nearest voiced value
    return z.astype(np.float32), uv.astype(np.float32)


def energy(mel: np.ndarray) -> np.ndarray:
    """E = ||exp(mel_frame)||_2 over the mel bins, per frame (float32, shape [frames])."""
    return np.linalg.norm(np.exp(np.asarray(mel, dtype=np.float64)), axis=0).astype(np.float32)
