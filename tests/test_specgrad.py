"""The SpecGrad filtered-noise prior (priorgrad/vocoder/specgrad.py, docs/specgrad.md).

Tolerances below were measured on this code (CPU, float32 STFT, float64 filter) and are stated with the
measurement beside each bound; the real-utterance tests use ../shared/data/ljspeech_mini and skip,
naming the path, when it is absent.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from priorgrad.core.audio import get_preset, load_audio, log_mel
from priorgrad.core.config import ConfigError, SpecGradConfig, load_params
from priorgrad.vocoder.specgrad import SpecGradDraw, SpecGradPrior, SpecGradSTFT, build_specgrad, specgrad_filter
from support.project import ROOT

LJ_MINI = ROOT.parent / "shared" / "data" / "ljspeech_mini" / "wavs"
UTTERANCE = LJ_MINI / "LJ001-0001.wav"
HOP = get_preset("hifigan").hop_length  # the vocoder contract passes it; both presets use 256
FRAMES = 200          # ~2.3 s of the utterance: enough frames per region, fast on a shared CPU


@pytest.fixture(scope="module")
def params():
    return load_params(ROOT / "params.yaml")


def _prior(params, preset: str = "hifigan", **changes) -> SpecGradPrior:
    cfg = dataclasses.replace(params.prior.specgrad, **changes)
    return build_specgrad(dataclasses.replace(params.prior, specgrad=cfg), None, preset)


def _real_mel(preset: str = "hifigan") -> tuple[torch.Tensor, int]:
    """(1, n_mels, FRAMES) log-mel of a real LJSpeech utterance through the project's front-end, and N."""
    if not UTTERANCE.is_file():
        pytest.skip(f"{UTTERANCE} not found (the ljspeech_mini data set is not on this machine)")
    wav = load_audio(UTTERANCE, preset)[: FRAMES * get_preset(preset).hop_length]
    return torch.from_numpy(log_mel(wav, preset)).unsqueeze(0), len(wav)


def _formant_mel(preset: str, frames: int, batch: int = 1) -> torch.Tensor:
    """A synthetic speech-like log-mel (three formant bumps over a tilt), constant over time, no data needed."""
    p = get_preset(preset)
    k = torch.arange(p.n_mels, dtype=torch.float64)
    shape = -0.06 * k + sum(2.5 * torch.exp(-0.5 * ((k - c) / 3.0) ** 2) for c in (12, 30, 52))
    lin = torch.exp(shape)  # linear mel magnitude, peak ~10
    from priorgrad.core.audio import compress_mel

    mel = compress_mel(lin, p).float()
    return mel[None, :, None].expand(batch, p.n_mels, frames).contiguous()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ----------------------------------------------------------------------------- m = 1: DiffWave
@pytest.mark.parametrize("preset, n_fft, win", [("hifigan", 2048, 1024), ("hifigan", 1024, 1024),
                                                ("diffwave", 2048, 1024), ("hifigan", 2048, 768)])
def test_unit_filter_is_the_identity(preset: str, n_fft: int, win: int) -> None:
    """m = 1 everywhere: L = G+ G = I, so draw(n) = n, whiten(r) = r and the whitened loss is plain MSE
    (the system reduces to DiffWave). Measured max |error| ~1.2e-6 (float32 STFT round trip)."""
    stft = SpecGradSTFT.for_preset(preset, n_fft, win)
    n_samples = 24 * stft.hop_length
    m = torch.ones(3, 24, stft.n_bins, dtype=torch.complex64)
    draw = SpecGradDraw(m, stft, n_samples)
    g = torch.Generator().manual_seed(0)
    n, r = torch.randn(3, n_samples, generator=g), torch.randn(3, n_samples, generator=g)
    torch.testing.assert_close(draw.draw(n), n, atol=1e-5, rtol=0)
    torch.testing.assert_close(draw.whiten(r), r, atol=1e-5, rtol=0)
    assert draw.mean() == 0.0
    loss_whitened, loss_plain = draw.whiten(r).pow(2).mean(), r.pow(2).mean()
    torch.testing.assert_close(loss_whitened, loss_plain, atol=1e-6, rtol=1e-5)


# ----------------------------------------------------------------------------- the floor
@pytest.mark.parametrize("preset", ["hifigan", "diffwave"])
@pytest.mark.parametrize("min_phase", [True, False])
@pytest.mark.parametrize("gain", ["none", "psd"])
def test_a_silent_frames_filter_is_bounded_below_by_the_floor(params, preset: str, min_phase: bool, gain: str) -> None:
    """A silent mel (every bin at the front-end's floor) gives |m| >= floor everywhere, so 1/m <= 1/floor;
    and its filter is the floor's order (within 2x: the clamped envelope adds at most mel_floor-sized amounts)."""
    prior = _prior(params, preset, min_phase=min_phase, gain=gain)
    p = get_preset(preset)
    silent = torch.full((2, p.n_mels, 12), p.silence)
    mag = prior.filter(silent).abs()
    floor = params.prior.specgrad.floor
    assert mag.min().item() >= floor * (1 - 1e-5)
    assert mag.max().item() <= 2 * floor
    assert (1 / mag).max().item() <= 1 / floor * (1 + 1e-5)


def test_the_floor_holds_on_a_real_utterances_quiet_frames(params) -> None:
    mel, _ = _real_mel()
    mag = _prior(params).filter(mel).abs()[0]
    frame_gain = mag.pow(2).mean(-1).sqrt()
    quiet = frame_gain <= torch.quantile(frame_gain, 0.1)
    assert quiet.any()
    assert mag[quiet].min().item() >= params.prior.specgrad.floor * (1 - 1e-5)


# ----------------------------------------------------------------------------- frames align with the mel
@pytest.mark.parametrize("preset", ["hifigan", "diffwave"])
@pytest.mark.parametrize("n_fft", [1024, 2048])
def test_filter_frames_are_centred_on_the_mel_frames(preset: str, n_fft: int) -> None:
    """An impulse at the centre of mel frame 10 (hifigan: 10 hop + hop/2; diffwave: 10 hop) peaks in the
    filter STFT's frame 10 with the window's full height, whatever n_fft."""
    p = get_preset(preset)
    stft = SpecGradSTFT.for_preset(p, n_fft, 1024)
    x = torch.zeros(1, 24 * p.hop_length)
    x[0, 10 * p.hop_length + (p.hop_length // 2 if preset == "hifigan" else 0)] = 1.0
    frame_level = stft.analysis(x).abs().amax(-1)[0]
    assert int(frame_level.argmax()) == 10
    assert frame_level[10].item() == pytest.approx(1.0, abs=1e-6)


def test_a_loud_mel_frame_gives_the_loudest_filter_frame(params) -> None:
    p = get_preset("hifigan")
    mel = torch.full((1, p.n_mels, 20), p.silence)
    mel[0, :, 7] = _formant_mel("hifigan", 1)[0, :, 0]
    gain = _prior(params).filter(mel).abs().pow(2).mean(-1).sqrt()[0]
    assert int(gain.argmax()) == 7
    assert gain[7] > 50 * gain[0]


# ----------------------------------------------------------------------------- L^-1 L n = n
def test_whiten_inverts_draw_for_a_time_invariant_filter(params) -> None:
    """A time-constant speech-like filter: whiten(draw(n)) = n to 3 % relative L2 error (measured 0.5 % on
    this synthetic mel, 0.9-1.8 % with one real LJSpeech frame repeated, see docs/specgrad.md); the residual
    is the canonical-dual synthesis window truncating the filtered frames. With the zero-phase ablation the
    same filter does not invert (measured 119 % here, 76-115 % on real frames): its two-sided impulse
    response is cut at the zero-padded edges, which is why the filter is minimum phase. Bound: > 30 %."""
    prior = _prior(params)
    mel = _formant_mel("hifigan", 64)
    n_samples = 64 * get_preset("hifigan").hop_length
    n = torch.randn(8, n_samples, generator=torch.Generator().manual_seed(1))
    draw = prior.condition(mel, HOP, n_samples)
    assert _rel(draw.whiten(draw.draw(n)), n) < 0.03
    zero_phase = _prior(params, min_phase=False).condition(mel, HOP, n_samples)
    assert _rel(zero_phase.whiten(zero_phase.draw(n)), n) > 0.3


def test_whiten_inverts_draw_on_a_real_utterance_to_the_stated_tolerance(params) -> None:
    """L^-1 L n on a real utterance's time-varying filter. Measured relative L2 error (8-16 draws, 200 frames
    of LJ001-0001..0003): 0.27-0.33 with the defaults (|m| spans 0.01..~25, frame gains change by up to
    60 dB between neighbouring frames, and ISTFT(STFT(.)/m) is only an approximate inverse there);
    0.015 with a floor of 0.1 in psd units (a 13:1 range, PriorGrad-like). The bounds: 0.40 and 0.03."""
    mel, n_samples = _real_mel()
    n = torch.randn(8, n_samples, generator=torch.Generator().manual_seed(2))
    draw = _prior(params).condition(mel, HOP, n_samples)
    assert _rel(draw.whiten(draw.draw(n)), n) < 0.40
    narrow = _prior(params, gain="psd", floor=0.1).condition(mel, HOP, n_samples)
    assert _rel(narrow.whiten(narrow.draw(n)), n) < 0.03


# ----------------------------------------------------------------------------- the noise follows the filter
def test_drawn_noise_power_spectrum_follows_the_filter(params) -> None:
    """The average periodogram of 16 draws, per block of 10 frames (~116 ms), against |m|^2 of the same
    frames (both in dB; the periodogram divided by sum(w^2), the white-noise level of the analysis window).
    Measured on LJ001-0001..0003: correlation 0.998, mean |error| 0.67-0.72 dB (per single frame: 0.986,
    1.5 dB). Bounds: correlation > 0.99, mean |error| < 1.5 dB, per frame > 0.95."""
    mel, n_samples = _real_mel()
    draw = _prior(params).condition(mel, HOP, n_samples)
    n = torch.randn(16, n_samples, generator=torch.Generator().manual_seed(3))
    spec = draw.stft.analysis(draw.draw(n))
    periodogram = spec.abs().pow(2).mean(0) / draw.stft.window().pow(2).sum()
    db_noise = 10 * torch.log10(periodogram)
    db_filter = 10 * torch.log10(draw.m[0].abs().pow(2))
    per_frame = np.corrcoef(db_noise.flatten().numpy(), db_filter.flatten().numpy())[0, 1]
    blocks = FRAMES // 10
    a = db_noise[: blocks * 10].reshape(blocks, 10, -1).mean(1)
    b = db_filter[: blocks * 10].reshape(blocks, 10, -1).mean(1)
    corr = np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1]
    assert per_frame > 0.95
    assert corr > 0.99
    assert (a - b).abs().mean().item() < 1.5


def test_the_filter_follows_the_utterances_spectrum(params) -> None:
    """The envelope is the speech's: on the louder half of the frames, the filter's dB response against the
    utterance's own power spectrum (same STFT, smoothed over 33 bins ~ 360 Hz to drop the harmonics) in dB.
    Measured on LJ001-0001..0003: correlation 0.71-0.77; the filter sits ~4 dB below the speech under the
    mel's 8 kHz top (the cepstral envelope is a geometric mean over the harmonics). Bound: > 0.6."""
    mel, n_samples = _real_mel()
    wav = load_audio(UTTERANCE, "hifigan")[:n_samples]
    draw = _prior(params).condition(mel, HOP, n_samples)
    power = draw.stft.analysis(torch.from_numpy(wav)[None]).abs()[0].pow(2)
    loud = power.mean(-1) > power.mean(-1).median()
    smooth = torch.nn.functional.conv1d(power[loud].unsqueeze(1), torch.ones(1, 1, 33) / 33, padding=16).squeeze(1)
    db_s = 10 * torch.log10(smooth)
    db_m = 10 * torch.log10(draw.m[0].abs()[loud].pow(2))
    assert np.corrcoef(db_s.flatten().numpy(), db_m.flatten().numpy())[0, 1] > 0.6


# ----------------------------------------------------------------------------- shapes, dtypes, the builder
def test_batch_shapes_and_dtypes(params) -> None:
    prior = _prior(params)
    hop = get_preset("hifigan").hop_length
    mel = _formant_mel("hifigan", 16, batch=3) + torch.linspace(-2, 0, 3)[:, None, None]  # three loudnesses
    m = prior.filter(mel)
    assert m.shape == (3, 16, 2048 // 2 + 1) and m.dtype == torch.complex64
    draw = prior.condition(mel, HOP, 16 * hop)
    for dtype in (torch.float32, torch.float64):
        n = torch.randn(3, 16 * hop, dtype=dtype)
        assert draw.draw(n).shape == (3, 16 * hop) and draw.draw(n).dtype == dtype
        assert draw.whiten(n).shape == (3, 16 * hop) and draw.whiten(n).dtype == dtype
    # items are filtered by their own mel: louder mel, louder noise
    power = draw.draw(torch.randn(3, 16 * hop)).pow(2).mean(-1)
    assert power[0] < power[1] < power[2]
    # a batch of one; one filter serves many draws
    one = prior.condition([mel[0]], HOP, 16 * hop)
    assert one.m.shape[0] == 1 and one.draw(torch.randn(5, 16 * hop)).shape == (5, 16 * hop)


def test_the_whitened_loss_passes_gradients(params) -> None:
    """The trainer backpropagates through whiten (the loss ||L^-1 (eps_hat - eps)||^2): finite, non-zero
    gradients, and the gradient of the quadratic form is 2 L^-T L^-1 r, so it vanishes with r."""
    hop = get_preset("hifigan").hop_length
    draw = _prior(params).condition(_formant_mel("hifigan", 16, batch=2), HOP, 16 * hop)
    eps = draw.draw(torch.randn(2, 16 * hop))
    eps_hat = (eps + 0.1 * torch.randn_like(eps)).requires_grad_(True)
    draw.whiten(eps_hat - eps).pow(2).mean().backward()
    assert torch.isfinite(eps_hat.grad).all() and eps_hat.grad.abs().max() > 0
    exact = eps.clone().requires_grad_(True)
    draw.whiten(exact - eps).pow(2).mean().backward()
    assert exact.grad.abs().max() == 0


def test_padding_repeats_the_utterances_quietest_frame(params) -> None:
    """Batch padding (the vocoder contract's unpadded mels): a shorter utterance's filter is its own, then its
    quietest frame (least sum |m|^2) repeated, as the diagonal priors' tail takes the smallest sigma."""
    prior = _prior(params)
    long = _formant_mel("hifigan", 12)[0]
    short = _formant_mel("hifigan", 8)[0] + torch.linspace(0, -3, 8)  # getting quieter: frame 7 the quietest
    draw = prior.condition([long, short], HOP, 12 * HOP)
    own = prior.filter(short[None])[0]
    torch.testing.assert_close(draw.m[1, :8], own)
    assert int(own.abs().pow(2).sum(-1).argmin()) == 7
    torch.testing.assert_close(draw.m[1, 8:], own[7].expand(4, -1))
    torch.testing.assert_close(draw.m[0], prior.filter(long[None])[0])
    # numpy mels as the samplers pass them give the same filter
    torch.testing.assert_close(prior.condition([long.numpy(), short.numpy()], HOP, 12 * HOP).m, draw.m)
    with pytest.raises(ValueError, match="not a whole number of hops"):
        prior.condition([long], HOP, 12 * HOP + 1)
    with pytest.raises(ValueError, match="hop_length 128"):
        prior.condition([long], 128, 12 * HOP)


def test_shape_mismatches_are_clear_errors(params) -> None:
    prior = _prior(params)
    hop = get_preset("hifigan").hop_length
    mel = _formant_mel("hifigan", 16, batch=2)
    with pytest.raises(ValueError, match=r"log-mel of shape \(80, 16\) does not fit 3840 samples"):
        prior.condition(mel, HOP, 15 * hop)
    draw = prior.condition(mel, HOP, 16 * hop)
    with pytest.raises(ValueError, match=r"SpecGradDraw.draw: expected \(2, 4096\)"):
        draw.draw(torch.randn(3, 16 * hop))
    with pytest.raises(ValueError, match="SpecGradDraw.whiten"):
        draw.whiten(torch.randn(2, 16 * hop + 1))
    with pytest.raises(ValueError, match="expected log-mel"):
        prior.filter(torch.zeros(2, 40, 16))


def test_builder_and_prior(params) -> None:
    prior = build_specgrad(params.prior, None, "hifigan")
    assert isinstance(prior, SpecGradPrior) and prior.name == "specgrad" and prior.preset == "hifigan"
    assert prior.cfg == params.prior.specgrad
    # the prior contract, not a per-frame sigma: no sigma_frames (resident crops condition per crop instead)
    from priorgrad.core.prior_contract import DiagonalDraw, PriorDraw, sigma_of

    draw = prior.condition([_formant_mel("hifigan", 4)[0]], HOP, 4 * HOP)
    assert not hasattr(prior, "sigma_frames") and isinstance(draw, PriorDraw)
    assert not isinstance(draw, DiagonalDraw) and sigma_of(draw) is None
    # the diffwave front-end's mel gives a filter too (its own mel scale and magnitude unit)
    m = build_specgrad(params.prior, None, "diffwave").filter(_formant_mel("diffwave", 8))
    assert torch.isfinite(m).all() and m.abs().min() >= params.prior.specgrad.floor * (1 - 1e-5)


def test_specgrad_filter_matches_the_prior(params) -> None:
    mel = _formant_mel("hifigan", 4)
    torch.testing.assert_close(specgrad_filter(mel, "hifigan", params.prior.specgrad), _prior(params).filter(mel))


# ----------------------------------------------------------------------------- bad params
@pytest.mark.parametrize("override, key", [
    ("prior.specgrad.lifter_order=0", "prior.specgrad.lifter_order"),
    ("prior.specgrad.lifter_order=600", "prior.specgrad.lifter_order"),   # > half the front-end's FFT (512)
    ("prior.specgrad.mel_floor=0", "prior.specgrad.mel_floor"),
    ("prior.specgrad.gain=loud", "prior.specgrad.gain"),
    ("prior.specgrad.floor=0", "prior.specgrad.floor"),
    ("prior.specgrad.floor=-1", "prior.specgrad.floor"),
    ("prior.specgrad.n_fft=1023", "prior.specgrad.n_fft"),
    ("prior.specgrad.win_length=4096", "prior.specgrad.win_length"),     # longer than n_fft
    ("prior.specgrad.win_length=256", "prior.specgrad.win_length"),      # not longer than the hop
    ("prior.specgrad.min_phase=1", "prior.specgrad.min_phase"),
    ("prior.specgrad.lifter_order=2.5", "prior.specgrad.lifter_order"),
])
def test_bad_params_name_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_params(ROOT / "params.yaml", [override])


def test_a_missing_specgrad_key_is_named(tmp_path: Path) -> None:
    import yaml

    from priorgrad.core.config import Params, load_raw

    raw = load_raw(ROOT / "params.yaml")
    del raw["prior"]["specgrad"]["floor"]
    with pytest.raises(ConfigError, match=r"prior\.specgrad: missing key\(s\) \['floor'\]"):
        Params.from_dict(raw)
    assert yaml.safe_dump(raw)  # the raw dict stays a plain mapping


def test_the_builder_checks_values_itself(params) -> None:
    """A SpecGradConfig made in code (not through load_params) is checked by the builder, naming the key."""
    bad = dataclasses.replace(params.prior, specgrad=dataclasses.replace(params.prior.specgrad, floor=0.0))
    with pytest.raises(ConfigError, match=r"prior\.specgrad\.floor"):
        build_specgrad(bad, None, "hifigan")
    with pytest.raises(ConfigError, match=r"prior\.specgrad: missing"):
        build_specgrad(object(), None, "hifigan")
    with pytest.raises(ValueError, match=r"prior\.specgrad\.win_length"):
        SpecGradSTFT.for_preset("hifigan", 2048, 200)
    assert isinstance(params.prior.specgrad, SpecGradConfig)
