"""Model, front-end and sampler behaviour."""
import librosa
import numpy as np
import pytest
import torch

from priorgrad.core.audio import PRESETS, log_mel, mel_filterbank
from priorgrad.core.diffusion import Diffusion
from priorgrad.vocoder.model import DiffusionEmbedding, DiffWave, hop_factors
from priorgrad.core.prior_contract import DiagonalDraw


@pytest.mark.parametrize("preset", ["hifigan", "diffwave"])
def test_filterbank_equals_librosa(preset):
    p = PRESETS[preset]
    ours = mel_filterbank(p.sample_rate, p.n_fft, p.n_mels, p.fmin, p.fmax, p.htk, slaney_norm=not p.htk)
    ref = librosa.filters.mel(sr=p.sample_rate, n_fft=p.n_fft, n_mels=p.n_mels, fmin=p.fmin, fmax=p.fmax,
                              htk=p.htk, norm="slaney" if not p.htk else None)
    np.testing.assert_allclose(ours, ref, atol=1e-7, rtol=1e-5)


def test_log_mel_hifigan_matches_straightforward_librosa_reference():
    rng = np.random.default_rng(1)
    wav = (0.3 * rng.standard_normal(256 * 40)).astype(np.float32)
    ours = log_mel(wav)
    assert ours.shape == (80, 40)  # frames = samples / hop exactly
    padded = np.pad(wav, (384, 384), mode="reflect")
    spec = librosa.stft(padded, n_fft=1024, hop_length=256, win_length=1024, window="hann", center=False)
    mag = np.sqrt(spec.real ** 2 + spec.imag ** 2 + 1e-9)
    basis = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000)
    ref = np.log(np.clip(basis @ mag, 1e-5, None))
    np.testing.assert_allclose(ours, ref, atol=2e-4)


@pytest.mark.parametrize("hop,factors", [(256, [16, 16]), (128, [8, 16]), (300, None)])
def test_upsampler_follows_hop_length(hop, factors):
    if factors is None:
        factors = hop_factors(hop)
    m = DiffWave(residual_layers=2, residual_channels=4, dilation_cycle=1, hop_length=hop, upsample_factors=factors)
    frames = 5
    out = m(torch.randn(1, frames * hop), torch.randn(1, 80, frames), torch.tensor([3]))
    assert out.shape == (1, frames * hop)


def test_hop_factors():
    assert hop_factors(256) == [16, 16]
    assert np.prod(hop_factors(300)) == 300


def test_output_layer_zero_initialised():
    m = DiffWave(residual_layers=3, residual_channels=8, dilation_cycle=3)
    assert torch.count_nonzero(m.output_projection.weight) == 0  # as the official code: weight only
    out = m(torch.randn(2, 512), torch.randn(2, 80, 2), torch.tensor([1, 2]))
    assert torch.allclose(out, m.output_projection.bias.expand_as(out))


def test_fractional_step_embedding_interpolates():
    emb = DiffusionEmbedding(50)
    table = emb.embedding
    mid = emb._lerp(torch.tensor([2.5]))
    torch.testing.assert_close(mid[0], (table[2] + table[3]) / 2)
    torch.testing.assert_close(emb._lerp(torch.tensor([7.0]))[0], table[7])


def test_sampler_starts_from_prior_and_clamps():
    d = Diffusion()
    sigma = torch.full((1, 4096), 0.1)
    zero_model = lambda x, c, t: torch.zeros_like(x)  # noqa: E731
    g = torch.Generator().manual_seed(0)
    out = d.sample(zero_model, None, DiagonalDraw(sigma), steps=6, generator=g, shape=sigma.shape)
    assert out.abs().max() <= 1.0
    # x_S = sigma * n and every added noise is scaled by sigma: with a zero model the unclamped
    # result is exactly linear in sigma
    a = d.sample(zero_model, None, DiagonalDraw(sigma), 6, generator=torch.Generator().manual_seed(0), clamp=False,
                 shape=sigma.shape)
    b = d.sample(zero_model, None, DiagonalDraw(torch.ones(1, 4096)), 6, generator=torch.Generator().manual_seed(0),
                 clamp=False, shape=(1, 4096))
    torch.testing.assert_close(a, 0.1 * b)
    assert b.abs().max() > 1.0  # so the clamp above was exercised


def test_sampler_is_seeded():
    d = Diffusion()
    m = DiffWave(residual_layers=2, residual_channels=4, dilation_cycle=1)
    torch.nn.init.normal_(m.output_projection.weight)
    cond = m.condition(torch.randn(1, 80, 8))
    f = lambda x, c, t: m.denoise(x, cond, t)  # noqa: E731
    one = DiagonalDraw(torch.ones(1, 2048))
    a = d.sample(f, None, one, 6, generator=torch.Generator().manual_seed(3), shape=(1, 2048))
    b = d.sample(f, None, one, 6, generator=torch.Generator().manual_seed(3), shape=(1, 2048))
    c = d.sample(f, None, one, 6, generator=torch.Generator().manual_seed(4), shape=(1, 2048))
    assert torch.equal(a, b) and not torch.equal(a, c)
