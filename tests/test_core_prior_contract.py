"""The prior contract at the diffusion boundary (priorgrad/core/prior_contract.py): the diagonal prior every
registered prior uses runs exactly the float operations the diffusion module ran before the contract
(sigma * n, (eps_hat - eps) / sigma, (c * sigma) * n), so losses and samples are bit-identical.

The references below are the pre-contract code (priorgrad/core/diffusion.py, priorgrad/vocoder/infer.py at f1ce9a5) kept
verbatim; scripts/prior_golden.py compared whole training steps and samples of every prior of both families
before and after the refactor (48 digests, all equal).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from priorgrad.core.diffusion import Diffusion, strided_schedule
from priorgrad.vocoder.prior import EnergyPrior, StandardPrior
from priorgrad.core.prior_contract import DiagonalDraw, PriorDraw, draw_scaled, sigma_of


def _old_training_loss(d: Diffusion, model, x0, cond, sigma, t, n, mu=None, mask=None) -> torch.Tensor:
    eps = sigma * n
    x_t = d.q_sample(x0 if mu is None else x0 - mu, t, eps)
    eps_hat = model(x_t, cond, t.to(torch.float32)).float()
    diff = (eps_hat - eps.float()) / sigma.float()
    value = diff.abs() if d.loss_kind == "l1" else diff.pow(2)
    if mask is None:
        return value.mean()
    m = mask.to(value.dtype).expand_as(value)
    return (value * m).sum() / m.sum().clamp_min(1.0)


def _old_sample(d: Diffusion, model, sigma, steps, noise, clamp=True, mu=None, mask=None) -> torch.Tensor:
    eta, t_align = d.schedule(steps)
    gamma = 1.0 - eta
    gbar = np.cumprod(gamma)
    x = sigma * noise(0)
    for s in range(len(eta) - 1, -1, -1):
        t = torch.full((sigma.shape[0],), float(t_align[s]))
        eps_hat = model(x, None, t).float()
        x = (x - eta[s] / np.sqrt(1.0 - gbar[s]) * eps_hat) / np.sqrt(gamma[s])
        if s > 0:
            var = (1.0 - gbar[s - 1]) / (1.0 - gbar[s]) * eta[s]
            x = x + np.sqrt(var) * sigma * noise(len(eta) - s)
        if clamp:
            x = torch.clamp(x, -1.0, 1.0)
    if mu is not None:
        x = x + mu
    if mask is not None:
        x = x * mask
    return x


def test_the_diagonal_draw_is_a_prior_draw_with_the_old_float_ops() -> None:
    g = torch.Generator().manual_seed(0)
    sigma, mu, n = torch.rand(2, 80, 9, generator=g) + 0.1, torch.randn(2, 80, 9, generator=g), torch.randn(2, 80, 9)
    p = DiagonalDraw(sigma, mu)
    assert isinstance(p, PriorDraw) and p.mean() is mu and DiagonalDraw(sigma).mean() == 0.0
    assert torch.equal(p.draw(n), sigma * n) and torch.equal(p.whiten(n), n / sigma)
    assert torch.equal(draw_scaled(p, n, np.sqrt(0.3)), np.sqrt(0.3) * sigma * n)
    assert sigma_of(p) is sigma and sigma_of(DiagonalDraw(1.0)) is None

    class Plain:  # a prior with only the contract's three methods: the generic scale * L n
        def mean(self) -> float:
            return 0.0

        def draw(self, x: torch.Tensor) -> torch.Tensor:
            return 2.0 * x

        def whiten(self, r: torch.Tensor) -> torch.Tensor:
            return r / 2.0

    assert torch.equal(draw_scaled(Plain(), n, 0.5), 0.5 * (2.0 * n)) and sigma_of(Plain()) is None


@pytest.mark.parametrize("family", ["vocoder", "acoustic"])
def test_training_loss_is_bit_identical_to_the_pre_contract_loss(family: str) -> None:
    g = torch.Generator().manual_seed(1)
    d = Diffusion(50) if family == "vocoder" else Diffusion(400, 1e-4, 0.05)
    shape = (3, 512) if family == "vocoder" else (3, 80, 20)
    x0, sigma = torch.randn(shape, generator=g), torch.rand(shape, generator=g) + 0.1
    mu = None if family == "vocoder" else torch.randn(shape, generator=g)
    mask = None if family == "vocoder" else (torch.arange(20) < torch.tensor([[20], [14], [7]])).float()[:, None]
    w = torch.randn(shape[-1], shape[-1], generator=g) * 0.05
    net = lambda x, c, t: torch.tanh(x @ w + t.view(-1, *([1] * (x.dim() - 1))) / 50)  # noqa: E731
    t, n = d.draw_training_noise(x0, torch.Generator().manual_seed(2))
    for kind in ("l2", "l1"):
        d.loss_kind = kind
        ref = _old_training_loss(d, net, x0, None, sigma, t, n, mu, mask)
        got = d.training_loss_given(net, x0, None, DiagonalDraw(sigma, mu), t, n, mask)
        assert torch.equal(got, ref), kind


@pytest.mark.parametrize("steps", [6, 12])
def test_vocoder_samples_are_bit_identical_to_the_pre_contract_sampler(steps: int) -> None:
    d = Diffusion()
    g = torch.Generator().manual_seed(3)
    rng = np.random.default_rng(0)  # frames of varied loudness: sigma varies between std_min and 1
    mels = [np.log(rng.uniform(1e-4, 1.0, (80, k)) * rng.uniform(1e-3, 0.2, (1, k))).astype(np.float32)
            for k in (7, 4)]
    prior = EnergyPrior(0.03, 4.0, preset="hifigan")
    draw = prior.condition(mels, 256, 7 * 256)
    # the pre-contract batch sigma (priorgrad/vocoder/infer.py batch_inputs)
    sig = np.ones((2, 7 * 256), np.float32)
    for i, m in enumerate(mels):
        s = prior.sigma_frames(m)
        sig[i, :len(s) * 256], sig[i, len(s) * 256:] = np.repeat(s, 256), s.min()
    sigma = torch.from_numpy(sig)
    assert torch.equal(draw.sigma, sigma) and sigma.min() < sigma.max()
    assert torch.equal(StandardPrior().condition(mels, 256, 7 * 256).sigma, torch.ones(2, 7 * 256))
    draws = [torch.randn(2, 7 * 256, generator=g) for _ in range(steps)]
    w = torch.randn(7 * 256, generator=g) * 0.1
    net = lambda x, c, t: torch.tanh(x * w + t[:, None] / 50)  # noqa: E731
    ref = _old_sample(d, net, sigma, steps, lambda k: draws[k])
    assert torch.equal(d.sample(net, None, draw, steps, noise=lambda k: draws[k]), ref)


def test_acoustic_samples_are_bit_identical_to_the_pre_contract_sampler() -> None:
    d = Diffusion(400, 1e-4, 0.05)
    g = torch.Generator().manual_seed(4)
    sigma, mu = torch.rand(2, 80, 30, generator=g) + 0.5, torch.randn(2, 80, 30, generator=g)
    mask = torch.ones(2, 1, 30)
    mask[1, :, 20:] = 0
    sched = strided_schedule(d.betas, 6)
    draws = [torch.randn(2, 80, 30, generator=g) for _ in range(6)]
    net = lambda x, c, t: torch.tanh(x * 0.3 + t[:, None, None] / 400)  # noqa: E731
    for m in (mu, None):  # PriorGrad (a mean) and B1 (none)
        ref = _old_sample(d, net, sigma, sched, lambda k: draws[k], clamp=False, mu=m, mask=mask)
        got = d.sample(net, None, DiagonalDraw(sigma, m), sched, noise=lambda k: draws[k], clamp=False, mask=mask)
        assert torch.equal(got, ref)
