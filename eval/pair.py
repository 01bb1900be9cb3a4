"""A reference/generated pair of one utterance, with the analysis its metrics share.

The length policy of ../shared/spec/metrics.md: the two waveforms may differ by at most one hop of
the front-end (256 samples at 22050 Hz, scaled to other rates) and are then trimmed to the shorter;
a larger difference means the vocoder produced the wrong length, which is an error, not something
to trim silently. Audio is compared as given: no normalisation here (the generator already
peak-normalises its output).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from eval.registry import REFERENCE_HOP, REFERENCE_RATE


class PairError(ValueError):
    """The pair cannot be scored at all (unreadable file, wrong length, rate mismatch)."""


def length_tolerance(sample_rate: int) -> int:
    """One front-end hop, in samples at ``sample_rate``."""
    return int(round(REFERENCE_HOP * sample_rate / REFERENCE_RATE))


def read_mono(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a wav as float32 mono in [-1, 1]; every error names the file.

    soundfile directly (not priorgrad.audio.read_wav, which has the same checks) so that worker
    processes scoring non-torch metrics do not pay torch's import.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise PairError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise PairError(f"{path}: file is empty (0 bytes)")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=False)
    except Exception as e:  # noqa: BLE001 - libsndfile's errors are terse; name the file
        raise PairError(f"{path}: cannot decode audio ({e})") from e
    if data.size == 0:
        raise PairError(f"{path}: audio has no samples")
    if data.ndim != 1:
        raise PairError(f"{path}: has {data.shape[1]} channels, expected mono")
    if not np.all(np.isfinite(data)):
        raise PairError(f"{path}: audio contains NaN or infinite samples")
    return data, int(sr)


def _check_waveform(wav: np.ndarray, name: str) -> np.ndarray:
    wav = np.ascontiguousarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        raise PairError(f"{name}: expected a 1-D waveform, got shape {wav.shape}")
    if wav.size == 0:
        raise PairError(f"{name}: waveform has no samples")
    if not np.all(np.isfinite(wav)):
        raise PairError(f"{name}: waveform contains NaN or infinite samples")
    return wav


class Pair:
    """Waveforms of one utterance plus a memo of shared analysis (resampled signals, WORLD tracks)."""

    def __init__(self, utt: str, ref: np.ndarray | None, gen: np.ndarray, sample_rate: int,
                 ref_name: str = "reference", gen_name: str = "generated") -> None:
        self.utt = utt
        self.sample_rate = int(sample_rate)
        self.ref_name, self.gen_name = ref_name, gen_name
        gen = _check_waveform(gen, gen_name)
        if ref is not None:
            ref = _check_waveform(ref, ref_name)
            diff = abs(len(ref) - len(gen))
            tol = length_tolerance(self.sample_rate)
            if diff > tol:
                raise PairError(
                    f"{gen_name}: length {len(gen)} samples differs from the reference {ref_name} "
                    f"({len(ref)} samples) by {diff} > one hop ({tol} samples at {self.sample_rate} Hz)")
            n = min(len(ref), len(gen))
            ref, gen = ref[:n], gen[:n]
        self.ref, self.gen = ref, gen
        self._memo: dict[str, Any] = {}

    @classmethod
    def from_files(cls, utt: str, ref_path: str | os.PathLike | None, gen_path: str | os.PathLike) -> "Pair":
        gen, sr = read_mono(gen_path)
        ref = None
        if ref_path is not None:
            ref, ref_sr = read_mono(ref_path)
            if ref_sr != sr:
                raise PairError(f"{gen_path}: sample rate {sr} Hz differs from the reference "
                                f"{ref_path} ({ref_sr} Hz)")
        return cls(utt, ref, gen, sr, ref_name=str(ref_path), gen_name=str(gen_path))

    def require_reference(self) -> np.ndarray:
        if self.ref is None:
            raise PairError(f"{self.gen_name}: this metric needs a reference recording")
        return self.ref

    def memo(self, key: str, fn: Callable[[], Any]) -> Any:
        """Compute shared analysis once per pair; a failure is remembered and re-raised for each user."""
        if key not in self._memo:
            try:
                self._memo[key] = (True, fn())
            except Exception as e:  # noqa: BLE001 - re-raised to every metric that needs this analysis
                self._memo[key] = (False, e)
        ok, value = self._memo[key]
        if not ok:
            raise value
        return value

    def signal(self, which: str, sample_rate: int | None = None) -> np.ndarray:
        """``which`` = "ref" or "gen", at ``sample_rate`` (resampled once with soxr HQ, then memoised)."""
        wav = self.require_reference() if which == "ref" else self.gen
        if sample_rate is None or sample_rate == self.sample_rate:
            return wav

        def _resample() -> np.ndarray:
            import soxr

            return soxr.resample(wav, self.sample_rate, sample_rate, quality="HQ").astype(np.float32)

        return self.memo(f"{which}@{sample_rate}", _resample)
