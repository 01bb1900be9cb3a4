"""SpecGrad wired into the bench (issue 23): through the real diffusion module m = 1 is DiffWave, the registry
entry trains, validates and samples on a tiny config (host and resident crops) with its floor L n, its options
change only its own trials' training hash, and a three-prior report shows the SpecGrad pairs and the claim."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from priorgrad.core import registry
from priorgrad.core.config import ConfigError, load_params
from priorgrad.core.diffusion import Diffusion
from priorgrad.vocoder.prior import StandardPrior
from priorgrad.vocoder.specgrad import SpecGradDraw, SpecGradSTFT

from support.project import ROOT

HOP = 256


def _unit_specgrad(batch: int, frames: int) -> SpecGradDraw:
    """SpecGrad's draw with m = 1 in every frame and bin (the default filter STFT): L = G+ G = I."""
    stft = SpecGradSTFT.for_preset("hifigan", 2048, 1024)
    return SpecGradDraw(torch.ones(batch, frames, stft.n_bins, dtype=torch.complex64), stft, frames * HOP)


def test_unit_filter_gives_diffwaves_loss_and_samples_through_the_diffusion_module() -> None:
    """m = 1 against DiffWave's own PriorDraw (StandardPrior.condition) through priorgrad.core.diffusion: the same
    training loss and the same 6- and 12-step samples up to the float32 STFT round trip (G+ G n = n to ~1e-6,
    tests/test_specgrad.py). Measured (this test's seeds, CPU): loss relative difference 0 (equal in float32),
    sample max |difference| 8.3e-7 (6 steps) and 7.7e-7 (12 steps); bounds 1e-5 (loss, relative) and 1e-5
    (samples, absolute), over ten times the measurement."""
    g = torch.Generator().manual_seed(0)
    frames, b = 16, 2
    d = Diffusion(50)
    mels = [np.zeros((80, frames), np.float32)] * b
    diffwave = StandardPrior().condition(mels, HOP, frames * HOP)
    specgrad = _unit_specgrad(b, frames)
    w = torch.randn(frames * HOP, generator=g) * 0.1
    net = lambda x, c, t: torch.tanh(x * w + t[:, None] / 50)  # noqa: E731 - a fixed deterministic "network"
    x0 = torch.randn(b, frames * HOP, generator=g) * 0.3
    t = torch.tensor([3, 41])
    n = torch.randn(b, frames * HOP, generator=g)
    loss_dw = d.training_loss_given(net, x0, None, diffwave, t, n)
    loss_sg = d.training_loss_given(net, x0, None, specgrad, t, n)
    assert abs(float(loss_sg / loss_dw) - 1) < 1e-5
    for steps in (6, 12):
        draws = [torch.randn(b, frames * HOP, generator=g) for _ in range(steps)]
        x_dw = d.sample(net, None, diffwave, steps, noise=lambda k: draws[k])
        x_sg = d.sample(net, None, specgrad, steps, noise=lambda k: draws[k])
        assert (x_sg - x_dw).abs().max().item() < 1e-5, steps


def test_the_registry_entry_trains_validates_and_samples(tmp_path: Path) -> None:
    from priorgrad.vocoder.infer import generate, prior_noise, utterance_seed
    from priorgrad.vocoder.specgrad import SpecGradPrior

    from support.core import train_registered_vocoder_prior

    entry = registry.prior("specgrad")
    assert (entry.system, entry.family, entry.floor, entry.needs_stats) == ("specgrad", "vocoder", "L n", False)
    assert ("specgrad", "priorgrad") in registry.comparisons("vocoder")
    tr = train_registered_vocoder_prior(tmp_path, "specgrad", SpecGradPrior)
    p = tr.params
    metrics = tr.validate()
    assert np.isfinite(metrics["valid/loss"]) and np.isfinite(metrics["valid/ls_mae"])
    # two utterances of different lengths in one batch: the shorter one's padding is the prior's own rule
    mels = [v["mel"] for v in tr.valid] + [tr.valid[0]["mel"][:, :5]]
    seeds = [utterance_seed(0, f"u{i}") for i in range(len(mels))]
    wavs = generate(tr.model.eval(), tr.diffusion, tr.prior, mels, seeds, 6, p.audio.preset)
    floors = prior_noise(tr.prior, mels, seeds, p.audio.preset)
    for m, wav, floor in zip(mels, wavs, floors):
        assert wav.shape == floor.shape == (m.shape[1] * HOP,) and np.isfinite(wav).all()
    # the floor is SpecGrad's own draw L n of the seed's white noise (the evaluate stage's floor row); checked on
    # the batch's longest utterance: a shorter one's last window (n_fft samples) also sees its padded tail, as a
    # generated waveform sees it through the network's receptive field (priorgrad.vocoder.sampling_inputs)
    assert mels[0].shape[1] == max(m.shape[1] for m in mels)
    n = torch.randn(mels[0].shape[1] * HOP, generator=torch.Generator().manual_seed(seeds[0]))
    own = tr.prior.condition([mels[0]], HOP, len(n)).draw(n[None])[0]
    assert np.allclose(floors[0], np.clip(own.numpy(), -1, 1), atol=1e-6)


def test_specgrad_options_change_only_specgrads_training_hash() -> None:
    from experiments.spec import training_hash

    def h(prior: str, *extra: str) -> str:
        return training_hash(load_params(ROOT / "params.yaml", [f"prior.type={prior}", *extra]))

    for prior in ("standard", "energy"):
        assert h(prior) == h(prior, "prior.specgrad.lifter_order=20")
    assert h("specgrad") != h("specgrad", "prior.specgrad.lifter_order=20")
    assert h("specgrad") == h("specgrad", "prior.std_min=0.2") == h("specgrad", "prior.max_energy=3.0")
    assert h("energy") != h("energy", "prior.std_min=0.2")


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"prior\.specgrad\.floor"):
        load_params(ROOT / "params.yaml", ["prior.type=specgrad", "prior.specgrad.floor=0"])
    from experiments.spec import sweep_config

    with pytest.raises(ConfigError, match=r"sweep\.priors: \['specgrd'\] not registered"):
        sweep_config(load_params(ROOT / "params.yaml", ["sweep.priors=[standard, specgrd]"]))
    three = sweep_config(load_params(ROOT / "params.yaml", ["sweep.priors=[standard, energy, specgrad]"]))
    assert list(three.priors) == ["standard", "energy", "specgrad"]


def test_a_three_prior_report_shows_the_specgrad_pairs_and_claim(tmp_path: Path) -> None:
    from reports.config import project_report_config
    from reports.generate import generate

    from support.reports import THREE_PRIORS, make_runs

    make_runs(tmp_path, priors=THREE_PRIORS)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        generate(Path("runs/eval"), Path("runs/sweep"), project_report_config(n_listening=3), Path("out"))
    finally:
        os.chdir(cwd)
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    claim = next(ln for ln in md.splitlines() if ln.startswith("| SpecGrad better than PriorGrad"))
    # the fixture's SpecGrad is better than PriorGrad at T = 6 and equal at T = 50: the one rule's words
    assert any(f"**{v}**" in claim for v in ("supported", "inconclusive", "no difference detected",
                                              "negligible difference"))
    assert "**refuted**" not in claim and "Holm p" in claim
    assert "SpecGrad significantly better / worse than DiffWave" in md
    assert "SpecGrad significantly better / worse than PriorGrad" in md
    regime = md[md.index("## The regime of these runs"):md.index("## The paper's claims")]
    assert "Seeds per system: DiffWave 3, PriorGrad 3, SpecGrad 3" in regime
    html = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    listening = html[html.index('id="listening"'):html.index('id="provenance"')]
    assert "SpecGrad" in listening and "no SpecGrad examples" not in listening
