"""Acoustic model training, resumption, synthesis and the CLI end to end (tiny sizes, toy features in the
contract's directory format, real components)."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from priorgrad.acoustic.dataset import AcousticFeatureError, FeatureSet
from priorgrad.acoustic.model_config import load_acoustic_config
from priorgrad.acoustic.toydata import make_toy_features
from priorgrad.acoustic.train import train_acoustic
from priorgrad.core.checkpoint import load
from priorgrad.core.prior_contract import DiagonalDraw
from priorgrad.core.runtime import TrainingDiverged

from support.core import ROOT, kill_at_checkpoint, run_cli, sets

TINY = ["acoustic.model.size=tiny", "acoustic.train.batch_size=4", "acoustic.train.window_frames=32",
        "acoustic.train.threads=1", "acoustic.train.valid_utterances=2", "acoustic.train.valid_steps=2",
        "acoustic.train.log_every=5", "acoustic.train.warmup_steps=20", "acoustic.train.lr_scale=0.1",
        "acoustic.train.device=cpu", "acoustic.infer.device=cpu"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return make_toy_features(tmp_path_factory.mktemp("toy") / "feats", n_train=24, n_valid=2, n_test=2)


def _cfg(*over: str):
    return load_acoustic_config(ROOT / "params.yaml", TINY + list(over))


def test_features_directory_is_read_and_checked(toy, tmp_path):
    fs = FeatureSet(toy)
    train = fs.utterances("train")
    assert len(train) == 24 and fs.vocab[:3] == ["<pad>", "<EOS>", "<UNK>"]
    u = train[0]
    assert u.durations.sum() == u.n_frames and u.tokens[0] == 2 and u.tokens[-1] == 1
    bad = tmp_path / "bad"
    shutil.copytree(toy, bad)
    p = bad / "utts" / f"{u.utt}.npz"
    with np.load(p) as z:
        arrays = dict(z)
    arrays["durations"][1] += 1
    np.savez(p, **arrays)
    with pytest.raises(AcousticFeatureError, match=f"{u.utt}.npz: durations sum to"):
        FeatureSet(bad).utterances("train")
    with pytest.raises(AcousticFeatureError, match="manifest.jsonl: not found"):
        FeatureSet(tmp_path / "nowhere")


def test_phoneme_prior_without_statistics_is_a_clear_error(toy, tmp_path):
    with pytest.raises(ValueError, match="no phoneme statistics"):
        train_acoustic(_cfg("acoustic.train.max_steps=1"), toy, tmp_path / "run", prior=None)
    with pytest.raises(FileNotFoundError, match="phoneme statistics not found"):
        train_acoustic(_cfg("acoustic.train.max_steps=1"), toy, tmp_path / "run", prior=tmp_path / "missing.npz")


def test_nan_loss_stops_naming_the_step(toy, tmp_path):
    # An absurd learning rate blows the weights up in the first update: step 2's loss is not finite.
    cfg = _cfg("acoustic.train.max_steps=5", "acoustic.train.lr_scale=1e30", "acoustic.train.validate_every=100",
               "acoustic.model.prior=standard")
    with pytest.raises(TrainingDiverged, match=r"at step 2 "):
        train_acoustic(cfg, toy, tmp_path / "run", prior=toy / "phoneme_stats.npz")


def test_resume_with_other_params_is_refused_and_a_longer_budget_continues(toy, tmp_path):
    stats = toy / "phoneme_stats.npz"
    base = ["acoustic.train.validate_every=2", "acoustic.train.checkpoint_every=2"]
    train_acoustic(_cfg("acoustic.train.max_steps=2", *base), toy, tmp_path / "run", prior=stats)
    with pytest.raises(ValueError, match="acoustic.train.window_frames"):
        train_acoustic(_cfg("acoustic.train.max_steps=4", "acoustic.train.window_frames=16", *base), toy,
                       tmp_path / "run", prior=stats)
    r = train_acoustic(_cfg("acoustic.train.max_steps=4", *base), toy, tmp_path / "run", prior=stats)
    assert r["step"] == 4 and "valid/floor_mel_l1" in r
    ck = load(tmp_path / "run" / "checkpoints" / "last.pt")
    assert ck["vocab"] == FeatureSet(toy).vocab and ck["prior_table"]["mu"].shape == (len(ck["vocab"]), 80)
    assert ck["params"]["acoustic"]["model"]["size"] == "tiny"


def test_bf16_precision_trains_on_cpu_with_finite_losses(toy, tmp_path):
    """acoustic.train.precision comes from the shared runtime: bf16 autocast runs the step and validation."""
    cfg = _cfg("acoustic.train.max_steps=2", "acoustic.train.precision=bf16", "acoustic.train.log_every=1",
               "acoustic.train.validate_every=2", "acoustic.train.checkpoint_every=2")
    r = train_acoustic(cfg, toy, tmp_path / "run", prior=toy / "phoneme_stats.npz")
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [x["train/loss"] for x in recs if "train/loss" in x]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert r["step"] == 2 and math.isfinite(r["valid/mel_l1"])
    assert load(r["checkpoint"])["params"]["acoustic"]["train"]["precision"] == "bf16"


def test_compiled_step_gives_the_eager_losses(toy, tmp_path, monkeypatch):
    """acoustic.train.compile runs the step's forward passes through torch.compile (here its eager backend:
    the wiring, without the C++ toolchain inductor needs) with the same losses, bit for bit."""
    import priorgrad.acoustic.train as acoustic_train

    monkeypatch.setattr(acoustic_train, "compile_model", lambda fn: torch.compile(fn, backend="eager"))
    losses = {}
    for compile in ("false", "true"):
        tr = acoustic_train.AcousticTrainer(_cfg(f"acoustic.train.compile={compile}"), toy, tmp_path / compile,
                                            prior=toy / "phoneme_stats.npz", progress=False)
        losses[compile] = [tr.train_step()["train/loss"] for _ in range(2)]
    assert type(tr.decoder_fn).__name__ == "OptimizedModule"
    assert losses["true"] == losses["false"]


def test_stopped_and_resumed_run_equals_an_uninterrupted_one(toy, tmp_path):
    """In process (the SIGKILL variant below is slow): 2 steps, then resumed to 4, equals 4 straight steps,
    weights and optimiser state; deterministic may change on resume (as the vocoder's), precision may not."""
    stats, base = toy / "phoneme_stats.npz", ["acoustic.train.validate_every=100", "acoustic.train.checkpoint_every=2"]
    straight = train_acoustic(_cfg("acoustic.train.max_steps=4", *base), toy, tmp_path / "straight", prior=stats)
    train_acoustic(_cfg("acoustic.train.max_steps=2", *base), toy, tmp_path / "run", prior=stats)
    with pytest.raises(ValueError, match="acoustic.train.precision"):
        train_acoustic(_cfg("acoustic.train.max_steps=4", "acoustic.train.precision=bf16", *base), toy,
                       tmp_path / "run", prior=stats)
    resumed = train_acoustic(_cfg("acoustic.train.max_steps=4", "acoustic.train.deterministic=true", *base), toy,
                             tmp_path / "run", prior=stats)
    a, b = load(straight["checkpoint"]), load(resumed["checkpoint"])
    assert a["step"] == b["step"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def _oracle_samples(toy: Path, prior: str, steps: int, rank: int = 80, clip_x0: str = "none") -> tuple[Any, ...]:
    """E1 samples of the validation utterances through the real sampling path (``sample_mels``) with the
    decoder replaced by an oracle that knows x0: eps_hat = (x_t - sqrt(abar_t) x0') / sqrt(1 - abar_t), x0' the
    diffused target (x0 - mu for PriorGrad, x0 for B1). ``rank`` < 80 keeps only the part of eps_hat / s in a
    fixed rank-dimensional subspace: the best a decoder with ``rank`` residual channels can output (its last
    layer is Conv1d(C -> 80)). Returns (mel L1, mu-alone floor) per utterance."""
    from priorgrad.acoustic.dataset import collate
    from priorgrad.acoustic.metrics_mel import mel_l1
    from priorgrad.acoustic.model import TablePrior, build_acoustic_model
    from priorgrad.acoustic.synthesize import load_frame_prior, sample_mels
    from priorgrad.core.diffusion import Diffusion, strided_schedule

    fs = FeatureSet(toy)
    utts = fs.utterances("valid") + fs.utterances("test")
    table = TablePrior.from_prior(load_frame_prior(toy / "phoneme_stats.npz"), len(fs.vocab))
    cfg = _cfg(f"acoustic.model.prior={prior}")
    torch.manual_seed(0)
    model = build_acoustic_model(cfg, len(fs.vocab)).eval()
    diffusion = Diffusion(400, 1e-4, 0.05)
    b = collate(utts, table)
    x0 = b["mel"] - b["mu"] if prior == "phoneme" else b["mel"]
    s = b["s"] if prior == "phoneme" else torch.ones_like(b["mel"])
    basis = torch.linalg.qr(torch.randn(80, 80, generator=torch.Generator().manual_seed(0)))[0][:, :rank]

    def oracle(x, _cond_proj, t, mask):
        abar = float(diffusion.alpha_bar[int(round(float(t[0])))])
        eps = (x - math.sqrt(abar) * x0) / math.sqrt(1.0 - abar)
        if rank == 80:
            return eps * mask
        z = torch.einsum("mr,bmn->brn", basis, eps / s)
        return torch.einsum("mr,brn->bmn", basis, z) * s * mask

    model.decoder.denoise = oracle
    clipped: list[float] = []
    res = sample_mels(model, diffusion, cfg.model, table, utts, strided_schedule(diffusion.betas, steps),
                      list(range(len(utts))), "E1", (fs.f0_mean, fs.f0_std), torch.device("cpu"),
                      clip_x0=clip_x0, clipped=clipped)
    l1 = [mel_l1(r["mel"], u.mel) for r, u in zip(res, utts)]
    floor = [mel_l1(table.frame_stats(u.frame_ids())[0], u.mel) for u in utts]
    if clip_x0 != "none":
        return l1, floor, clipped
    return l1, floor


@pytest.mark.parametrize("prior", ["phoneme", "standard"])
def test_sampler_recovers_the_mel_exactly_from_the_true_noise(toy, prior):
    """The validation / synthesis sampler (strided 12 steps and the full 400) returns x0 when the decoder outputs
    the true noise: the update, the noise term, the step indexing (t~ = t_s), mu and the mask are consistent."""
    for steps in (12, 400):
        l1, floor = _oracle_samples(toy, prior, steps)
        assert max(l1) < 1e-3 < min(floor), (steps, l1)


@pytest.mark.parametrize("rank", [16, 32])
def test_a_decoder_narrower_than_the_80_mel_bins_cannot_sample_a_mel(toy, rank):
    """Why the spec's tiny (C = 16) and cpu (C = 32) decoders never reach the mu-alone floor: eps_hat =
    Conv1d(C -> 80)(h) lies in a C-dimensional subspace, the noise in the other 80 - C directions is never
    removed and grows by 1 / sqrt(abar_T) ~ 163 over the reverse process. Even a perfect rank-C denoiser
    leaves the E1 mel L1 two orders of magnitude above the floor (measured: ~100-160 against ~0.7 here);
    C >= 80 is necessary (docs/acoustic-model.md)."""
    from priorgrad.acoustic.model import MelDecoder

    dec = MelDecoder(32, rank, 2, 400)
    torch.nn.init.normal_(dec.output_projection.weight)  # zero-initialised: any trained value has this rank
    with torch.no_grad():
        out = dec(torch.randn(1, 80, 300), torch.randn(1, 32, 300), torch.tensor([7.0]), torch.ones(1, 1, 300))
    assert torch.linalg.matrix_rank(out[0] - dec.output_projection.bias[:, None]) <= rank
    l1, floor = _oracle_samples(toy, "phoneme", 12, rank)
    assert np.mean(l1) > 20 * np.mean(floor), (l1, floor)


def _train_cmd(toy: Path, run: Path, steps: int, prior: str = "phoneme") -> list[str]:
    return [sys.executable, "-m", "priorgrad", "acoustic", "train", "--features", str(toy), "--stats",
            str(toy / "phoneme_stats.npz"), "--run-dir", str(run),
            *sets(*TINY, f"acoustic.train.max_steps={steps}", "acoustic.train.checkpoint_every=3",
                  "acoustic.train.validate_every=1000", f"acoustic.model.prior={prior}")]


@pytest.mark.slow
# PriorGrad's phoneme prior (B2 adds a head and a loss term to the same trainer, whose state and seeded
# step are what resume restores; its training is covered by the other tests of this file).
@pytest.mark.parametrize("prior", ["phoneme"])
def test_sigkill_and_resume_matches_uninterrupted_run(toy, tmp_path, prior):
    steps = 25  # a multiple of log_every (5): the last step is logged
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run(_train_cmd(toy, tmp_path / "straight", steps, prior), cwd=ROOT, check=True, capture_output=True,
                   timeout=600, env=env)
    run = tmp_path / "killed"
    killed_at = kill_at_checkpoint(_train_cmd(toy, run, steps, prior), run, 6, timeout=400, env=env)
    assert killed_at is not None and killed_at < steps, "training finished before it could be killed"
    resumed = subprocess.run(_train_cmd(toy, run, steps, prior), cwd=ROOT, capture_output=True, text=True,
                             timeout=600, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stderr
    a, b = load(tmp_path / "straight" / "checkpoints" / "last.pt"), load(run / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == steps
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    logged = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()
              if "train/loss" in json.loads(x)]
    assert logged == sorted(set(logged)) and logged[-1] == steps


@pytest.mark.slow
@pytest.mark.parametrize("prior", ["phoneme", "standard"])
def test_tiny_training_lowers_the_e1_mel_l1(toy, tmp_path, prior):
    """E1 mel L1 after 300 steps at least 10% below its step-0 value (PriorGrad and B1); the mu-alone floor is logged.

    The tiny size with its decoder widened to 96 channels: a decoder narrower than the 80 mel bins cannot sample
    a mel at all (test_a_decoder_narrower_than_the_80_mel_bins_cannot_sample_a_mel). Not asserted: going below
    the floor, the issue's done criterion. It is out of reach in a few hundred CPU steps with the official
    decoder: it learns the 80-dimensional near-identity eps_hat ~ x_t needed at high t slowly, and the sampler
    amplifies what is left by up to 1/sqrt(abar_T) ~ 163 (measured curves in docs/acoustic-model.md).
    """
    cfg = _cfg("acoustic.train.max_steps=300", "acoustic.train.validate_every=300", "acoustic.train.checkpoint_every=300",
               f"acoustic.model.prior={prior}", "acoustic.train.batch_size=8", "acoustic.train.window_frames=64",
               "acoustic.train.valid_steps=6", "acoustic.train.log_every=50", "acoustic_sizes.tiny.decoder_channels=96",
               # the unclipped sampler whose E1 L1 the ratios below were measured with: clipped, step 0 already
               # starts near 3 (in the data's range) and 300 steps lower it by ~9% only
               "acoustic.infer.clip_x0=none")
    train_acoustic(cfg, toy, tmp_path / "run", prior=toy / "phoneme_stats.npz")
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    curve = {r["step"]: r["valid/mel_l1"] for r in recs if "valid/mel_l1" in r}
    floor = [r["valid/floor_mel_l1"] for r in recs if "valid/floor_mel_l1" in r]
    diff = [r["train/diff"] for r in recs if "train/diff" in r]
    assert sorted(curve) == [0, 300] and len(set(floor)) == 1 and floor[0] > 0
    assert diff[-1] < 0.9 * diff[0], diff
    # measured here: PriorGrad 0.72x, B1 0.81x of the step-0 value (seeded, deterministic on one machine)
    assert curve[300] < 0.9 * curve[0], curve


def test_synthesize_conditions_vocoder_and_schedule_search_through_the_cli(toy, tmp_path):
    r = train_acoustic(_cfg("acoustic.train.max_steps=2", "acoustic.train.validate_every=2",
                            "acoustic.train.checkpoint_every=2"), toy, tmp_path / "run", prior=toy / "phoneme_stats.npz")
    ck = r["checkpoint"]
    outs = []
    for name in ("a", "b"):
        p = run_cli("acoustic", "synthesize", "--checkpoint", ck, "--features", str(toy), "--out", str(tmp_path / name),
                    "--condition", "E1", "--condition", "E2", "--condition", "E3", "--steps", "6",
                    "--max-utterances", "1", *(["--vocoder", "griffin_lim"] if name == "a" else []))
        outs.append(json.loads(p.stdout))
    s = outs[0]
    assert s["schedule"]["t"] == [0, 16, 64, 144, 255, 399] and s["mel_rtf"] > 0 and s["vocoder"] == "griffin_lim"
    assert set(s["metrics"]) == {"E1", "E2"} and "floor_mel_l1" in s["metrics"]["E1"]
    utt = FeatureSet(toy).utterances("test")[0]
    for c in ("E1", "E2", "E3"):
        a, b = np.load(tmp_path / "a" / c / f"{utt.utt}.npy"), np.load(tmp_path / "b" / c / f"{utt.utt}.npy")
        assert np.array_equal(a, b)  # seeded per utterance
        if c != "E3":
            assert a.shape == utt.mel.shape
    import soundfile as sf

    wav, sr = sf.read(tmp_path / "a" / "E1" / f"{utt.utt}.wav")
    assert sr == 22050 and len(wav) == utt.n_frames * 256
    bad = run_cli("acoustic", "synthesize", "--checkpoint", ck, "--features", str(toy), "--out", str(tmp_path / "c"),
                  "--betas", "0.9,0.9,0.9,0.9,0.9,0.9", check=False)
    assert bad.returncode != 0 and "cannot be aligned" in bad.stderr
    txt = run_cli("acoustic", "synthesize", "--checkpoint", ck, "--out", str(tmp_path / "d"), "--text", "hello",
                  check=False)
    try:
        import priorgrad.acoustic.text  # noqa: F401  (the data side's tokenizer, once merged)
    except ImportError:
        assert txt.returncode != 0 and "priorgrad/acoustic/text.py" in txt.stderr
    se = run_cli("acoustic", "search-schedule", "--checkpoint", ck, "--features", str(toy), "--steps", "2",
                 "--out", str(tmp_path / "s.json"), "--max-candidates", "3")
    res = json.loads((tmp_path / "s.json").read_text())
    assert res["n_candidates"] == 73 and res["n_evaluated"] == 3 and len(res["betas"]) == 2
    assert json.loads(se.stdout)["mel_l1"] == res["mel_l1"]


def _plain_sampler(diffusion, model, sigma, schedule, noise, mu, mask):
    """The sampler as it was before acoustic.infer.clip_x0 existed (diffusion.py at 220e682), kept verbatim
    as the reference the default 'none' must reproduce bit for bit."""
    eta, t_align = diffusion.schedule(schedule)
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
    return (x + mu) * mask


@pytest.mark.parametrize("steps", [2, 6, 400])
def test_clip_none_is_bit_identical_to_the_plain_sampler_and_a_wide_range_changes_nothing(steps):
    """clip_x0 'none' (the default) runs the unchanged update: bit-identical to the pre-clip sampler. With a
    range nothing reaches, 'data_range' takes the DDPM posterior mean instead, which equals the DiffWave
    update algebraically: the same mel to float rounding, and 0 clipped at every step."""
    from priorgrad.core.diffusion import Diffusion, strided_schedule

    diffusion = Diffusion(400, 1e-4, 0.05)
    g = torch.Generator().manual_seed(3)
    sigma, mu = torch.rand(2, 80, 30, generator=g) + 0.5, torch.randn(2, 80, 30, generator=g) * 3 - 5
    mask = torch.ones(2, 1, 30)
    mask[1, :, 20:] = 0
    w = torch.randn(80, 80, generator=g) * 0.1
    net = lambda x, _c, t: torch.tanh(torch.einsum("ij,bjn->bin", w, x) + t[:, None, None] / 400)  # noqa: E731
    draws = [torch.randn(2, 80, 30, generator=g) for _ in range(steps)]
    sched = strided_schedule(diffusion.betas, steps)
    ref = _plain_sampler(diffusion, net, sigma, sched, lambda k: draws[k], mu, mask)
    prior = DiagonalDraw(sigma, mu)
    got = diffusion.sample(net, None, prior, sched, noise=lambda k: draws[k], clamp=False, mask=mask)
    assert torch.equal(got, ref)
    clipped: list[float] = []
    wide = (torch.full((1, 80, 1), -1e9), torch.full((1, 80, 1), 1e9))
    got = diffusion.sample(net, None, prior, sched, noise=lambda k: draws[k], clamp=False, mask=mask,
                           x0_range=wide, clipped=clipped)
    assert len(clipped) == steps and max(clipped) == 0.0
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    # a range that binds is not a no-op: every step reports what it clipped, and the output lies in the range
    clipped = []
    tight = (torch.full((1, 80, 1), -6.0), torch.full((1, 80, 1), -4.0))
    got = diffusion.sample(net, None, prior, sched, noise=lambda k: draws[k], clamp=False, mask=mask,
                           x0_range=tight, clipped=clipped)
    assert clipped[0] > 0.1 and not torch.equal(got, ref)


@pytest.mark.parametrize("prior", ["phoneme", "standard"])
def test_clip_data_range_with_the_oracle_noise_recovers_the_mel_with_nothing_clipped(toy, prior):
    """The x0 clip to the training mels' per-bin range (stored with the phoneme statistics) is inactive on a
    model that predicts the true noise: the mel comes back exactly, and each step clips exactly the elements
    of the held-out ground truth that lie outside the TRAINING range (0.03% here; 0 within the range)."""
    with np.load(toy / "phoneme_stats.npz") as z:
        lo, hi = z["mel_min"][:, None], z["mel_max"][:, None]
    fs = FeatureSet(toy)
    gt = np.concatenate([u.mel for u in fs.utterances("valid") + fs.utterances("test")], axis=1)
    outside = float(((gt < lo) | (gt > hi)).mean())
    assert outside < 1e-3
    for steps in (12, 400):
        l1, floor, clipped = _oracle_samples(toy, prior, steps, clip_x0="data_range")
        assert max(l1) < 1e-3 < min(floor), (steps, l1)
        assert len(clipped) == steps and np.allclose(clipped, outside, rtol=0, atol=1e-7), (clipped, outside)


# The official grids' start points (gamma_bar_S = prod(1 - beta), aligned to the T = 400 schedule), computed
# from microsoft/NeuralSpeech PriorGrad-acoustic tasks/priorgrad.py's grids (schedule_search.GRIDS):
# S -> (t~ of the earliest start, t~ of the latest start, smallest gamma_bar_S).
OFFICIAL_GRID_STARTS = {2: (56.68, 247.52, 0.0200), 6: (103.99, 285.88, 0.005408), 12: (142.92, 315.32, 0.001741)}


@pytest.mark.parametrize("steps", [2, 6, 12])
def test_protocol_start_points_match_the_official_grids(toy, steps):
    """strided starts at t = 399 for every S (1 / sqrt(alpha_bar_399) = 163, later than any official start);
    official (6 steps: the config betas) and searched (the grid search on a validation utterance) start
    inside the official grid's range of start points for S = 2, 6, 12."""
    from priorgrad.acoustic.model import TablePrior, build_acoustic_model
    from priorgrad.acoustic.schedule_search import grid_candidates
    from priorgrad.acoustic.synthesize import load_frame_prior, make_schedule, searched_schedule
    from priorgrad.core.diffusion import Diffusion, ScheduleError, align_steps

    diffusion = Diffusion(400, 1e-4, 0.05)
    gbar = np.prod(1.0 - grid_candidates(steps), axis=1)
    first, last = (align_steps(np.array([1.0 - g]), diffusion.betas)[0] for g in (gbar.max(), gbar.min()))
    lo_t, hi_t, min_gbar = OFFICIAL_GRID_STARTS[steps]
    assert first == pytest.approx(lo_t, abs=0.01) and last == pytest.approx(hi_t, abs=0.01)
    assert gbar.min() == pytest.approx(min_gbar, rel=1e-3)
    strided = make_schedule(diffusion, "strided", steps)
    assert strided.t[-1] == 399 and strided.t[-1] > hi_t
    if steps == 6:
        official = make_schedule(diffusion, "official", 6)
        assert official.t[-1] == pytest.approx(196.635, abs=1e-3) and lo_t <= official.t[-1] <= hi_t
    else:
        with pytest.raises(ScheduleError, match="6"):
            make_schedule(diffusion, "official", steps)
    fs = FeatureSet(toy)
    cfg = _cfg("acoustic.model.prior=phoneme")
    torch.manual_seed(0)
    model = build_acoustic_model(cfg, len(fs.vocab)).eval()
    table = TablePrior.from_prior(load_frame_prior(toy / "phoneme_stats.npz"), len(fs.vocab))
    sched, rec = searched_schedule(model, diffusion, cfg.model, table, fs.utterances("valid")[0],
                                   (fs.f0_mean, fs.f0_std), torch.device("cpu"), steps, 8, 0, "data_range")
    assert rec["utterance"] == fs.utterances("valid")[0].utt   # held out: never a test utterance
    assert len(sched) == steps and first - 1e-6 <= sched.t[-1] <= last + 1e-6
