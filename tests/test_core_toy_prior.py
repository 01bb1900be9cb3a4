"""A prior added through its own module and a registry entry alone (tests/support/toy_prior.py, a
non-diagonal PriorDraw) trains, validates and samples in both families, with no other file touched."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from priorgrad.core import registry

from support.project import ROOT

A_TINY = ["acoustic.model.size=tiny", "acoustic.train.batch_size=4", "acoustic.train.window_frames=32",
          "acoustic.train.threads=1", "acoustic.train.valid_utterances=2", "acoustic.train.valid_steps=2",
          "acoustic.train.device=cpu", "acoustic.infer.device=cpu", "acoustic.model.prior=toy"]


@pytest.fixture
def toy_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy prior's two registry entries (one per family), as a new prior's module would add them."""
    base = registry.prior("standard", "vocoder")
    entries = {"vocoder": dataclasses.replace(base, name="toy", system="toy-vocoder", label="Toy (flipped noise)",
                                              short="Toy", builder="support.toy_prior:build_vocoder",
                                              needs_stats=False, role="baseline"),
               "acoustic": dataclasses.replace(registry.prior("standard", "acoustic"), name="toy",
                                               system="toy-acoustic", label="Toy (flipped mel noise)",
                                               short="Toy AM", builder="support.toy_prior:build_acoustic",
                                               needs_stats=False, role="baseline")}
    for family, entry in entries.items():
        monkeypatch.setitem(registry._BY_FAMILY[family], "toy", entry)


def test_a_toy_prior_trains_and_samples_in_the_vocoder(toy_registered, tmp_path) -> None:
    from priorgrad.vocoder.infer import generate, prior_noise, utterance_seed

    from support.core import train_registered_vocoder_prior
    from support.toy_prior import ToyVocoderPrior

    tr = train_registered_vocoder_prior(tmp_path, "toy", ToyVocoderPrior)
    p = tr.params
    metrics = tr.validate()
    assert np.isfinite(metrics["valid/loss"]) and np.isfinite(metrics["valid/ls_mae"])
    mels = [v["mel"] for v in tr.valid]
    seeds = [utterance_seed(0, v["utt"]) for v in tr.valid]
    wav = generate(tr.model.eval(), tr.diffusion, tr.prior, mels, seeds, 6, p.audio.preset)[0]
    floor = prior_noise(tr.prior, mels, seeds, p.audio.preset)[0]
    assert wav.shape == floor.shape == (mels[0].shape[1] * 256,) and np.isfinite(wav).all()
    # the floor is the toy prior's own draw: 0.5 * the seed's white noise, reversed
    n = torch.randn(len(floor), generator=torch.Generator().manual_seed(seeds[0])).numpy()
    assert np.allclose(floor, np.clip(0.5 * n[::-1], -1, 1))


def test_a_toy_prior_trains_and_samples_in_the_acoustic_model(toy_registered, tmp_path) -> None:
    from priorgrad.acoustic.model_config import load_acoustic_config
    from priorgrad.acoustic.sampler import make_schedule, sample_mels
    from priorgrad.acoustic.toydata import make_toy_features
    from priorgrad.acoustic.train import AcousticTrainer

    from support.toy_prior import ToyAcousticPrior

    toy = make_toy_features(tmp_path / "toy", n_train=8, n_valid=2, n_test=2)
    cfg = load_acoustic_config(ROOT / "params.yaml", A_TINY)
    tr = AcousticTrainer(cfg, toy, tmp_path / "run", prior=toy / "phoneme_stats.npz", progress=False)
    assert isinstance(tr.prior, ToyAcousticPrior) and tr.model.mu_head is None
    steps = [tr.train_step() for _ in range(2)]
    assert all(np.isfinite(s["train/diff"]) for s in steps) and "train/prior" not in steps[0]
    assert np.isfinite(tr.validate()["valid/mel_l1"])
    res = sample_mels(tr.model.eval(), tr.diffusion, cfg.model, tr.table, tr.valid_utts,
                      make_schedule(tr.diffusion, "strided", 4), [3, 4], "E1", tr.f0_stats, torch.device("cpu"),
                      start_only=True)
    # the start is the toy prior's draw in the data domain: its mean -3 plus 0.7 * n reversed over the bins
    u = tr.valid_utts[0]
    n = torch.randn(80, u.n_frames, generator=torch.Generator().manual_seed(3)).numpy()
    assert np.allclose(res[0]["x_start"], -3.0 + 0.7 * n[::-1], atol=1e-6)
