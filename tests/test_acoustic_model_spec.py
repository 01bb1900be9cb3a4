"""The (check) numbers of the acoustic spec on the model side (sections 6, 7, 9), config validation,
the diffusion extension (mask, per-bin sigma, mean), mel metrics and Griffin-Lim alignment."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from priorgrad.acoustic.model import (MelDecoder, StandardFramePrior, TablePrior, build_acoustic_model,
                                      decoder_param_formula, durations_to_mel2ph, model_param_formula)
from priorgrad.acoustic.model_config import load_acoustic_config
from priorgrad.acoustic.schedule_search import capped, grid_candidates
from priorgrad.core.config import ConfigError
from priorgrad.core.diffusion import Diffusion, ScheduleError, StepSchedule, strided_schedule
from priorgrad.vocoder.model import count_parameters
from priorgrad.core.prior_contract import DiagonalDraw

from support.core import ROOT


def _diff() -> Diffusion:
    return Diffusion(400, 1e-4, 0.05)


def _cfg(*over: str):
    return load_acoustic_config(ROOT / "params.yaml", list(over))


# ----------------------------------------------------------------------------- schedules
def test_alpha_bar_T_of_the_400_step_schedule():
    assert _diff().alpha_bar[-1] == pytest.approx(3.7487e-5, rel=1e-4)


def test_official_six_step_config_betas_align_to_the_spec_steps():
    _, t = _diff().schedule([0.001, 0.01, 0.05, 0.1, 0.5, 0.8])
    np.testing.assert_allclose(t, [2.684, 11.994, 30.254, 50.431, 115.745, 196.635], atol=5e-4)


def test_strided_schedules_6_and_12():
    d = _diff()
    s6 = strided_schedule(d.betas, 6)
    assert s6.t.tolist() == [0, 16, 64, 144, 255, 399]
    np.testing.assert_allclose(s6.eta, [1e-4, 0.01845, 0.2201, 0.6538, 0.9406, 0.9976], rtol=5e-4)
    assert strided_schedule(d.betas, 12).t.tolist() == [0, 3, 13, 30, 53, 82, 119, 162, 211, 267, 330, 399]
    # gamma_bar_s = alpha_bar_{t_s} exactly, and t~ is used as given
    np.testing.assert_allclose(np.cumprod(1 - s6.eta), d.alpha_bar[[0, 16, 64, 144, 255, 399]], rtol=1e-12)
    eta, t = d.schedule(s6)
    assert t is s6.t and eta is s6.eta
    full = strided_schedule(d.betas, 400)
    assert full.t.tolist() == list(range(400)) and np.allclose(full.eta, d.betas)
    with pytest.raises(ScheduleError, match="repeats a training step"):
        strided_schedule(d.betas, 50)


def test_unalignable_schedule_raises():
    with pytest.raises(ScheduleError, match="cannot be aligned"):
        _diff().schedule([0.9] * 6)
    with pytest.raises(ScheduleError):
        _diff().schedule(StepSchedule([0.1], [400.0]))


@pytest.mark.parametrize("n,count", [(2, 73), (6, 36_446), (12, 16_046)])
def test_grid_search_candidate_counts(n, count):
    c = grid_candidates(n)
    assert c.shape == (count, n)
    digits = np.round(c / np.asarray({2: [0.1] * 2, 6: [1e-4, 1e-3, 1e-2, .1, .1, .1],
                                      12: [1e-4] * 2 + [1e-3] * 2 + [1e-2] * 4 + [.1] * 4}[n])).astype(int)
    assert digits.min() >= 1 and digits.max() <= 9
    if n == 6:
        assert np.all(np.diff(digits[:, 3:], axis=1) > 0) and digits[:, 0].max() <= 6
    cap = capped(c, 100)
    assert len(cap) == min(100, count) and np.array_equal(cap, capped(c, 100))  # deterministic
    assert np.array_equal(cap[0], c[0]) and np.array_equal(cap[-1], c[-1])
    with pytest.raises(ScheduleError):
        grid_candidates(5)


# ----------------------------------------------------------------------------- diffusion extension
def test_masked_loss_with_unit_sigma_and_zero_mean_is_the_baseline_masked_mse():
    g = torch.Generator().manual_seed(0)
    eps_hat, eps = torch.randn(3, 80, 20, generator=g), torch.randn(3, 80, 20, generator=g)
    mask = torch.ones(3, 1, 20)
    mask[1, :, 12:] = 0
    mask[2, :, 5:] = 0
    d = _diff()
    baseline = ((eps_hat - eps) ** 2 * mask).sum() / (mask.sum() * 80)
    assert torch.equal(d.loss(eps_hat, eps, DiagonalDraw(torch.ones(3, 80, 20)), mask), baseline)
    # the 1/s^2 weighting
    s = torch.rand(3, 80, 20, generator=g) + 0.1
    assert torch.allclose(d.loss(eps_hat, eps, DiagonalDraw(s), mask), (((eps_hat - eps) / s) ** 2 * mask).sum() / (mask.sum() * 80))
    # training on x0 - mu: with mu = 0 and s = 1 the PriorGrad path gives the baseline's loss exactly
    x0 = torch.randn(3, 80, 20, generator=g)
    net = lambda x, c, t: x * 0.5  # noqa: E731
    a = d.training_loss(net, x0, None, DiagonalDraw(torch.ones_like(x0), torch.zeros_like(x0)),
                        torch.Generator().manual_seed(1), mask=mask)
    b = d.training_loss(net, x0, None, DiagonalDraw(torch.ones_like(x0)), torch.Generator().manual_seed(1), mask=mask)
    assert torch.equal(a, b)


def test_training_diffuses_x0_minus_mu_and_sampling_starts_at_s_n_and_adds_mu():
    d = _diff()
    x0, mu = torch.full((1, 80, 4), 3.0), torch.full((1, 80, 4), 3.0)
    seen = {}

    def net(x, c, t):
        seen["x"] = x
        return torch.zeros_like(x)

    s = torch.full((1, 80, 4), 0.5)
    d.training_loss(net, x0, None, DiagonalDraw(s, mu), torch.Generator().manual_seed(0))
    # x0 - mu = 0, so x_t is pure scaled noise: its spread follows s, not the mel level
    assert seen["x"].abs().mean() < 1.0
    mask = torch.ones(1, 1, 4)
    mask[..., 3] = 0
    z = torch.randn(1, 80, 4, generator=torch.Generator().manual_seed(5))
    out = d.sample(lambda x, c, t: torch.zeros_like(x), None, DiagonalDraw(s, mu), StepSchedule([0.2], [0.0]),
                   noise=lambda k: z, clamp=False, mask=mask)
    expected = (s * z / math.sqrt(0.8) + mu) * mask
    assert torch.allclose(out, expected)
    assert out.abs().max() > 1.0  # no clamp for mels


# ----------------------------------------------------------------------------- sizes
@pytest.mark.parametrize("c,count", [(64, 1_528_272), (128, 3_522_384), (192, 6_311_120), (256, 9_894_480)])
def test_decoder_parameter_counts(c, count):
    assert count_parameters(MelDecoder(256, c, 12, 400)) == count == decoder_param_formula(256, c, 12)


@pytest.mark.parametrize("size,total,decoder", [("paper", 18_914_646, 3_522_384), ("cpu", 1_317_398, 681_744),
                                                ("tiny", 502_166, 377_136),
                                                ("tiny_c80", 864_534, 739_504),  # ours: the CPU default's size
                                                ("tiny_c256", 1_907_894, 1_782_864)])  # ours: cpu-long
def test_model_parameter_counts(size, total, decoder):
    m = build_acoustic_model(_cfg(f"acoustic.model.size={size}"), 100)
    assert count_parameters(m) == total and count_parameters(m.decoder) == decoder
    s = _cfg(f"acoustic.model.size={size}").size
    assert total == model_param_formula(100, s.hidden, s.predictor, s.encoder_layers, s.decoder_channels,
                                        s.decoder_layers)
    b2 = build_acoustic_model(_cfg(f"acoustic.model.size={size}", "acoustic.model.prior=trainable"), 100)
    assert count_parameters(b2) == total + 80 * s.hidden + 80


def test_model_forward_shapes_masks_and_predicted_durations():
    torch.manual_seed(0)
    m = build_acoustic_model(_cfg("acoustic.model.size=tiny", "acoustic.model.prior=trainable"), 20).eval()
    tok = torch.tensor([[2, 5, 6, 1], [2, 7, 1, 0]])
    m2p = torch.tensor([[1, 1, 2, 3, 3, 4], [1, 2, 2, 3, 0, 0]])
    out = m.adapt(tok, m2p, torch.zeros(2, 6), torch.zeros(2, 6), torch.ones(2, 6))
    assert out["cond"].shape == (2, 32, 6) and out["mu"].shape == (2, 80, 6)
    assert torch.all(out["cond"][1, :, 4:] == 0) and torch.all(out["mu"][1, :, 4:] == 0)
    x = torch.randn(2, 80, 6)
    eps = m.decoder(x, out["cond"], torch.tensor([3.0, 250.5]), out["mask"])
    assert eps.shape == (2, 80, 6) and torch.all(eps[1, :, 4:] == 0)
    assert durations_to_mel2ph(torch.tensor([[2, 0, 1], [1, 1, 0]])).tolist() == [[1, 1, 3], [1, 2, 0]]


def test_priors_frame_stats_and_padding():
    mu, std = np.random.default_rng(0).normal(size=(5, 80)).astype(np.float32), np.full((5, 80), 0.5, np.float32)
    tp = TablePrior(mu, std)
    m, s = tp.frame_stats(np.array([3, 3, 0, 4]))
    assert m.shape == (80, 4) and np.array_equal(m[:, 0], mu[3]) and np.all(m[:, 2] == 0) and np.all(s[:, 2] == 1)
    again = TablePrior.from_prior(tp, 5)
    assert np.array_equal(again.mu[1:], mu[1:]) and np.all(again.std[0] == 1)
    m0, s0 = StandardFramePrior().frame_stats(np.array([1, 2]))
    assert np.all(m0 == 0) and np.all(s0 == 1)


# ----------------------------------------------------------------------------- config
def test_config_missing_and_unknown_keys_are_named(tmp_path):
    from priorgrad.core.schema import read_params
    from support.project import write_params

    raw = read_params(ROOT / "params.yaml")
    del raw["acoustic"]["train"]["window_frames"]
    p = write_params(tmp_path, raw)
    with pytest.raises(ConfigError, match=r"acoustic.train: missing key\(s\) \['window_frames'\]"):
        load_acoustic_config(p)
    with pytest.raises(ConfigError, match=r"acoustic.model: unknown key\(s\) \['sise'\]"):
        _cfg("acoustic.model.sise=cpu")
    with pytest.raises(ConfigError, match="acoustic.model.size"):
        _cfg("acoustic.model.size=huge")
    with pytest.raises(ConfigError, match="acoustic.model.prior"):
        _cfg("acoustic.model.prior=gaussian")
    with pytest.raises(ConfigError, match="acoustic_sizes.tiny: unknown"):
        _cfg("acoustic_sizes.tiny.width=3")
    with pytest.raises(ConfigError, match="acoustic.train.batch_size: expected an integer"):
        _cfg("acoustic.train.batch_size=2.5")


# ----------------------------------------------------------------------------- metrics, vocoding
def test_mel_metrics():
    from priorgrad.acoustic.metrics_mel import gv_ratio, mel_cd, mel_l1, mel_metrics

    rng = np.random.default_rng(0)
    gt = rng.normal(size=(80, 30))
    assert mel_l1(gt, gt) == 0 and mel_cd(gt, gt) == 0 and gv_ratio(gt, gt) == pytest.approx(1.0)
    assert mel_l1(gt + 0.5, gt) == pytest.approx(0.5)
    assert mel_cd(gt + 0.5, gt) == pytest.approx(0.0, abs=1e-9)  # a level shift only moves c_0
    from scipy.fft import dct

    g2 = gt.copy()
    g2[:, :] += 0.1 * np.cos(np.pi * (np.arange(80)[:, None] + 0.5) * 3 / 80)  # moves c_3 only
    c3 = 0.1 * np.sqrt(80 / 2)
    assert mel_cd(g2, gt) == pytest.approx(10 / np.log(10) * np.sqrt(2) * c3, rel=1e-6)
    assert dct(g2 - gt, type=2, norm="ortho", axis=0)[3, 0] == pytest.approx(c3)
    assert gv_ratio(0.5 * gt, gt) == pytest.approx(0.25)
    assert set(mel_metrics(gt, gt, gt * 0)) == {"mel_l1", "mel_cd", "gv_ratio", "floor_mel_l1"}
    with pytest.raises(ValueError, match="equal shape"):
        mel_l1(gt, gt[:, :5])


def _envelope(x: np.ndarray) -> np.ndarray:
    from scipy.signal import fftconvolve

    return np.sqrt(np.maximum(fftconvolve(x ** 2, np.hanning(65), mode="same"), 0.0))


def _best_lag(a: np.ndarray, b: np.ndarray, max_lag: int = 300) -> int:
    n = min(len(a), len(b))
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    scores = {lag: float(np.dot(a[max(0, lag):n + min(0, lag)], b[max(0, -lag):n - max(0, lag)]))
              for lag in range(-max_lag, max_lag + 1)}
    return max(scores, key=scores.get)


def test_griffin_lim_is_time_aligned_with_the_source_audio():
    """Gaussian tone bursts (symmetric envelopes, so the envelope cross-correlation peaks at the true lag):
    the rendering of their own mel peaks at lag 0 (within 16 samples); without the 128-sample shift it
    would peak near -128."""
    from priorgrad.core.audio import log_mel
    from priorgrad.acoustic.vocode import griffin_lim

    sr, n = 22050, 256 * 100
    t = np.arange(n) / sr
    rng = np.random.default_rng(0)
    wav = np.zeros(n)
    for c in np.arange(0.08, n / sr - 0.08, 0.11):
        wav += np.exp(-0.5 * ((t - c) / 0.008) ** 2) * np.sin(2 * np.pi * rng.uniform(200, 2000) * t)
    wav = (0.5 * wav / np.abs(wav).max()).astype(np.float32)
    mel = log_mel(wav)
    out = griffin_lim(mel, n_iter=60, seed=0)
    assert len(out) == mel.shape[1] * 256 == n
    lag = _best_lag(_envelope(out.astype(np.float64)), _envelope(wav.astype(np.float64)))
    assert abs(lag) <= 16, lag
    unshifted = np.concatenate([out[128:], np.zeros(128, np.float32)])
    lag_unshifted = _best_lag(_envelope(unshifted.astype(np.float64)), _envelope(wav.astype(np.float64)))
    assert abs(lag_unshifted + 128) <= 16, lag_unshifted
    with pytest.raises(ValueError, match="NaN"):
        griffin_lim(np.full((80, 4), np.nan))
