"""A reference/generated pair of one utterance, with the analysis its metrics share.

The length policy of ../shared/spec/metrics.md: the two waveforms may differ by at most one hop of
the front-end (256 samples at 22050 Hz, scaled to other rates) and are then trimmed to the shorter;
a larger difference means the vocoder produced the wrong length, which is an error, not something
to trim silently. Audio is compared as given: no normalisation here (the generator already
peak-normalises its output).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from eval.registry import REFERENCE_HOP, REFERENCE_RATE


class PairError(ValueError):
    """The pair cannot be scored at all (unreadable file, wrong length, rate mismatch)."""


def length_tolerance(sample_rate: int, hops: float = 1.0) -> int:
    """``hops`` front-end hops (256 samples at 22050 Hz), in samples at ``sample_rate``."""
    return int(round(hops * REFERENCE_HOP * sample_rate / REFERENCE_RATE))


@dataclass(frozen=True)
class LengthPolicy:
    """How far a generated file's length may differ from its reference's before it is an error.

    Exactly one of ``hops`` (front-end hops, scaled to the files' rate) or ``samples`` (absolute).
    Within the tolerance both signals are trimmed to the shorter.
    """

    hops: float | None = None
    samples: int | None = None

    def __post_init__(self) -> None:
        if (self.hops is None) == (self.samples is None):
            raise ValueError("LengthPolicy: give exactly one of hops or samples")
        value = self.hops if self.hops is not None else self.samples
        if value is None or value < 0:
            raise ValueError(f"length tolerance must be >= 0, got {value}")

    def tolerance(self, sample_rate: int) -> int:
        if self.samples is not None:
            return int(self.samples)
        return length_tolerance(sample_rate, float(self.hops))  # type: ignore[arg-type]

    def describe(self) -> str:
        if self.samples is not None:
            return f"{self.samples} samples"
        return f"{self.hops:g} hop{'' if self.hops == 1 else 's'}"

    def info(self) -> dict[str, Any]:
        """What summaries record: the tolerance as given and in samples at the reference rate."""
        return {"tolerance": self.describe(), "hops": self.hops, "samples": self.samples,
                "tolerance_samples_at_22050_hz": self.tolerance(REFERENCE_RATE),
                "within_tolerance": "both trimmed to the shorter",
                "beyond_tolerance": "error for every metric that needs the reference",
                "reference_free_metrics": "score the generated audio as given (no length check)"}


SPEC_LENGTH_POLICY = LengthPolicy(hops=1.0)  # ../shared/spec/metrics.md: at most one hop


def parse_length_tolerance(text: str) -> LengthPolicy:
    """"1hop", "3 hops", "2.5hops" (front-end hops) or "768" / "768samples" (samples)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(hops?|samples?)?\s*", str(text))
    if not m:
        raise ValueError(f"length tolerance {text!r}: expected e.g. '1hop', '4hops' or '1024' (samples)")
    number, unit = m.group(1), (m.group(2) or "samples")
    if unit.startswith("hop"):
        return LengthPolicy(hops=float(number))
    if "." in number:
        raise ValueError(f"length tolerance {text!r}: a number of samples must be a whole number")
    return LengthPolicy(samples=int(number))


def read_mono(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a wav as float32 mono in [-1, 1]; every error names the file (the project's one reader,
    ``priorgrad.audio.read_wav``, which imports no torch, so scoring workers stay light)."""
    from priorgrad.audio import AudioError, read_wav

    try:
        data, sr = read_wav(path)
    except AudioError as e:
        raise PairError(str(e)) from e
    if data.ndim != 1:
        raise PairError(f"{path}: has {data.shape[1]} channels, expected mono")
    return data, sr


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
    """Waveforms of one utterance plus a memo of shared analysis (resampled signals, WORLD tracks).

    ``gen``/``ref`` are the trimmed pair the reference metrics compare; ``gen_full`` is the generated
    audio as given, which reference-free metrics score. A reference that cannot be used (length
    beyond the policy, another sample rate, unreadable) is remembered as ``ref_error`` and raised by
    ``require_reference``, so only the metrics that need it fail.
    """

    def __init__(self, utt: str, ref: np.ndarray | None, gen: np.ndarray, sample_rate: int,
                 ref_name: str = "reference", gen_name: str = "generated",
                 length_policy: LengthPolicy = SPEC_LENGTH_POLICY, ref_error: str | None = None) -> None:
        self.utt = utt
        self.sample_rate = int(sample_rate)
        self.ref_name, self.gen_name = ref_name, gen_name
        self.length_policy = length_policy
        self.ref_error = ref_error
        gen = _check_waveform(gen, gen_name)
        self.gen_full = gen
        if ref is not None and ref_error is None:
            try:
                ref = _check_waveform(ref, ref_name)
            except PairError as e:
                ref, self.ref_error = None, str(e)
        if ref is not None and self.ref_error is None:
            diff = abs(len(ref) - len(gen))
            tol = length_policy.tolerance(self.sample_rate)
            if diff > tol:
                self.ref_error = (
                    f"{gen_name}: length {len(gen)} samples differs from the reference {ref_name} "
                    f"({len(ref)} samples) by {diff} > the length tolerance {length_policy.describe()} "
                    f"({tol} samples at {self.sample_rate} Hz; see --length-tolerance)")
                ref = None
            else:
                n = min(len(ref), len(gen))
                ref, gen = ref[:n], gen[:n]
        elif self.ref_error is not None:
            ref = None
        self.ref, self.gen = ref, gen
        self._memo: dict[str, Any] = {}

    @classmethod
    def from_files(cls, utt: str, ref_path: str | os.PathLike | None, gen_path: str | os.PathLike,
                   length_policy: LengthPolicy = SPEC_LENGTH_POLICY) -> "Pair":
        """An unreadable generated file raises PairError; a reference problem fails only reference metrics."""
        gen, sr = read_mono(gen_path)
        ref, ref_error = None, None
        if ref_path is not None:
            try:
                ref, ref_sr = read_mono(ref_path)
                if ref_sr != sr:
                    ref, ref_error = None, (f"{gen_path}: sample rate {sr} Hz differs from the reference "
                                            f"{ref_path} ({ref_sr} Hz)")
            except PairError as e:
                ref_error = str(e)
        return cls(utt, ref, gen, sr, ref_name=str(ref_path), gen_name=str(gen_path),
                   length_policy=length_policy, ref_error=ref_error)

    def require_reference(self) -> np.ndarray:
        if self.ref_error is not None:
            raise PairError(self.ref_error)
        if self.ref is None:
            raise PairError(f"{self.gen_name}: this metric needs a reference recording (none given)")
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
        """``which`` = "ref", "gen" (trimmed to the reference) or "gen_full" (as given), at ``sample_rate``
        (resampled once with soxr HQ, then memoised)."""
        if which not in ("ref", "gen", "gen_full"):
            raise ValueError(f"Pair.signal: unknown signal {which!r}")
        wav = self.require_reference() if which == "ref" else (self.gen_full if which == "gen_full" else self.gen)
        if sample_rate is None or sample_rate == self.sample_rate:
            return wav

        def _resample() -> np.ndarray:
            import soxr

            return soxr.resample(wav, self.sample_rate, sample_rate, quality="HQ").astype(np.float32)

        return self.memo(f"{which}@{sample_rate}", _resample)
