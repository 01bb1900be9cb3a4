"""SpecGrad-style filtered-noise prior for the vocoder (../shared/spec/specgrad.md; docs/specgrad.md).

SpecGrad (Koizumi et al., Interspeech 2022) replaces PriorGrad's diagonal, frame-energy covariance by a
time-varying filter: eps = L n with L = G+ M G, G the STFT, M = diag(m) one complex gain per frame and
bin taken from the conditioning mel's spectral envelope, G+ the inverse STFT with the canonical dual
window (G+ G = I). The loss whitens the residual with the approximate inverse L^-1 r = G+ (G r / m).

Built here (torch is imported inside the functions that need it, as in priorgrad.core.audio, so importing
this module stays cheap):
- ``SpecGradSTFT``: the filter's STFT, framed so that frame t has the same centre as mel frame t of the
  audio preset (hop 256), with the canonical-dual inverse.
- ``specgrad_filter``: log-mel (B, n_mels, F) -> m (B, F, bins): pseudo-inverse mel, cepstral
  liftering to ``lifter_order`` coefficients, gain normalisation, an additive floor, minimum phase.
- ``SpecGradDraw``: the prior conditioned on one batch, implementing the PriorDraw contract below.
- ``SpecGradPrior`` and ``build_specgrad(prior_cfg, stats, preset)``: the vocoder prior and its builder
  (the registry's ``"module:function"`` form, as ``priorgrad.vocoder.prior.build_energy``).

``SpecGradDraw`` implements the family-neutral prior contract (``priorgrad.core.prior_contract.PriorDraw``: mean,
draw, whiten) and ``SpecGradPrior.condition`` has the vocoder priors' signature (``priorgrad.vocoder.prior.Prior``), so
the trainer, the samplers and the evaluate stage's floor run it unchanged. It is not a ``DiagonalDraw``: the
fast sampler, CUDA-graph training and the condition_on_sigma ablation need one and say so.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from priorgrad.core.audio import MelPreset, get_preset, mel_to_linear_magnitude, preset_filterbank
from priorgrad.core.config import SPECGRAD_GAINS, SpecGradConfig, check_specgrad
from priorgrad.core.schema import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["SpecGradSTFT", "SpecGradDraw", "SpecGradPrior", "build_specgrad", "specgrad_filter",
           "SPECGRAD_GAINS"]


# ----------------------------------------------------------------------------- the filter's STFT
def _frame_centre(preset: MelPreset) -> int:
    """Sample offset of mel frame 0's centre: frame t is centred on t * hop + this.

    hifigan pads (n_fft - hop) / 2 and frames uncentred, so its centres sit half a hop in (128);
    diffwave's torchaudio-style centred STFT puts frame t on sample t * hop (0)."""
    return preset.n_fft // 2 - preset.pad


@dataclass(frozen=True)
class SpecGradSTFT:
    """The STFT G and its canonical-dual inverse G+ on waveforms (B, N), N a whole number of hops.

    Frames are the mel's: F = N / hop, frame t centred where the preset's mel frame t is, whatever
    ``n_fft`` is, so that filter frame t is the envelope of mel frame t. G+ G = I holds for any padding
    (every kept sample is rebuilt only from frames that contain it: x = sum_t w_t (w_t x) / sum_t w_t^2).
    The waveform is zero-padded, not reflected as the front-end's: a causal (minimum-phase) filter then
    sees the same zeros before the signal when drawing and when whitening, so a time-invariant filter
    inverts to ~2 % (reflect padding: a mirrored filtered signal is not the filtered mirror, and 1/m
    amplifies the mismatch at the edges to > 100 %; measured in tests/test_specgrad.py).
    """

    n_fft: int
    win_length: int
    hop_length: int
    centre: int  # offset of frame 0's centre (see _frame_centre)

    def __post_init__(self) -> None:
        # Checked here as well as in the config: the STFT is usable on its own (tests, notebooks)
        if self.n_fft % 2 or self.n_fft < self.win_length:
            raise ValueError(f"prior.specgrad.n_fft: {self.n_fft} must be even and >= win_length ({self.win_length})")
        if self.win_length <= self.hop_length:
            raise ValueError(f"prior.specgrad.win_length: {self.win_length} must exceed the hop "
                             f"({self.hop_length}) so that every sample is covered by a window")
        if not 0 <= self.centre <= self.n_fft // 2:
            raise ValueError(f"frame centre offset {self.centre} outside [0, n_fft/2]")

    @classmethod
    def for_preset(cls, preset: str | MelPreset, n_fft: int, win_length: int) -> "SpecGradSTFT":
        p = get_preset(preset)
        return cls(n_fft, win_length, p.hop_length, _frame_centre(p))

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def pad_left(self) -> int:
        return self.n_fft // 2 - self.centre

    @property
    def pad_right(self) -> int:
        # the last frame (F - 1) must end at the padded signal's end: (F-1) hop + n_fft = pad_left + N + pad_right
        return self.n_fft - self.hop_length - self.pad_left

    def window(self, device: Any = None, dtype: Any = None) -> "torch.Tensor":
        """The periodic Hann window of win_length, zero-padded to n_fft and centred (torch.stft's layout)."""
        import torch

        w = torch.hann_window(self.win_length, device=device, dtype=dtype or torch.float32)
        left = (self.n_fft - self.win_length) // 2
        return torch.nn.functional.pad(w, (left, self.n_fft - self.win_length - left))

    def _check(self, x: "torch.Tensor", what: str) -> tuple[int, int]:
        if x.ndim != 2:
            raise ValueError(f"{what}: expected a waveform batch (B, N), got shape {tuple(x.shape)}")
        b, n = x.shape
        if n % self.hop_length:
            raise ValueError(f"{what}: {n} samples is not a whole number of hops ({self.hop_length})")
        if n < self.hop_length:
            raise ValueError(f"{what}: {n} samples is shorter than one hop ({self.hop_length})")
        return b, n

    def analysis(self, x: "torch.Tensor") -> "torch.Tensor":
        """G x: (B, N) real -> (B, F, bins) complex, F = N / hop."""
        import torch

        self._check(x, "STFT input")
        xp = torch.nn.functional.pad(x, (self.pad_left, self.pad_right))  # zeros (see the class docstring)
        spec = torch.stft(xp, self.n_fft, self.hop_length, self.n_fft, self.window(x.device, x.dtype),
                          center=False, return_complex=True)
        return spec.transpose(-1, -2)

    def synthesis(self, spec: "torch.Tensor", n_samples: int) -> "torch.Tensor":
        """G+ Y: (B, F, bins) complex -> (B, N) real, weighted overlap-add with the canonical dual window."""
        import torch

        b, frames, bins = spec.shape
        if bins != self.n_bins or frames * self.hop_length != n_samples:
            raise ValueError(f"ISTFT input: shape {tuple(spec.shape)} does not match {n_samples} samples "
                             f"({n_samples // self.hop_length} frames of {self.n_bins} bins)")
        w = self.window(spec.device, spec.real.dtype)
        seg = torch.fft.irfft(spec, n=self.n_fft, dim=-1) * w          # (B, F, n_fft)
        length = self.pad_left + n_samples + self.pad_right
        fold = functools.partial(torch.nn.functional.fold, output_size=(1, length), kernel_size=(1, self.n_fft),
                                 stride=(1, self.hop_length))
        num = fold(seg.transpose(1, 2)).reshape(b, length)
        den = fold(w.pow(2).reshape(1, self.n_fft, 1).expand(1, self.n_fft, frames)).reshape(length)
        keep = slice(self.pad_left, self.pad_left + n_samples)
        return num[:, keep] / den[keep]


# ----------------------------------------------------------------------------- the filter from the mel
@functools.lru_cache(maxsize=8)
def _pinv_filterbank(preset_name: str) -> np.ndarray:
    """Moore-Penrose pseudo-inverse of the preset's mel filterbank, (bins, n_mels), float64."""
    return np.linalg.pinv(preset_filterbank(get_preset(preset_name)).astype(np.float64))


def magnitude_unit(preset: str | MelPreset) -> float:
    """The front-end magnitude of unit-PSD white noise, per bin: sqrt(sum window^2).

    hifigan's mel sums |STFT| of a plain Hann window, so a signal of power spectral density S has
    |STFT|^2 ~ S * sum(w^2); diffwave's STFT is torchaudio's normalised one (already divided by
    sqrt(sum w^2)), so its unit is 1. Dividing the envelope by this puts m in PSD amplitude units."""
    p = get_preset(preset)
    if p.name == "diffwave":
        return 1.0
    w = np.hanning(p.win_length + 1)[:-1]  # periodic Hann, as torch.hann_window
    return float(np.sqrt(np.sum(w ** 2)))


def _cosine_basis(n_bins_out: int, n_fft_out: int, order: int) -> np.ndarray:
    """(bins, order) matrix evaluating a liftered cepstrum at the filter STFT's bins.

    A real cepstrum kept to quefrencies |q| < r is the cosine series c0 + 2 sum_{q=1}^{r-1} c_q cos(w q),
    valid at any normalised frequency w; evaluating it at 2 pi j / n_fft lets the filter's STFT use
    another FFT size than the front-end without resampling the envelope."""
    w = 2.0 * np.pi * np.arange(n_bins_out)[:, None] / n_fft_out
    q = np.arange(order)[None, :]
    basis = 2.0 * np.cos(w * q)
    basis[:, 0] = 1.0
    return basis


def _checked(cfg: SpecGradConfig, preset: str | MelPreset) -> MelPreset:
    """The value checks load_params runs (a config made in code gets them too), plus those that need the
    preset; errors name the key."""
    check_specgrad(cfg, "specgrad prior")
    p = get_preset(preset)
    if cfg.lifter_order > p.n_fft // 2:
        raise ConfigError(f"prior.specgrad.lifter_order: {cfg.lifter_order} exceeds half the front-end's FFT "
                          f"size ({p.n_fft // 2})")
    return p


def specgrad_filter(log_mel: "torch.Tensor", preset: str | MelPreset, cfg: SpecGradConfig,
                    stft: SpecGradSTFT | None = None) -> "torch.Tensor":
    """m for a batch of log-mels (B, n_mels, F) (or one (n_mels, F)): (B, F, bins) complex64.

    1. the preset's compressed mel -> linear mel magnitude -> pseudo-inverse mel filterbank, clamped at
       ``mel_floor`` (the pseudo-inverse can go negative; the log needs a positive amplitude);
    2. real cepstrum of its log over the front-end's FFT grid, liftered to quefrencies |q| < lifter_order;
    3. the smooth envelope exp(...) at the filter STFT's bins, times the gain (``gain``), plus ``floor`` so
       that |m| >= floor and 1/m is bounded (whitening divides by m);
    4. minimum phase (``min_phase``): the phase from folding the real cepstrum of log|m| (c0, 2 c_q, c_{N/2},
       zeros), which leaves |m| exactly as in 3; otherwise m = |m| (zero phase, the ablation).
    """
    import torch

    p = _checked(cfg, preset)
    stft = stft or SpecGradSTFT.for_preset(p, cfg.n_fft, cfg.win_length)
    mel = log_mel if log_mel.ndim == 3 else log_mel.unsqueeze(0)
    if mel.ndim != 3 or mel.shape[1] != p.n_mels:
        raise ValueError(f"specgrad filter: expected log-mel (B, {p.n_mels}, frames), got shape {tuple(log_mel.shape)}")
    device = mel.device
    # float64 through the cepstrum: log/exp of amplitudes spanning ~1e-5..1e2 lose digits in float32
    lin = torch.from_numpy(mel_to_linear_magnitude(mel.detach().cpu().numpy(), p)).to(device)  # (B, n_mels, F)
    pinv = torch.from_numpy(_pinv_filterbank(p.name)).to(device)
    amp = torch.clamp(torch.einsum("km,bmf->bfk", pinv, lin), min=cfg.mel_floor)           # (B, F, K_pre)
    cep = torch.fft.irfft(torch.log(amp), n=p.n_fft, dim=-1)[..., : cfg.lifter_order]      # c_0..c_{r-1}
    basis = torch.from_numpy(_cosine_basis(stft.n_bins, stft.n_fft, cfg.lifter_order)).to(device)
    log_env = cep @ basis.T                                                                 # (B, F, bins)
    scale = 1.0 / magnitude_unit(p) if cfg.gain == "psd" else 1.0
    mag = torch.exp(log_env) * scale + cfg.floor
    if not cfg.min_phase:
        return mag.to(torch.complex64)
    c = torch.fft.irfft(torch.log(mag), n=stft.n_fft, dim=-1)
    fold = torch.zeros(stft.n_fft, dtype=c.dtype, device=device)
    fold[0] = 1.0
    fold[1: stft.n_fft // 2] = 2.0
    fold[stft.n_fft // 2] = 1.0
    return torch.exp(torch.fft.rfft(c * fold, dim=-1)).to(torch.complex64)


# ----------------------------------------------------------------------------- the prior on one batch
class SpecGradDraw:
    """The SpecGrad prior conditioned on one batch: L = G+ diag(m) G on waveforms (B, N).

    ``m`` is (B, F, bins) or (1, F, bins) (one filter for every item, e.g. many draws of one utterance).
    """

    def __init__(self, m: "torch.Tensor", stft: SpecGradSTFT, n_samples: int) -> None:
        if m.ndim != 3 or m.shape[-1] != stft.n_bins or m.shape[1] * stft.hop_length != n_samples:
            raise ValueError(f"SpecGradDraw: filter of shape {tuple(m.shape)} does not fit {n_samples} samples "
                             f"({n_samples // stft.hop_length} frames of {stft.n_bins} bins)")
        self.m = m
        self.stft = stft
        self.n_samples = n_samples

    def _shape_check(self, x: "torch.Tensor", what: str) -> None:
        if x.ndim != 2 or x.shape[1] != self.n_samples or self.m.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"SpecGradDraw.{what}: expected ({self.m.shape[0]}, {self.n_samples}) samples, "
                             f"got shape {tuple(x.shape)}")

    def mean(self) -> float:
        return 0.0  # vocoder priors are zero-mean

    def draw(self, n: "torch.Tensor") -> "torch.Tensor":
        """L n = ISTFT(m * STFT(n)); same dtype as n."""
        self._shape_check(n, "draw")
        spec = self.stft.analysis(n.float()) * self.m.to(n.device)
        return self.stft.synthesis(spec, self.n_samples).to(n.dtype)

    def whiten(self, r: "torch.Tensor") -> "torch.Tensor":
        """L^-1 r ~ ISTFT(STFT(r) / m) (|m| >= floor > 0, so the division is bounded); same dtype as r."""
        self._shape_check(r, "whiten")
        spec = self.stft.analysis(r.float()) / self.m.to(r.device)
        return self.stft.synthesis(spec, self.n_samples).to(r.dtype)


# ----------------------------------------------------------------------------- the vocoder prior
@dataclass(frozen=True)
class SpecGradPrior:
    """SpecGrad's filtered-noise prior: a filter per mel frame; no training-set statistics needed."""

    cfg: SpecGradConfig
    preset: str = "hifigan"
    name: str = "specgrad"

    @property
    def stft(self) -> SpecGradSTFT:
        return SpecGradSTFT.for_preset(self.preset, self.cfg.n_fft, self.cfg.win_length)

    def filter(self, log_mel: "torch.Tensor") -> "torch.Tensor":
        """m (B, F, bins) complex64 for log-mels (B, n_mels, F)."""
        return specgrad_filter(log_mel, self.preset, self.cfg, self.stft)

    def condition(self, mels: "Sequence[np.ndarray] | torch.Tensor", hop_length: int, n_samples: int,
                  device: "torch.device | str" = "cpu") -> SpecGradDraw:
        """The prior for a batch (the vocoder contract, ``priorgrad.vocoder.prior.Prior``): its unpadded log-mels (each
        (n_mels, F_i); a (B, n_mels, F) array or tensor is B of them) and the batch's waveform length N.

        N must be a whole number of hops, N / hop >= every F_i. Padding rule (samples past an utterance's
        end): its filter is extended by repeating its quietest frame (least sum |m|^2), the analogue of the
        diagonal priors' smallest sigma (``priorgrad.vocoder.prior.frame_sigma_draw``): the padded tail stays as quiet
        as the utterance's quietest frame, with that frame's spectral shape."""
        import torch

        hop = get_preset(self.preset).hop_length
        if hop_length != hop:
            raise ValueError(f"specgrad prior: hop_length {hop_length} is not the {self.preset} preset's ({hop})")
        if n_samples % hop:
            raise ValueError(f"specgrad prior: {n_samples} samples is not a whole number of hops ({hop})")
        frames = n_samples // hop
        items = [torch.as_tensor(np.asarray(m) if not torch.is_tensor(m) else m).detach().cpu() for m in mels]
        for i, m in enumerate(items):
            if m.ndim != 2 or m.shape[-1] > frames:
                raise ValueError(f"specgrad prior: utterance {i}'s log-mel of shape {tuple(m.shape)} does not fit "
                                 f"{n_samples} samples ({frames} mel frames x hop {hop})")
        stft = self.stft
        if all(m.shape[-1] == frames for m in items):   # training crops: one batched filter, no padding
            m = specgrad_filter(torch.stack(items), self.preset, self.cfg, stft)
        else:
            parts = []
            for item in items:
                mi = specgrad_filter(item, self.preset, self.cfg, stft)[0]        # (F_i, bins)
                quiet = mi[int(mi.abs().pow(2).sum(-1).argmin())]
                parts.append(torch.cat([mi, quiet.expand(frames - mi.shape[0], -1)]))
            m = torch.stack(parts)
        return SpecGradDraw(m.to(device), stft, n_samples)


def build_specgrad(prior_cfg: Any, stats: dict[str, Any] | None, preset: str) -> SpecGradPrior:
    """The registry builder: ``prior_cfg.specgrad`` holds the options; ``stats`` is unused (no statistics)."""
    cfg = getattr(prior_cfg, "specgrad", None)
    if not isinstance(cfg, SpecGradConfig):
        raise ConfigError("prior.specgrad: missing (params.yaml must set the SpecGrad prior's options)")
    p = _checked(cfg, preset)
    SpecGradSTFT.for_preset(p, cfg.n_fft, cfg.win_length)  # the STFT's own checks, at build time
    return SpecGradPrior(cfg, p.name)

