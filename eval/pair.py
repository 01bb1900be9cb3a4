"""A reference/generated pair of one utterance, with the analysis its metrics share.

The length policy of ../shared/spec/metrics.md: the two waveforms may differ by at most one hop of
the front-end (256 samples at 22050 Hz, scaled to other rates) and are then trimmed to the shorter;
a larger difference means the vocoder produced the wrong length, which is an error, not something
to trim silently. Audio is compared as given: no normalisation here (the generator already
peak-normalises its output).

An ``Alignment`` (``--align``) changes that for outputs that are not sample-aligned by design:
``lag`` shifts the generated file by its cross-correlation lag with the reference (a vocoder's
constant delay) before every reference metric; ``dtw`` lets the WORLD metrics (MCD, F0, V/UV) compare
the whole files along a dynamic-time-warping path (eval.metrics.world), while the sample-aligned
metrics keep the length policy.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from eval.registry import DTW_SETTINGS, LAG_SETTINGS, REFERENCE_HOP, REFERENCE_RATE, package_version


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


def _parse_span(text: str, what: str) -> tuple[float | None, int | None]:
    """"1hop", "3 hops", "2.5hops" -> (hops, None); "768" / "768samples" -> (None, samples)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(hops?|samples?)?\s*", str(text))
    if not m:
        raise ValueError(f"{what} {text!r}: expected e.g. '1hop', '4hops' or '1024' (samples)")
    number, unit = m.group(1), (m.group(2) or "samples")
    if unit.startswith("hop"):
        return float(number), None
    if "." in number:
        raise ValueError(f"{what} {text!r}: a number of samples must be a whole number")
    return None, int(number)


def parse_length_tolerance(text: str) -> LengthPolicy:
    """"1hop", "3 hops", "2.5hops" (front-end hops) or "768" / "768samples" (samples)."""
    hops, samples = _parse_span(text, "length tolerance")
    return LengthPolicy(hops=hops, samples=samples)


ALIGN_METHODS = ("dtw", "lag")
DEFAULT_MAX_LAG = "8hops"  # 2048 samples (93 ms) at 22050 Hz: published vocoders' delays are a few hops


@dataclass(frozen=True)
class Alignment:
    """How each generated file is aligned to its reference before the reference metrics (``--align``).

    ``dtw``: the WORLD metrics (mcd, f0_rmse, vuv_error) compare the whole files, silence-trimmed, along a
    DTW path on mel-cepstra (for text-to-speech output of another length); the sample-aligned metrics keep
    the length policy. ``lag``: the generated file is shifted by the lag (|lag| <= max_lag, in front-end
    hops or samples like the length tolerance) that maximises its cross-correlation with the reference,
    and every reference metric scores the overlap (for vocoders with a constant delay).
    """

    method: str
    max_lag_hops: float | None = None
    max_lag_samples: int | None = None

    def __post_init__(self) -> None:
        if self.method not in ALIGN_METHODS:
            raise ValueError(f"alignment {self.method!r}: choose from {', '.join(ALIGN_METHODS)}")
        given = (self.max_lag_hops is not None) + (self.max_lag_samples is not None)
        if self.method == "lag" and given != 1:
            raise ValueError("Alignment('lag'): give exactly one of max_lag_hops or max_lag_samples")
        if self.method == "dtw" and given:
            raise ValueError("Alignment('dtw'): a maximum lag applies to --align lag only")
        for v in (self.max_lag_hops, self.max_lag_samples):
            if v is not None and v < 0:
                raise ValueError(f"maximum lag must be >= 0, got {v}")

    def max_lag(self, sample_rate: int) -> int:
        if self.max_lag_samples is not None:
            return int(self.max_lag_samples)
        return length_tolerance(sample_rate, float(self.max_lag_hops or 0.0))

    def describe_max_lag(self) -> str:
        if self.max_lag_samples is not None:
            return f"{self.max_lag_samples} samples"
        return f"{self.max_lag_hops:g} hop{'' if self.max_lag_hops == 1 else 's'}"

    def info(self) -> dict[str, Any]:
        """What summaries record under each reference metric's ``settings.alignment``."""
        if self.method == "dtw":
            return {"method": "dtw", **DTW_SETTINGS, "version": f"librosa {package_version('librosa')}"}
        return {"method": "lag", **LAG_SETTINGS, "max_lag": self.describe_max_lag(),
                "max_lag_samples_at_22050_hz": self.max_lag(REFERENCE_RATE),
                "version": f"scipy {package_version('scipy')}"}

    @property
    def cache_version(self) -> str:
        """Part of the cache key of every score made under this alignment (settings and versions)."""
        return json.dumps(self.info(), sort_keys=True, default=str)


def parse_alignment(method: str | None, max_lag: str | None = None) -> Alignment | None:
    """``--align`` and ``--max-lag`` -> an Alignment (None: sample-aligned, the spec's policy)."""
    if method is None:
        if max_lag is not None:
            raise ValueError("--max-lag applies to --align lag only")
        return None
    if method != "lag":
        if max_lag is not None:
            raise ValueError(f"--max-lag applies to --align lag only, not --align {method}")
        return Alignment(method)
    hops, samples = _parse_span(max_lag if max_lag is not None else DEFAULT_MAX_LAG, "maximum lag")
    return Alignment("lag", max_lag_hops=hops, max_lag_samples=samples)


def estimate_lag(ref: np.ndarray, gen: np.ndarray, max_lag: int) -> int:
    """The lag (samples; > 0: the generated audio is late) maximising sum_t gen[t + lag] * ref[t], |lag| <= max_lag."""
    from scipy.signal import correlate, correlation_lags

    c = correlate(gen.astype(np.float64), ref.astype(np.float64), mode="full", method="fft")
    lags = correlation_lags(len(gen), len(ref), mode="full")
    window = np.abs(lags) <= max_lag
    best = int(np.argmax(np.where(window, c, -np.inf)))
    if not c[best] > 0:
        raise PairError(f"no positive cross-correlation between the files within a lag of {max_lag} samples "
                        f"(silent, or unrelated audio)")
    return int(lags[best])


def read_mono(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a wav as float32 mono in [-1, 1]; every error names the file (the project's one reader,
    ``priorgrad.core.audio.read_wav``, which imports no torch, so scoring workers stay light)."""
    from priorgrad.core.audio import AudioError, read_wav

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

    ``gen``/``ref`` are the trimmed pair the reference metrics compare (under ``--align lag``: shifted by
    ``lag`` and cut to their overlap); ``gen_full`` is the generated audio as given, which reference-free
    metrics score, and ``ref_full`` the reference as given, which the DTW metrics compare with it. A
    reference that cannot be used (length beyond the policy, another sample rate, unreadable) is
    remembered as ``ref_error`` and raised by ``require_reference``, so only the metrics that need it fail;
    ``reference_full`` fails only for the problems a length difference is not. ``text`` is what the
    utterance says (for the intelligibility metrics), when known.
    """

    def __init__(self, utt: str, ref: np.ndarray | None, gen: np.ndarray, sample_rate: int,
                 ref_name: str = "reference", gen_name: str = "generated",
                 length_policy: LengthPolicy = SPEC_LENGTH_POLICY, ref_error: str | None = None,
                 alignment: Alignment | None = None, text: str | None = None) -> None:
        self.utt = utt
        self.sample_rate = int(sample_rate)
        self.ref_name, self.gen_name = ref_name, gen_name
        self.length_policy = length_policy
        self.alignment = alignment
        self.text = text
        self.lag: int | None = None  # samples the generated audio is late by (--align lag)
        self.ref_error = ref_error
        gen = _check_waveform(gen, gen_name)
        self.gen_full = gen
        if ref is not None and ref_error is None:
            try:
                ref = _check_waveform(ref, ref_name)
            except PairError as e:
                ref, self.ref_error = None, str(e)
        # the reference as given, before the length policy (None when unusable for another reason)
        self.ref_full = ref if self.ref_error is None else None
        self.ref_full_error = self.ref_error
        if ref is not None and self.ref_error is None:
            slack = 0
            if alignment is not None and alignment.method == "lag":
                try:
                    self.lag = estimate_lag(ref, gen, alignment.max_lag(self.sample_rate))
                except PairError as e:
                    self.ref_error = f"{gen_name}: --align lag: {e}"
                    ref = None
                else:
                    # a delayed output is as long as the reference (its tail cut) or longer by the delay
                    slack = abs(self.lag)
        if ref is not None and self.ref_error is None:
            diff = abs(len(ref) - len(gen))
            tol = length_policy.tolerance(self.sample_rate)
            if diff > tol + slack:
                if self.lag is None:
                    self.ref_error = (
                        f"{gen_name}: length {len(gen)} samples differs from the reference {ref_name} "
                        f"({len(ref)} samples) by {diff} > the length tolerance {length_policy.describe()} "
                        f"({tol} samples at {self.sample_rate} Hz; see --length-tolerance)")
                else:
                    self.ref_error = (
                        f"{gen_name}: length {len(gen)} samples differs from the reference {ref_name} "
                        f"({len(ref)} samples) by {diff} > the length tolerance {length_policy.describe()} "
                        f"plus the lag |{self.lag}| ({tol + slack} samples at {self.sample_rate} Hz; "
                        f"see --length-tolerance)")
                if alignment is not None and alignment.method == "dtw":
                    self.ref_error += ("; --align dtw aligns only mcd, f0_rmse and vuv_error, this metric "
                                       "needs sample-aligned files")
                ref = None
            else:
                if self.lag:
                    # score the overlap: drop the generated file's delay, or the reference's head if it is early
                    ref, gen = (ref, gen[self.lag:]) if self.lag > 0 else (ref[-self.lag:], gen)
                n = min(len(ref), len(gen))
                ref, gen = ref[:n], gen[:n]
        elif self.ref_error is not None:
            ref = None
        self.ref, self.gen = ref, gen
        self._memo: dict[str, Any] = {}

    @classmethod
    def from_files(cls, utt: str, ref_path: str | os.PathLike | None, gen_path: str | os.PathLike,
                   length_policy: LengthPolicy = SPEC_LENGTH_POLICY, alignment: Alignment | None = None,
                   text: str | None = None) -> "Pair":
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
                   length_policy=length_policy, ref_error=ref_error, alignment=alignment, text=text)

    def reference_full(self) -> np.ndarray:
        """The reference as given, whatever its length (for the DTW metrics)."""
        if self.ref_full_error is not None:
            raise PairError(self.ref_full_error)
        if self.ref_full is None:
            raise PairError(f"{self.gen_name}: this metric needs a reference recording (none given)")
        return self.ref_full

    def require_text(self) -> str:
        if self.text is None:
            raise PairError(f"{self.gen_name}: no text for utterance {self.utt!r} (see --text)")
        return self.text

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
        """``which`` = "ref", "gen" (trimmed to the reference), "gen_full" or "ref_full" (as given), at
        ``sample_rate`` (resampled once with soxr HQ, then memoised)."""
        getters = {"ref": self.require_reference, "gen": lambda: self.gen, "gen_full": lambda: self.gen_full,
                   "ref_full": self.reference_full}
        if which not in getters:
            raise ValueError(f"Pair.signal: unknown signal {which!r}")
        wav = getters[which]()
        if sample_rate is None or sample_rate == self.sample_rate:
            return wav

        def _resample() -> np.ndarray:
            import soxr

            return soxr.resample(wav, self.sample_rate, sample_rate, quality="HQ").astype(np.float32)

        return self.memo(f"{which}@{sample_rate}", _resample)
