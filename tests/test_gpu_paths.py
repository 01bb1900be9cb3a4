"""The GPU-speed paths, checked on CPU: the independent reference equals the project's model and
diffusion; every fast option computes the same thing as the default path; GPU-only options refuse a
CPU clearly; the GPU benchmark runs end to end with tiny settings."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.reference_vocoder import (ReferenceDiffWave, aligned_steps, inference_schedule, load_project_state,
                                          reference_loss, reference_sample, reference_train_step)
from priorgrad.core.audio import log_mel_torch
from priorgrad.core.config import ConfigError, load_params
from priorgrad.vocoder.data import CropSampler, read_manifest
from priorgrad.core.diffusion import Diffusion
from priorgrad.vocoder.fast_infer import BF16_LS_MAE_TOLERANCE, FastSampler, generate_fast
from priorgrad.vocoder.fast_train import ResidentCrops, TrainStep, check_cuda_graphs, make_optimizer
from priorgrad.vocoder.infer import generate
from priorgrad.vocoder.model import DiffWave, fused_gated_tanh, gated_tanh
from priorgrad.vocoder.prior import EnergyPrior
from priorgrad.core.prior_contract import DiagonalDraw

ROOT = Path(__file__).resolve().parents[1]
HOP = 256


def tiny_pair(seed: int = 0, layers: int = 3, channels: int = 8, cycle: int = 2):
    """A project DiffWave with a non-zero output layer and the reference holding the same weights."""
    torch.manual_seed(seed)
    model = DiffWave(residual_layers=layers, residual_channels=channels, dilation_cycle=cycle)
    torch.nn.init.normal_(model.output_projection.weight, std=0.3)
    ref = ReferenceDiffWave(residual_layers=layers, residual_channels=channels, dilation_cycle_length=cycle)
    load_project_state(ref, model.state_dict())
    return model, ref


def batch(b: int = 2, frames: int = 4, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x0 = (0.4 * torch.randn(b, frames * HOP, generator=g)).clamp(-1, 1)
    mel = torch.randn(b, 80, frames, generator=g) - 4
    sigma = torch.rand(b, frames, generator=g).clamp(min=0.1).repeat_interleave(HOP, dim=1)
    return x0, mel, sigma


# ----------------------------------------------------------------------------- the reference
def test_reference_has_the_spec_parameter_counts() -> None:
    assert sum(p.numel() for p in ReferenceDiffWave().parameters()) == 2_619_971
    assert sum(p.numel() for p in ReferenceDiffWave(residual_channels=32).parameters()) == 1_227_651


def test_reference_loss_and_step_equal_the_projects() -> None:
    model, ref = tiny_pair()
    diffusion = Diffusion()
    x0, mel, sigma = batch()
    t, n = diffusion.draw_training_noise(x0, torch.Generator().manual_seed(5))
    ours = diffusion.training_loss(lambda x, c, s: model(x, c, s), x0, mel, DiagonalDraw(sigma),
                                  torch.Generator().manual_seed(5))
    theirs = reference_loss(ref, x0, mel, sigma, t, n)
    assert ours.item() > 0.1  # a real residual, not two zeros compared
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
    # one Adam step each: the same weights after it
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    opt.zero_grad()
    diffusion.training_loss_given(lambda x, c, s: model(x, c, s), x0, mel, DiagonalDraw(sigma), t, n).backward()
    opt.step()
    reference_train_step(ref, torch.optim.Adam(ref.parameters(), lr=1e-3), x0, mel, sigma, t, n)
    w_ours = model.residual_layers[1].dilated_conv.weight
    w_ref = ref.residual_layers[1].dilated_conv.weight
    assert torch.allclose(w_ours, w_ref, atol=1e-6)
    assert not torch.allclose(w_ours, tiny_pair()[0].residual_layers[1].dilated_conv.weight)  # it did move


@pytest.mark.parametrize("steps", [6, 12, 4])
def test_reference_sampler_equals_the_projects(steps: int) -> None:
    model, ref = tiny_pair()
    diffusion = Diffusion()
    _, mel, sigma = batch(b=1, frames=5)
    eta, t_align = diffusion.schedule(steps)
    assert np.allclose(aligned_steps(inference_schedule(steps), diffusion.betas), t_align, atol=1e-9)
    draws = list(torch.randn(len(eta), 1, sigma.shape[1], generator=torch.Generator().manual_seed(3)))
    ours = diffusion.sample(lambda x, c, t: model(x, c, t), mel, DiagonalDraw(sigma), steps, noise=lambda k: draws[k])
    theirs = reference_sample(ref, mel, sigma, steps, draws)
    assert ours.abs().max() > 0.05
    assert torch.allclose(ours, theirs, atol=1e-5)


# ----------------------------------------------------------------------------- fast synthesis
def test_fast_sampler_fp32_equals_generate_and_bf16_is_within_tolerance() -> None:
    model, _ = tiny_pair(layers=4, channels=8)
    model.eval()
    diffusion = Diffusion()
    prior = EnergyPrior(0.03, 4.0)
    g = torch.Generator().manual_seed(0)
    mels = [(torch.randn(80, f, generator=g) - 3).numpy() for f in (6, 9)]
    seeds = [11, 12]
    ref = generate(model, diffusion, prior, mels, seeds, 6, "hifigan")
    fast = generate_fast(FastSampler(model, diffusion, 6, "cpu"), prior, mels, seeds, "hifigan")
    for a, b in zip(ref, fast):
        assert a.shape == b.shape and np.abs(a).max() > 0.05
        assert np.allclose(a, b, atol=1e-6)
    bf16 = generate_fast(FastSampler(model, diffusion, 6, "cpu", precision="bf16"), prior, mels, seeds, "hifigan")
    other_seed = generate(model, diffusion, prior, mels, [21, 22], 6, "hifigan")

    def ls_mae(a: np.ndarray, b: np.ndarray) -> float:
        return float((log_mel_torch(torch.from_numpy(a)) - log_mel_torch(torch.from_numpy(b))).abs().mean())

    for a, b, c in zip(ref, bf16, other_seed):
        assert not np.array_equal(a, b)  # bf16 really ran
        assert ls_mae(a, b) <= BF16_LS_MAE_TOLERANCE
        assert ls_mae(a, c) > BF16_LS_MAE_TOLERANCE  # the tolerance separates other noise: not vacuous


def test_synthesis_cuda_graphs_and_bad_options_are_refused_on_cpu() -> None:
    model, _ = tiny_pair()
    with pytest.raises(ValueError, match="CUDA device"):
        FastSampler(model, Diffusion(), 6, "cpu", cuda_graphs=True)
    with pytest.raises(ValueError, match="precision"):
        FastSampler(model, Diffusion(), 6, "cpu", precision="fp8")
    sampler = FastSampler(model, Diffusion(), 6, "cpu")
    with pytest.raises(ValueError, match="noise must have shape"):
        sampler(torch.zeros(1, 80, 2), torch.ones(1, 2 * HOP), torch.zeros(5, 1, 2 * HOP))


# ----------------------------------------------------------------------------- fast training
def write_features(root: Path, n_train: int = 3, frames: tuple[int, ...] = (12, 20, 15)) -> Path:
    rng = np.random.default_rng(0)
    (root / "audio").mkdir(parents=True)
    (root / "mel").mkdir()
    lines = []
    for i in range(n_train + 1):
        f = frames[i % len(frames)]
        np.save(root / "audio" / f"u{i}.npy", (0.3 * rng.standard_normal(f * HOP)).astype(np.float32))
        np.save(root / "mel" / f"u{i}.npy", (rng.standard_normal((80, f)) - 3).astype(np.float32))
        lines.append(json.dumps({"utt": f"u{i}", "split": "train" if i < n_train else "valid",
                                 "audio": f"audio/u{i}.npy", "mel": f"mel/u{i}.npy", "samples": f * HOP,
                                 "frames": f}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (root / "stats.json").write_text(json.dumps({"e_min": 0.03, "e_max": 4.0}))
    return root


@pytest.mark.parametrize("mode", ["official", "frames"])
def test_resident_crops_are_the_samplers_crops(tmp_path: Path, mode: str) -> None:
    feats = write_features(tmp_path / "f")
    sampler = CropSampler(read_manifest(feats, split="train"), 8, 3, "hifigan", seed=4, mode=mode)
    prior = EnergyPrior(0.03, 4.0)
    resident = ResidentCrops(sampler, prior, HOP, "cpu")
    for step in (0, 7):
        audio, mel = sampler.batch(step)
        r_audio, r_mel, r_prior = resident.batch(step)
        assert np.array_equal(audio, r_audio.numpy()) and np.allclose(mel, r_mel.numpy(), atol=1e-6)
        sigma = np.stack([np.repeat(prior.sigma_frames(m), HOP) for m in mel])
        assert np.allclose(sigma, r_prior.sigma.numpy(), atol=1e-7)
        # frames crops slice the fixture's (independent, varied) mel; official ones recompute it from audio
        assert mode == "official" or sigma.min() < sigma.max()


def smoke_params(**overrides):
    base = {"model.residual_layers": 2, "model.residual_channels": 8, "model.dilation_cycle": 1,
            "train.batch_size": 2, "train.crop_frames": 8, "train.valid_utterances": 1, "train.valid_max_frames": 8,
            "train.threads": 1, "train.device": "cpu"}
    return load_params(ROOT / "params.yaml", {"profile": "smoke", **base, **overrides})


def test_trainer_with_resident_features_gives_the_same_losses(tmp_path: Path) -> None:
    from priorgrad.vocoder.train import Trainer

    feats = write_features(tmp_path / "f")
    losses = {}
    for resident in (False, True):
        p = smoke_params(**{"train.features_on_device": resident})
        tr = Trainer(p, feats, feats / "stats.json", tmp_path / f"run{resident}", progress=False)
        assert (tr.resident is not None) == resident
        losses[resident] = [tr.train_step() for _ in range(3)]
    assert losses[True] == pytest.approx(losses[False], rel=1e-6)


def test_trainer_refuses_cuda_graphs_on_cpu_and_with_fp16(tmp_path: Path) -> None:
    from priorgrad.vocoder.train import Trainer

    feats = write_features(tmp_path / "f")
    with pytest.raises(ValueError, match="train.cuda_graphs: CUDA graphs need a CUDA device"):
        Trainer(smoke_params(**{"train.cuda_graphs": True}), feats, feats / "stats.json", tmp_path / "r")
    with pytest.raises(ConfigError, match="train.cuda_graphs"):
        smoke_params(**{"train.cuda_graphs": True, "train.precision": "fp16"})
    with pytest.raises(ValueError, match="fp16"):
        check_cuda_graphs(torch.device("cuda"), "fp16")


def test_bf16_training_step_stays_close_to_fp32() -> None:
    x0, mel, sigma = batch()
    diffusion = Diffusion()
    t, n = diffusion.draw_training_noise(x0, torch.Generator().manual_seed(2))
    losses = {}
    for precision in ("fp32", "bf16"):
        model, _ = tiny_pair()
        opt = make_optimizer(model, 2e-4, cuda_graphs=False)
        step = TrainStep(model, opt, torch.amp.GradScaler("cpu", enabled=False), diffusion, torch.device("cpu"),
                         precision)
        losses[precision] = [step(x0, mel, DiagonalDraw(sigma), t, n) for _ in range(2)]
    assert losses["bf16"] != losses["fp32"]
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.03)


@pytest.mark.slow
def test_compiled_step_gives_the_eager_loss() -> None:
    # aot_eager traces the model with TorchDynamo and AOTAutograd exactly as the GPU's inductor
    # backend does, without the minutes of C++ compilation inductor needs on this CPU
    x0, mel, sigma = batch()
    diffusion = Diffusion()
    t, n = diffusion.draw_training_noise(x0, torch.Generator().manual_seed(2))
    losses = {}
    for compiled in (False, True):
        model, _ = tiny_pair(layers=2)
        step = TrainStep(model, make_optimizer(model, 1e-3, False), torch.amp.GradScaler("cpu", enabled=False),
                         diffusion, torch.device("cpu"), "fp32", compile=compiled, compile_backend="aot_eager")
        assert step.path == ("compiled" if compiled else "eager")
        losses[compiled] = [step(x0, mel, DiagonalDraw(sigma), t, n) for _ in range(3)]
    assert losses[True][2] != losses[True][0]  # the weights moved
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)


@pytest.mark.slow
def test_fused_gate_equals_the_eager_gate() -> None:
    y = torch.randn(2, 16, 300, requires_grad=True)
    y2 = y.detach().clone().requires_grad_(True)
    a, b = gated_tanh(y), fused_gated_tanh(y2)
    assert torch.allclose(a, b, atol=1e-6)
    a.square().sum().backward()
    b.square().sum().backward()
    assert torch.allclose(y.grad, y2.grad, atol=1e-5)
    torch.manual_seed(0)
    plain = DiffWave(residual_layers=2, residual_channels=8, dilation_cycle=1)
    torch.manual_seed(0)
    fused = DiffWave(residual_layers=2, residual_channels=8, dilation_cycle=1, fused_gate=True)
    x0, mel, _ = batch()
    t = torch.tensor([3.0, 10.5])
    assert torch.allclose(plain(x0, mel, t), fused(x0, mel, t), atol=1e-6)


# ----------------------------------------------------------------------------- the benchmark script
def test_bench_gpu_smoke_writes_its_json(tmp_path: Path) -> None:
    from benchmarks.bench_gpu import main

    out = tmp_path / "gpu_cpu.json"
    res = main(["--device", "cpu", "--tiny", "--train-steps", "2", "--warmup", "1", "--t-infer", "6",
                "--batched-sizes", "1", "--precision", "fp32", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert set(saved) >= {"machine", "config", "train", "synthesis_batch1", "synthesis_batched"}
    tr = saved["train"]
    assert len(tr["reference"]["loss_curve"]) == len(tr["fast"]["loss_curve"]) == 2
    # same weights, crops and noise, fp32 both: the two curves agree
    assert tr["fast"]["loss_curve"] == pytest.approx(tr["reference"]["loss_curve"], rel=1e-4)
    assert tr["reference"]["samples_per_s"] > 0 and tr["speedup_samples_per_s"] > 0
    other = tr["reference_other_noise"]["loss_curve"]
    assert len(other) == 2 and other != pytest.approx(tr["reference"]["loss_curve"], rel=1e-3)
    assert tr["fast_within_seed_spread"] is True  # fp32 without fusion: a gap of rounding only
    row = saved["synthesis_batch1"][0]
    assert row["T_infer"] == 6 and row["max_abs_diff_fast_fp32_vs_reference"] < 1e-4
    assert {"reference", "fast_fp32", "fast_bf16", "ls_mae_bf16_vs_fp32"} <= set(row)
    assert saved["synthesis_batched"][0]["audio_s_per_s"] > 0
    assert res["machine"]["device"] == "cpu"


def test_bench_gpu_refuses_graphs_without_cuda() -> None:
    from benchmarks.bench_gpu import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--device", "cpu", "--tiny", "--cuda-graphs"])
    args = parse_args(["--device", "cpu", "--tiny"])
    assert (args.compile, args.cuda_graphs, args.size) == (False, False, "tiny") and 50 not in args.t_infer


def test_speed_only_options_keep_the_trial_hash() -> None:
    from experiments.spec import training_hash

    base = smoke_params()
    fast = smoke_params(**{"train.features_on_device": True, "train.compile": True, "model.fused_gate": True})
    assert training_hash(fast) == training_hash(base)
    assert training_hash(smoke_params(**{"train.precision": "bf16"})) != training_hash(base)


def test_synthesize_bf16_route_and_cuda_graphs_refused(tmp_path: Path) -> None:
    import soundfile as sf

    from priorgrad.core import checkpoint as ckpt_io
    from priorgrad.vocoder.infer import synthesize
    from priorgrad.vocoder.model import build_model

    params = smoke_params()
    torch.manual_seed(0)
    model = build_model(params)
    torch.nn.init.normal_(model.output_projection.weight, std=0.3)
    ckpt = ckpt_io.save(tmp_path / "m.pt", {"model": model.state_dict(), "params": params.to_dict(), "step": 0,
                                            "prior_stats": {"e_min": 0.03, "e_max": 4.0}})
    mel = tmp_path / "in" / "u.npy"
    mel.parent.mkdir()
    np.save(mel, (np.random.default_rng(0).standard_normal((80, 6)) - 3).astype(np.float32))
    wavs = {}
    for precision in ("fp32", "bf16"):
        res = synthesize(ckpt, [mel], tmp_path / precision, steps=6, device="cpu", precision=precision)
        assert res["precision"] == precision and res["cuda_graphs"] is False
        wavs[precision] = sf.read(tmp_path / precision / "u.wav", dtype="float32")[0]
    assert wavs["fp32"].shape == wavs["bf16"].shape == (6 * HOP,)
    assert not np.array_equal(wavs["fp32"], wavs["bf16"])
    ls_mae = (log_mel_torch(torch.from_numpy(wavs["fp32"])) - log_mel_torch(torch.from_numpy(wavs["bf16"]))).abs().mean()
    assert float(ls_mae) <= BF16_LS_MAE_TOLERANCE
    with pytest.raises(ValueError, match="CUDA device"):
        synthesize(ckpt, [mel], tmp_path / "g", steps=6, device="cpu", cuda_graphs=True)


def test_cli_synthesize_takes_the_fast_options() -> None:
    from priorgrad.cli import build_parser

    args = build_parser().parse_args(["synthesize", "--checkpoint", "c.pt", "--input", "m", "--out", "o",
                                      "--precision", "bf16", "--cuda-graphs"])
    assert (args.precision, args.cuda_graphs) == ("bf16", True)
    args = build_parser().parse_args(["synthesize", "--checkpoint", "c.pt", "--input", "m", "--out", "o"])
    assert (args.precision, args.cuda_graphs) == ("fp32", False)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["synthesize", "--checkpoint", "c", "--input", "m", "--out", "o", "--precision", "fp8"])
