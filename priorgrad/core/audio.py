"""The one mel front-end of the project: loading, normalisation, log-mel.

Used by the corpus tools, preprocessing, the prior, training-time validation, synthesis and the
eval package (LS-MAE). Needs only numpy and torch at run time (the mel filterbank is built here in
numpy, identical to ``librosa.filters.mel``), so training runs on a bare GPU box without librosa.

Presets (see ../shared/spec/priorgrad-vocoder.md section 1):
- ``hifigan`` (default, official PriorGrad code): reflect-pad (n_fft-hop)/2, centre=False, Hann,
  magnitude sqrt(re^2+im^2+1e-9), Slaney mel 0..8000 Hz, ln(clamp(mel, 1e-5)); peak norm 0.95.
- ``diffwave`` (lmnt-com/diffwave ``preprocess.py``: ``torchaudio.transforms.MelSpectrogram`` with
  n_fft 1024, win 1024 (= 4 hops), hop 256, f_min 20, f_max sr/2, 80 HTK mels without area
  normalisation, power 1, ``normalized=True``): centred reflect-padded STFT, Hann, magnitude divided by
  sqrt(sum(window^2)) (the "normalised" STFT), then 20*log10(clamp(x,1e-5)) - 20 and
  clamp((x+100)/100, 0, 1); no peak normalisation. The centred STFT gives samples/hop + 1 frames; the
  last one (centred on the final sample boundary, half of it reflected padding) is dropped so that, as
  for hifigan, frames = samples / hop. The frames kept equal lmnt's first samples/hop frames exactly.

Each preset also carries what depends on its mel scale: the value of a silent frame (``silence``,
used to pad mels) and the energy prior's tuned E_max override (``max_energy``).
"""
from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


class AudioError(ValueError):
    """A problem with an audio file; the message always names the file."""


@dataclass(frozen=True)
class MelPreset:
    name: str
    sample_rate: int
    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int
    fmin: float
    fmax: float
    htk: bool
    peak_norm: float | None  # peak level after normalisation; None = leave the waveform as loaded
    # The energy prior's E_max override tuned for this front-end's mel scale (the official PriorGrad
    # code's 4.0 is tuned for the hifigan mel of peak-normalised audio); None = the dataset's E_max.
    # Used where params.yaml says ``prior.max_energy: preset``.
    max_energy: float | None

    @property
    def centered(self) -> bool:
        """torchaudio-style centred STFT (diffwave) rather than hifigan's (n_fft-hop)/2 padding."""
        return self.name == "diffwave"

    @property
    def pad(self) -> int:
        """Reflect padding on each side of the waveform before the (uncentred) STFT, in samples."""
        return self.n_fft // 2 if self.centered else (self.n_fft - self.hop_length) // 2

    @property
    def silence(self) -> float:
        """The compressed value of a silent mel bin (the 1e-5 floor): what a padded frame holds."""
        import torch

        return float(compress_mel(torch.tensor(0.0, dtype=torch.float64), self))

    @property
    def min_frame_energy(self) -> float:
        """Smallest possible frame energy sqrt(sum of linear mel) = that of a silent frame."""
        return float(np.sqrt(self.n_mels * mel_to_linear_magnitude(np.float64(self.silence), self)))


PRESETS: dict[str, MelPreset] = {
    "hifigan": MelPreset("hifigan", 22050, 1024, 256, 1024, 80, 0.0, 8000.0, False, 0.95, max_energy=4.0),
    # No official E_max override exists for lmnt's mel scale: use the dataset's E_max.
    "diffwave": MelPreset("diffwave", 22050, 1024, 256, 1024, 80, 20.0, 11025.0, True, None, max_energy=None),
}

LOG_FLOOR = 1e-5
MAG_EPS = 1e-9


def get_preset(preset: str | MelPreset) -> MelPreset:
    if isinstance(preset, MelPreset):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown audio preset {preset!r}; choose one of {sorted(PRESETS)}") from None


# ----------------------------------------------------------------------------- mel filterbank
def _hz_to_mel(f: np.ndarray, htk: bool) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    # Slaney: linear below 1 kHz, logarithmic above (as librosa.hz_to_mel(htk=False))
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(m: np.ndarray, htk: bool) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)


@functools.lru_cache(maxsize=8)
def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool,
                   slaney_norm: bool = True) -> np.ndarray:
    """Triangular mel filters, shape (n_mels, 1 + n_fft // 2); equals librosa.filters.mel(...)."""
    fftfreqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_pts = np.linspace(_hz_to_mel(fmin, htk), _hz_to_mel(fmax, htk), n_mels + 2)
    mel_f = _mel_to_hz(mel_pts, htk)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if slaney_norm:
        weights *= (2.0 / (mel_f[2: n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def preset_filterbank(preset: MelPreset) -> np.ndarray:
    # torchaudio's MelSpectrogram (the diffwave preset) uses HTK without Slaney area normalisation
    return mel_filterbank(preset.sample_rate, preset.n_fft, preset.n_mels, preset.fmin, preset.fmax,
                          preset.htk, slaney_norm=not preset.htk)


# ----------------------------------------------------------------------------- log-mel
def compress_mel(mel: torch.Tensor, preset: str | MelPreset = "hifigan") -> torch.Tensor:
    """Linear mel magnitude -> the preset's compressed mel (inverse: ``mel_to_linear_magnitude``)."""
    import torch  # imported here: presets and config stay importable without torch

    p = get_preset(preset)
    if p.name == "diffwave":
        db = 20.0 * torch.log10(torch.clamp(mel, min=LOG_FLOOR)) - 20.0
        return torch.clamp((db + 100.0) / 100.0, 0.0, 1.0)
    return torch.log(torch.clamp(mel, min=LOG_FLOOR))


def log_mel_torch(wav: torch.Tensor, preset: str | MelPreset = "hifigan") -> torch.Tensor:
    """Batched log-mel on a torch tensor (..., samples) -> (..., n_mels, samples // hop); differentiable."""
    import torch  # imported here: presets and config stay importable without torch

    p = get_preset(preset)
    shape = wav.shape
    x = wav.reshape(-1, shape[-1]).to(torch.float32)
    window = torch.hann_window(p.win_length, device=x.device, dtype=x.dtype)
    basis = torch.from_numpy(preset_filterbank(p)).to(x.device)
    x = torch.nn.functional.pad(x.unsqueeze(1), (p.pad, p.pad), mode="reflect").squeeze(1)
    spec = torch.stft(x, p.n_fft, p.hop_length, p.win_length, window, center=False, return_complex=True)
    if p.centered:
        # torchaudio's Spectrogram(power=1, normalized=True): |STFT| / sqrt(sum(window^2)). Explicit
        # padding + center=False is the same as torch.stft(center=True, pad_mode="reflect").
        mag = spec.abs() / window.pow(2).sum().sqrt()
        mag = mag[..., : shape[-1] // p.hop_length]  # drop the extra frame centred on the last boundary
    else:
        mag = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + MAG_EPS)
    out = compress_mel(basis @ mag, p)
    return out.reshape(*shape[:-1], out.shape[-2], out.shape[-1])


def log_mel(wav: np.ndarray, preset: str | MelPreset = "hifigan") -> np.ndarray:
    """Log-mel of a 1-D waveform as given (no normalisation inside): shape (n_mels, len(wav) // hop).

    For a hop-trimmed waveform (what ``load_audio`` returns) frames = samples / hop exactly.
    """
    import torch  # imported here: presets and config stay importable without torch

    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        raise ValueError(f"log_mel expects a 1-D waveform, got shape {wav.shape}")
    p = get_preset(preset)
    if len(wav) <= p.pad:
        raise ValueError(f"waveform of {len(wav)} samples is too short for a mel frame (preset {p.name})")
    with torch.no_grad():
        return log_mel_torch(torch.from_numpy(wav), p).numpy()


def mel_to_linear_magnitude(mel: np.ndarray, preset: str | MelPreset = "hifigan") -> np.ndarray:
    """Map a compressed mel back to linear mel magnitude (what the energy prior sums).

    diffwave: values clamped at 0 (below -80 dB) map back to the clamp's edge, 1e-4.
    """
    p = get_preset(preset)
    mel = np.asarray(mel, dtype=np.float64)
    if p.name == "diffwave":
        db = mel * 100.0 - 100.0 + 20.0
        return 10.0 ** (db / 20.0)
    return np.exp(mel)


# ----------------------------------------------------------------------------- waveforms
def normalize(wav: np.ndarray, preset: str | MelPreset = "hifigan", path: str | os.PathLike | None = None) -> np.ndarray:
    """Per-utterance peak normalisation of the preset (0.95 for hifigan); errors on silence."""
    p = get_preset(preset)
    if p.peak_norm is None:
        return wav.astype(np.float32)
    peak = float(np.max(np.abs(wav))) if wav.size else 0.0
    if peak <= 0.0:
        raise AudioError(f"{path or 'waveform'}: audio is silent (peak 0), cannot peak-normalise")
    return (wav / peak * p.peak_norm).astype(np.float32)


def trim_to_hops(wav: np.ndarray, hop_length: int) -> np.ndarray:
    """Drop the tail so that len(wav) is a whole number of hops (frames = samples / hop)."""
    n = (len(wav) // hop_length) * hop_length
    return wav[:n]


class TruncatedAudioError(AudioError):
    """A sound file that holds fewer bytes or frames than its header declares (cut short in a copy)."""


# WAVE format tags whose frames are block_align bytes each (PCM, IEEE float, extensible); compressed
# formats (ADPCM, ...) pack many frames per block, so their frame count is not checked from the header
_FRAME_SIZED_WAVE_FORMATS = (0x0001, 0x0003, 0xFFFE)
# data sizes that streaming writers put in a header they cannot rewrite: the length is unknown, not wrong
_UNKNOWN_WAVE_SIZES = (0, 0xFFFFFFFF)


@dataclass(frozen=True)
class WaveDataChunk:
    declared: int               # bytes the data chunk's header declares
    present: int                # bytes of the file after the data chunk's header
    block_align: int | None     # bytes per frame (fmt chunk), None when there is no fmt chunk before data
    format_tag: int | None      # WAVE format tag of the fmt chunk


def wave_data_chunk(path: str | os.PathLike) -> WaveDataChunk | None:
    """The data chunk of a RIFF/WAVE file as its header declares it; None for other formats or when no
    data chunk header is found (the decoder then says what is wrong).

    libsndfile reads whatever a cut-short file still holds without a word, so this is the one place a
    truncated wav is noticed."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        endian = "<" if head[:4] == b"RIFF" else ">"
        size = os.fstat(f.fileno()).st_size
        block_align = format_tag = None
        while True:
            hdr = f.read(8)
            if len(hdr) < 8:
                return None
            cid, csize = hdr[:4], struct.unpack(endian + "I", hdr[4:])[0]
            start = f.tell()
            if cid == b"data":
                return WaveDataChunk(csize, size - start, block_align, format_tag)
            if cid == b"fmt " and csize >= 14:
                fmt = f.read(14)
                if len(fmt) == 14:
                    format_tag = struct.unpack(endian + "H", fmt[:2])[0]
                    block_align = struct.unpack(endian + "H", fmt[12:14])[0]
            f.seek(start + csize + (csize & 1))  # chunks are word-aligned


def decode_audio(path: str | os.PathLike, always_2d: bool = False) -> tuple[np.ndarray, int, str]:
    """The project's one decoder of sound files: (float32 samples in [-1, 1], rate, subtype).

    A file that decodes but holds less than its header declares (data chunk bytes, or frames) is a
    :class:`TruncatedAudioError` naming it and both sizes. Empty, NaN or silent audio is the caller's to judge.
    """
    import soundfile as sf  # soundfile is only needed where audio files are read

    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")
    try:
        info = sf.info(str(path))
        data, sr = sf.read(str(path), dtype="float32", always_2d=always_2d)
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError with terse messages
        raise AudioError(f"{path}: cannot decode audio ({e})") from e
    n = int(data.shape[0])
    chunk = wave_data_chunk(path)
    if chunk is not None and chunk.declared not in _UNKNOWN_WAVE_SIZES:
        if chunk.declared > chunk.present:
            raise TruncatedAudioError(f"{path}: truncated: its header declares {chunk.declared} data bytes, "
                                      f"{chunk.present} are present")
        if chunk.format_tag in _FRAME_SIZED_WAVE_FORMATS and chunk.block_align:
            declared_frames = chunk.declared // chunk.block_align
            if declared_frames != n:
                raise TruncatedAudioError(f"{path}: truncated: its header declares {declared_frames} frames, "
                                          f"{n} were read")
    elif chunk is None and info.frames != n:
        raise TruncatedAudioError(f"{path}: truncated: its header declares {info.frames} frames, {n} were read")
    return data, int(sr), str(info.subtype)


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a sound file as float32 in [-1, 1], shape (samples,) or (samples, channels)."""
    data, sr, _ = decode_audio(path)
    if data.size == 0:
        raise AudioError(f"{path}: audio has no samples")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    return data, int(sr)


def resample(wav: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return wav
    import soxr

    return soxr.resample(wav, sr_in, sr_out, quality="HQ").astype(np.float32)


def load_audio(path: str | os.PathLike, preset: str | MelPreset = "hifigan", *,
               allow_resample: bool = False, allow_stereo: bool = True,
               normalise: bool = True, trim: bool = True) -> np.ndarray:
    """Load a file the way the whole project sees audio: mono, preset rate, peak-normalised, hop-trimmed.

    A file at another sample rate is an error unless ``allow_resample``; stereo is averaged to mono
    (an error if ``allow_stereo`` is False).
    """
    p = get_preset(preset)
    data, sr = read_wav(path)
    if data.ndim == 2:
        if not allow_stereo:
            raise AudioError(f"{path}: has {data.shape[1]} channels, expected mono")
        data = data.mean(axis=1)
    if sr != p.sample_rate:
        if not allow_resample:
            raise AudioError(f"{path}: sample rate {sr} Hz, expected {p.sample_rate} Hz "
                             f"(set audio.allow_resample: true to resample)")
        data = resample(data, sr, p.sample_rate)
    if normalise:
        data = normalize(data, p, path)
    if trim:
        data = trim_to_hops(data, p.hop_length)
        if len(data) == 0:
            raise AudioError(f"{path}: shorter than one hop ({p.hop_length} samples)")
    return data.astype(np.float32)


def write_wav(path: str | os.PathLike, wav: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM atomically (temp file + rename) so a killed job never leaves half a file."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    sf.write(str(tmp), np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0), sample_rate,
             subtype="PCM_16", format="WAV")
    os.replace(tmp, path)
