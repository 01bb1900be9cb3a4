"""The roofline note's FLOP counts equal torch's own count of the real model (tiny network)."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.roofline import Net, denoiser_flops, forward_flops, markdown, training_flops
from priorgrad.vocoder.model import DiffWave, count_parameters


def _count(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_analytic_flops_equal_flop_counter_mode() -> None:
    net = Net(layers=3, channels=8, factors=(4, 64))
    torch.manual_seed(0)
    model = DiffWave(residual_layers=3, residual_channels=8, dilation_cycle=2, upsample_factors=[4, 64])
    assert count_parameters(model) == net.n_params
    b, frames = 2, 5
    x = torch.randn(b, frames * 256)
    mel = torch.randn(b, 80, frames)
    t = torch.tensor([1.5, 20.0])
    assert _count(lambda: model(x, mel, t)) == forward_flops(net, b, frames * 256)
    cond = model.condition(mel)
    assert _count(lambda: model.denoise(x, cond, t)) == denoiser_flops(net, b, frames * 256)
    assert _count(lambda: model(x, mel, t).square().mean().backward()) == training_flops(net, b, frames * 256)


def test_paper_networks_and_table() -> None:
    assert Net(30, 64).n_params == 2_619_971 and Net(30, 32).n_params == 1_227_651
    table = markdown()
    assert "needs a GPU run" in table and "| base | bf16 | fused |" in table
