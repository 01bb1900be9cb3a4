"""Every number the spec marks (check), asserted."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from priorgrad.core.audio import log_mel
from priorgrad.core.diffusion import Diffusion, ScheduleError, align_steps, inference_betas, training_betas
from priorgrad.vocoder.model import DiffWave, count_parameters
from priorgrad.vocoder.prior import MIN_FRAME_ENERGY, EnergyPrior, StandardPrior, energy_sigma, frame_energy
from priorgrad.core.prior_contract import DiagonalDraw


def test_alpha_bar_T():
    abar = np.cumprod(1.0 - training_betas(50, 1e-4, 0.05))
    assert round(float(abar[-1]), 4) == 0.2797


def test_t6_continuous_steps():
    steps = align_steps(inference_betas(6), training_betas())
    assert np.round(steps, 3).tolist() == [0.0, 0.894, 4.087, 10.452, 22.992, 42.919]


def test_t12_and_t50_alignments():
    tb = training_betas()
    s12 = align_steps(inference_betas(12), tb)
    assert len(s12) == 12 and np.all(np.diff(s12) > 0) and s12[-1] < 49
    # S = T is the training schedule itself: the aligned steps are the integers 0..49
    np.testing.assert_allclose(align_steps(inference_betas(50, tb), tb), np.arange(50), atol=1e-9)


def test_unalignable_schedule_is_rejected():
    with pytest.raises(ScheduleError, match="cannot be aligned"):
        align_steps(np.array([0.5, 0.5, 0.5]), training_betas())
    with pytest.raises(ScheduleError):
        inference_betas([0.1, 1.5])


@pytest.mark.parametrize("channels,expected", [(64, 2_619_971), (32, 1_227_651)])
def test_parameter_counts(channels, expected):
    assert count_parameters(DiffWave(residual_layers=30, residual_channels=channels, dilation_cycle=10)) == expected


def test_min_frame_energy_bound():
    assert round(MIN_FRAME_ENERGY, 4) == 0.0283
    silent = log_mel(np.zeros(256 * 10, dtype=np.float32))
    e = frame_energy(silent)
    assert np.all(e >= MIN_FRAME_ENERGY - 1e-7)
    np.testing.assert_allclose(e, MIN_FRAME_ENERGY, rtol=1e-5)  # silence sits exactly on the floor


def test_sigma_in_range_including_loud_frames():
    rng = np.random.default_rng(0)
    mel = rng.uniform(np.log(1e-5), 3.0, size=(80, 200))  # frames far louder than max_energy ...
    mel[:, :50] = np.log(1e-5)                              # ... and silent frames at the floor
    for max_energy in (4.0, None):
        s = energy_sigma(mel, e_min=0.05, e_max=6.0, std_min=0.1, max_energy=max_energy)
        assert s.shape == (200,) and s.min() >= 0.1 and s.max() <= 1.0
        assert np.isclose(s.max(), 1.0) and np.isclose(s.min(), 0.1)


def test_energy_sigma_formula():
    mel = np.log(np.full((80, 3), 1e-5))
    mel[:, 1] = np.log(0.05)   # E = sqrt(80 * 0.05) = 2
    mel[:, 2] = np.log(0.8)    # E = 8 > max_energy: clipped to 4 -> sigma 1
    s = energy_sigma(mel, e_min=0.0, e_max=10.0, std_min=0.1, max_energy=4.0)
    np.testing.assert_allclose(s, [0.1, 0.5, 1.0], rtol=1e-6)
    s_none = energy_sigma(mel, e_min=0.0, e_max=10.0, std_min=0.1, max_energy=None)
    np.testing.assert_allclose(s_none, [0.1, 0.2, 0.8], rtol=1e-6)


def test_priorgrad_loss_with_unit_sigma_equals_diffwave_l2_exactly():
    g = torch.Generator().manual_seed(0)
    eps_hat, eps = torch.randn(4, 1000, generator=g), torch.randn(4, 1000, generator=g)
    d = Diffusion(loss="l2")
    assert torch.equal(d.loss(eps_hat, eps, DiagonalDraw(torch.ones(4, 1000))), F.mse_loss(eps_hat, eps))
    # and through the full training objective: the energy code path with sigma = 1 == the standard prior
    model = DiffWave(residual_layers=2, residual_channels=4, dilation_cycle=1)
    x0, mel = torch.randn(2, 256 * 4, generator=g).clamp(-1, 1), torch.randn(2, 80, 4, generator=g)
    ones = torch.ones_like(x0)
    a = d.training_loss(lambda x, c, t: model(x, c, t), x0, mel, DiagonalDraw(ones), torch.Generator().manual_seed(5))
    b = d.training_loss(lambda x, c, t: model(x, c, t), x0, mel, DiagonalDraw(torch.ones_like(x0)),
                        torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert np.array_equal(StandardPrior().sigma_frames(np.zeros((80, 7))), np.ones(7, dtype=np.float32))


def test_priorgrad_loss_is_mahalanobis_weighted():
    d = Diffusion(loss="l2")
    eps_hat, eps, sigma = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([[0.5, 2.0]])
    assert torch.isclose(d.loss(eps_hat, eps, DiagonalDraw(sigma)), torch.tensor(((1 / 0.5) ** 2 + (2 / 2.0) ** 2) / 2))
    assert torch.isclose(Diffusion(loss="l1").loss(eps_hat, eps, DiagonalDraw(sigma)), torch.tensor((2.0 + 1.0) / 2))


def test_receptive_field():
    L, cycle = 30, 10
    assert 1 + sum(2 * 2 ** (i % cycle) for i in range(L)) == 6139


def test_energy_prior_interface():
    p = EnergyPrior(e_min=0.0283, e_max=5.0)
    mel = np.log(np.full((80, 5), 0.01))
    assert p.sigma_frames(mel).shape == (5,)
