"""Mel -> audio for the acoustic model's output (spec section 11).

- ``griffin_lim`` (offline default, needs no training): the ln-mel is mapped back to linear mel
  magnitude with the project front-end's filterbank (non-negative least squares), then librosa's
  Griffin-Lim (60 iterations, centred frames). Our frames centre at f*256 + 128 (the hifigan
  front-end pads (n_fft - hop) / 2 = 384 and does not centre), librosa's centred frames at f*256,
  so 128 zeros are prepended: a lag-0 cross-correlation test confirms the alignment.
- ``priorgrad``: a trained vocoder checkpoint of this project (priorgrad/vocoder/infer.py's ``generate``),
  per-utterance seeds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from priorgrad.core.audio import get_preset, mel_to_linear_magnitude, preset_filterbank
from priorgrad.core.seeds import utterance_seed


def mel_to_stft_magnitude(mel_mag: np.ndarray, fb: np.ndarray, n_iter: int = 100) -> np.ndarray:
    """Non-negative least squares fb @ S = mel by multiplicative updates (Lee & Seung), from fb^T mel.

    Why not librosa.util.nnls: its L-BFGS-B takes ~15 s for 2 s of audio on this CPU; 100 updates
    take ~0.1 s and reach a relative mel error of ~1e-4 on speech.
    """
    b = fb.T @ mel_mag
    gram = fb.T @ fb
    s = np.maximum(b, 1e-12)
    for _ in range(n_iter):
        s *= b / np.maximum(gram @ s, 1e-12)
    return s


def griffin_lim(mel: np.ndarray, n_iter: int = 60, seed: int = 0, preset: str = "hifigan") -> np.ndarray:
    """ln-mel (80, N) -> waveform of N * hop samples, time-aligned with the audio the mel came from."""
    import librosa

    p = get_preset(preset)
    mel = np.asarray(mel, dtype=np.float64)
    if mel.ndim != 2 or mel.shape[0] != p.n_mels:
        raise ValueError(f"griffin_lim expects a ({p.n_mels}, frames) mel, got {mel.shape}")
    if not np.all(np.isfinite(mel)):
        raise ValueError("griffin_lim: the mel contains NaN or infinite values")
    shift = p.n_fft // 2 - p.pad  # 512 - 384 = 128 samples
    mag = mel_to_stft_magnitude(mel_to_linear_magnitude(mel, p.name), preset_filterbank(p).astype(np.float64))
    n = mel.shape[1] * p.hop_length
    wav = librosa.griffinlim(mag, n_iter=n_iter, hop_length=p.hop_length, win_length=p.win_length, n_fft=p.n_fft,
                             window="hann", center=True, length=n - shift,
                             random_state=np.random.RandomState(seed % (2 ** 32)))
    return np.concatenate([np.zeros(shift), wav]).astype(np.float32)


class Vocoder:
    """A named mel -> waveform function; ``key`` seeds stochastic vocoders per utterance."""

    def __init__(self, name: str, fn: Callable[[np.ndarray, str], np.ndarray]):
        self.name, self._fn = name, fn

    def __call__(self, mel: np.ndarray, key: str) -> np.ndarray:
        return self._fn(mel, key)


def make_vocoder(kind: str, checkpoint: str | Path | None, infer_cfg, seed: int, device) -> Vocoder:
    """griffin_lim, or priorgrad with a vocoder checkpoint of this project."""
    if kind == "griffin_lim":
        return Vocoder("griffin_lim", lambda mel, key: griffin_lim(mel, infer_cfg.griffin_lim_iters,
                                                                   utterance_seed(seed, key) % (2 ** 32)))
    if kind != "priorgrad":
        raise ValueError(f"unknown vocoder {kind!r} (griffin_lim | priorgrad)")
    if checkpoint is None:
        raise ValueError("vocoder 'priorgrad' needs a vocoder checkpoint (--vocoder-checkpoint)")
    from priorgrad.core import registry

    render = registry.renderer("priorgrad")(checkpoint, infer_cfg.vocoder_steps, seed, device)
    return Vocoder(f"priorgrad:{Path(checkpoint).name}", render)
