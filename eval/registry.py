"""The metrics, with the metadata a report needs (direction, unit, reference, rate, implementation).

Definitions and settings follow ../shared/spec/metrics.md. Compute functions are named by dotted path
and imported on first use, so reading the registry (reports, the CLI's argument parsing) does not
import torch, onnxruntime or the WORLD bindings.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

# Frame hop of the project's front-end; the length policy tolerates one hop of difference.
REFERENCE_HOP = 256
REFERENCE_RATE = 22050


@dataclass(frozen=True)
class Metric:
    name: str
    description: str
    needs_reference: bool
    sample_rate: int | None  # rate the metric is computed at; None = the files' own rate
    higher_is_better: bool
    unit: str
    # distribution(s) whose versions are recorded with every score (the first is the metric's own)
    package: str | tuple[str, ...]
    implementation: str  # what is called, in words a reader can look up
    compute: str  # "module:function" taking a eval.pair.Pair and returning a float
    settings: Mapping[str, Any] = field(default_factory=dict)
    # needs the utterance's text (what a recogniser's transcript is compared with), not reference audio
    needs_text: bool = False
    # Bump when this project's code for the metric changes in a way that changes scores;
    # it is part of the cache key, so stale cached scores are never reused.
    revision: int = 1

    @property
    def version(self) -> str:
        if isinstance(self.package, str):
            return package_version(self.package)
        return "; ".join(f"{p} {package_version(p)}" for p in self.package)

    @property
    def cache_version(self) -> str:
        """Everything that determines a score besides the two files: package, code revision, settings."""
        settings = json.dumps(dict(self.settings), sort_keys=True, default=str)
        return f"{self.package}=={self.version};rev={self.revision};code={self.code};{settings}"

    @property
    def code(self) -> str:
        """Fingerprint of this project's code that computes the score (the metric's module and the pair
        loader, with what they import), so editing it never serves a stale cached score."""
        return _code_fingerprint(self.compute.partition(":")[0])

    def function(self) -> Callable[..., float]:
        module, _, attr = self.compute.partition(":")
        return getattr(importlib.import_module(module), attr)

    def info(self) -> dict[str, Any]:
        """The metadata recorded in summaries and provenance."""
        out = {"implementation": self.implementation, "version": self.version,
               "settings": dict(self.settings), "higher_is_better": self.higher_is_better,
               "unit": self.unit, "needs_reference": self.needs_reference,
               "sample_rate": self.sample_rate}
        if self.needs_text:  # only where true, so the audio metrics' summaries stay as they were
            out["needs_text"] = True
        return out


@functools.lru_cache(maxsize=None)
def _code_fingerprint(module: str) -> str:
    from priorgrad.core.fingerprint import code_fingerprint

    return code_fingerprint((module, "eval.pair"))


@functools.lru_cache(maxsize=None)
def package_version(package: str) -> str:
    if package == "priorgrad-bench":
        return _frontend_version()
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not-installed"


def _frontend_version() -> str:
    """LS-MAE depends on the project's own mel front-end: version it by the source of priorgrad/core/audio.py."""
    try:
        base = importlib.metadata.version("priorgrad-bench")
    except importlib.metadata.PackageNotFoundError:
        base = "source"
    spec = importlib.util.find_spec("priorgrad.core.audio")
    if spec is None or spec.origin is None:
        return f"{base}+missing-audio"
    digest = hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()[:12]
    return f"{base}+audio.{digest}"


# Resolutions of the multi-resolution STFT distance (n_fft, hop, win), as ParallelWaveGAN and auraloss.
MRSTFT_RESOLUTIONS = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
MRSTFT_MAG_FLOOR = 1e-7

WORLD_SETTINGS = {"f0_method": "dio+stonemask", "frame_period_ms": 5.0, "f0_floor_hz": 71.0,
                  "f0_ceil_hz": 800.0}
MCD_SETTINGS = {**WORLD_SETTINGS, "envelope": "cheaptrick",
                "mcep": "pysptk.sp2mc maths, vectorised: irfft(log sp), c0/2, pysptk.freqt as a matrix", "order": 24,
                "alpha_at_22050": 0.455, "alpha_other_rates": "pysptk.util.mcepalpha(fs)",
                "c0": "excluded", "frames": "all frames, time-aligned, no DTW",
                "formula": "(10/ln10)*sqrt(2*sum_d (c_d-c'_d)^2), mean over frames"}

# --align dtw (eval.metrics.world): what the WORLD metrics compare when the files differ in length
DTW_SETTINGS = {
    "implementation": "librosa.sequence.dtw (numba; already a dependency, MIT, unlike the GPL dtw-python)",
    "features": "the MCD's WORLD mel-cepstra c1..c24 (c0, the energy, excluded), 5 ms frames",
    "distance": "euclidean",
    "step_pattern": "symmetric2: steps (1,1), (0,1), (1,0) with weights 2, 1, 1",
    "global_constraint": "none (the whole cost matrix)",
    "silence_trimming": {"method": "librosa.effects.trim, leading and trailing, each file on its own",
                         "top_db": 40, "frame_length_at_22050_hz": 1024, "hop_length_at_22050_hz": 256},
    "mcd": "mean over the path's frame pairs",
    "f0_rmse": "over the path's frame pairs voiced in both",
    "vuv_error": "fraction of the path's frame pairs whose voicing differs",
    "sample_aligned_metrics": "unchanged: the length policy applies (refused beyond the tolerance)",
    "recorded_per_utterance": "alignment: ref_speech_s, gen_speech_s (after trimming), duration_ratio "
                              "(gen / ref), path_frames",
}
# --align lag (eval.pair.estimate_lag)
LAG_SETTINGS = {
    "estimate": "argmax over |lag| <= max_lag of sum_t gen[t + lag] * ref[t] (scipy.signal.correlate, fft)",
    "shift": "every reference metric scores the overlap after the shift",
    "length_policy": "lengths may differ by the tolerance plus |lag|",
    "recorded_per_utterance": "alignment: lag_samples (> 0: the generated file is late), lag_s",
}

# Intelligibility: pocketsphinx's US English model files, inside its wheel (nothing is downloaded)
ASR_MODEL_FILES = {"hmm": "en-us/en-us", "lm": "en-us/en-us.lm.bin", "dict": "en-us/cmudict-en-us.dict"}
ASR_SAMPLE_RATE = 16000
_ASR_SETTINGS = {
    "recogniser": "pocketsphinx.Decoder, US English model from the installed wheel (pocketsphinx.get_model_path())",
    "model_files": dict(ASR_MODEL_FILES), "samprate": ASR_SAMPLE_RATE,
    "decoding": "one utterance (process_raw full_utt=True); every other option pocketsphinx's default",
    "input": "generated audio as given, resampled to 16 kHz (soxr HQ), clipped to [-1, 1], 16-bit PCM",
    "normalisation": "jiwer, the same on transcript and text: lower case, hyphens and dashes to spaces, "
                     "punctuation removed, spaces collapsed, stripped",
    "text": "per utterance from --text (LJSpeech metadata.csv: the normalized column; or id|text)",
}
_ASR_PACKAGES = ("pocketsphinx", "jiwer", "soxr")

_DNSMOS_SETTINGS = {"models": "speechmos/dnsmos_models sig_bak_ovr.onnx + model_v8.onnx (in the package)",
                    "personalized": False, "input": "generated audio only, resampled to 16 kHz "
                    "(soxr HQ), resampling overshoot clipped to [-1, 1]",
                    "window_s": 9.01, "hop_s": 1.0, "short_clips": "repeated to 9.01 s (speechmos)"}
_DNSMOS_PACKAGES = ("speechmos", "onnxruntime")
# 2: scores the generated file as given (no longer trimmed to the reference's length)
_DNSMOS_REVISION = 2


def _m(**kw: Any) -> Metric:
    return Metric(**kw)


_ALL: tuple[Metric, ...] = (
    _m(name="pesq_wb", description="PESQ wide band (ITU-T P.862.2), MOS-LQO", needs_reference=True,
       sample_rate=16000, higher_is_better=True, unit="MOS-LQO", package=("pesq", "soxr"),
       implementation="pesq.pesq(16000, ref, gen, 'wb')", compute="eval.metrics.perceptual:pesq_wb",
       settings={"mode": "wb", "fs": 16000, "resampler": "soxr HQ"}),
    _m(name="pesq_nb", description="PESQ narrow band (ITU-T P.862), MOS-LQO", needs_reference=True,
       sample_rate=8000, higher_is_better=True, unit="MOS-LQO", package=("pesq", "soxr"),
       implementation="pesq.pesq(8000, ref, gen, 'nb')", compute="eval.metrics.perceptual:pesq_nb",
       settings={"mode": "nb", "fs": 8000, "resampler": "soxr HQ"}),
    _m(name="stoi", description="short-time objective intelligibility", needs_reference=True,
       sample_rate=None, higher_is_better=True, unit="score", package="pystoi",
       implementation="pystoi.stoi(ref, gen, fs, extended=False)",
       compute="eval.metrics.intelligibility:stoi",
       settings={"extended": False, "fs": "native", "too_short": "error (pystoi's 1e-5 fallback refused)"}),
    _m(name="estoi", description="extended short-time objective intelligibility", needs_reference=True,
       sample_rate=None, higher_is_better=True, unit="score", package="pystoi",
       implementation="pystoi.stoi(ref, gen, fs, extended=True)",
       compute="eval.metrics.intelligibility:estoi",
       settings={"extended": True, "fs": "native", "too_short": "error (pystoi's 1e-5 fallback refused)"}),
    _m(name="mrstft", description="multi-resolution STFT distance (spectral convergence + log magnitude)",
       needs_reference=True, sample_rate=None, higher_is_better=False, unit="distance", package="torch",
       implementation="eval.metrics.spectral.mrstft (torch.stft, float32)",
       compute="eval.metrics.spectral:mrstft",
       settings={"resolutions_nfft_hop_win": [list(r) for r in MRSTFT_RESOLUTIONS], "window": "hann",
                 "center": True, "pad_mode": "reflect", "magnitude_floor": MRSTFT_MAG_FLOOR,
                 "per_resolution": "SC + mean|log|G|-log|R||", "combine": "mean over resolutions"}),
    _m(name="ls_mae", description="log-mel spectrogram mean absolute error (PriorGrad validation metric)",
       needs_reference=True, sample_rate=22050, higher_is_better=False, unit="ln mel",
       package=("priorgrad-bench", "torch"),
       implementation="mean|priorgrad.core.audio.log_mel(gen) - log_mel(ref)|, preset hifigan",
       compute="eval.metrics.spectral:ls_mae",
       settings={"preset": "hifigan", "normalisation": "none (audio compared as given)",
                 "other_rates": "resampled to 22050 Hz (soxr HQ)"}),
    _m(name="mcd", description="mel-cepstral distortion", needs_reference=True, sample_rate=None,
       higher_is_better=False, unit="dB", package=("pyworld", "pysptk"),
       implementation="pyworld dio+stonemask+cheaptrick -> pysptk sp2mc (freqt as a matrix), order 24",
       compute="eval.metrics.world:mcd", settings=MCD_SETTINGS),
    _m(name="f0_rmse", description="F0 RMSE over frames voiced in both", needs_reference=True,
       sample_rate=None, higher_is_better=False, unit="cents", package="pyworld",
       implementation="pyworld.dio + pyworld.stonemask; RMSE of 1200*log2(f_gen/f_ref)",
       compute="eval.metrics.world:f0_rmse",
       settings={**WORLD_SETTINGS, "frames": "voiced in both (f0 > 0)"}),
    _m(name="vuv_error", description="voiced/unvoiced disagreement rate", needs_reference=True,
       sample_rate=None, higher_is_better=False, unit="fraction of frames", package="pyworld",
       implementation="pyworld.dio + pyworld.stonemask; mean((f_ref>0) != (f_gen>0))",
       compute="eval.metrics.world:vuv_error", settings=dict(WORLD_SETTINGS)),
    _m(name="dnsmos_ovrl", description="DNSMOS P.835 overall quality (non-intrusive)", needs_reference=False,
       sample_rate=16000, higher_is_better=True, unit="MOS", package=_DNSMOS_PACKAGES,
       implementation="speechmos.dnsmos.DNSMOS, ovrl_mos", compute="eval.metrics.dnsmos:ovrl",
       settings=_DNSMOS_SETTINGS, revision=_DNSMOS_REVISION),
    _m(name="dnsmos_sig", description="DNSMOS P.835 speech signal quality (non-intrusive)",
       needs_reference=False, sample_rate=16000, higher_is_better=True, unit="MOS", package=_DNSMOS_PACKAGES,
       implementation="speechmos.dnsmos.DNSMOS, sig_mos", compute="eval.metrics.dnsmos:sig",
       settings=_DNSMOS_SETTINGS, revision=_DNSMOS_REVISION),
    _m(name="dnsmos_bak", description="DNSMOS P.835 background quality (non-intrusive)",
       needs_reference=False, sample_rate=16000, higher_is_better=True, unit="MOS", package=_DNSMOS_PACKAGES,
       implementation="speechmos.dnsmos.DNSMOS, bak_mos", compute="eval.metrics.dnsmos:bak",
       settings=_DNSMOS_SETTINGS, revision=_DNSMOS_REVISION),
    _m(name="dnsmos_p808", description="DNSMOS P.808 MOS (non-intrusive)", needs_reference=False,
       sample_rate=16000, higher_is_better=True, unit="MOS", package=_DNSMOS_PACKAGES,
       implementation="speechmos.dnsmos.DNSMOS, p808_mos", compute="eval.metrics.dnsmos:p808",
       settings=_DNSMOS_SETTINGS, revision=_DNSMOS_REVISION),
    _m(name="wer", description="word error rate of an offline recogniser's transcript against the text",
       needs_reference=False, needs_text=True, sample_rate=ASR_SAMPLE_RATE, higher_is_better=False,
       unit="fraction of words", package=_ASR_PACKAGES,
       implementation="pocketsphinx (bundled en-us model) transcript -> jiwer.wer", compute="eval.metrics.asr:wer",
       settings={**_ASR_SETTINGS, "formula": "(substitutions + deletions + insertions) / words in the text"}),
    _m(name="cer", description="character error rate of an offline recogniser's transcript against the text",
       needs_reference=False, needs_text=True, sample_rate=ASR_SAMPLE_RATE, higher_is_better=False,
       unit="fraction of characters", package=_ASR_PACKAGES,
       implementation="pocketsphinx (bundled en-us model) transcript -> jiwer.cer", compute="eval.metrics.asr:cer",
       settings={**_ASR_SETTINGS, "formula": "character edit distance / characters in the text (spaces count)"}),
)

METRICS: dict[str, Metric] = {m.name: m for m in _ALL}


def resolve(names: str | list[str] | tuple[str, ...]) -> list[Metric]:
    """``"all"``, ``"a,b,c"`` or a list of names -> metrics, in the order given; unknown names raise."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise ValueError("no metrics given; choose from " + ", ".join(METRICS) + " or 'all'")
    if list(names) == ["all"]:
        return list(METRICS.values())
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)} or 'all'")
    seen: dict[str, Metric] = {}
    for n in names:
        seen.setdefault(n, METRICS[n])
    return list(seen.values())
