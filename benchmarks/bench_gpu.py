"""GPU benchmark: the fast training and synthesis paths against the straightforward reference, same run.

The one script a user with a GPU runs (needs only torch + numpy; a CPU smoke run with ``--device cpu
--tiny``). Writes ``benchmarks/results/gpu_<device>.json`` with the machine, versions, configuration,
medians and ratios:

- training: samples/s of the reference step (benchmarks/reference_vocoder.py: eager fp32, the official
  code's shape) and of the fast path (priorgrad.vocoder.fast_train.TrainStep + ResidentCrops with the chosen
  options), from the same initial weights on the same crops and noise, with both loss curves of the
  first ``--train-steps`` steps, and a third curve of the reference with other noise as the seed-to-seed
  spread the fast path's loss gap is judged against (so "at equal loss" is checked, not assumed);
- synthesis: batch-1 RTF of a ``--synth-seconds`` utterance at T = 6, 12, 50 for the reference sampler
  (conditioner recomputed at every step, fp32) and the fast sampler (priorgrad.vocoder.fast_infer: conditioner
  once, noise drawn up front, CUDA graph, bf16), their LS-MAE difference, and batched throughput;
- peak device memory of each.

    python benchmarks/bench_gpu.py --device cuda                       # base network, paper set-up
    python benchmarks/bench_gpu.py --device cuda --size small
    python benchmarks/bench_gpu.py --device cpu --tiny --train-steps 3  # smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.reference_vocoder import (ReferenceDiffWave, load_project_state, reference_sample,  # noqa: E402
                                          reference_train_step)
from priorgrad.core.audio import get_preset, log_mel, log_mel_torch  # noqa: E402
from priorgrad.vocoder.data import CropSampler, read_manifest  # noqa: E402
from priorgrad.core.diffusion import Diffusion  # noqa: E402
from priorgrad.vocoder.fast_infer import BF16_LS_MAE_TOLERANCE, FastSampler  # noqa: E402
from priorgrad.vocoder.fast_train import ResidentCrops, TrainStep, make_optimizer  # noqa: E402
from priorgrad.core.fileio import write_json_atomic  # noqa: E402
from priorgrad.vocoder.model import DiffWave, count_parameters  # noqa: E402
from priorgrad.vocoder.prior import EnergyPrior, StandardPrior, compute_energy_stats  # noqa: E402

SIZES = {"base": (30, 64, 10), "small": (30, 32, 10), "tiny": (4, 8, 2)}
PRESET = get_preset("hifigan")
SR, HOP, N_MELS = PRESET.sample_rate, PRESET.hop_length, PRESET.n_mels


# ----------------------------------------------------------------------------- machine and helpers
def machine(device: torch.device) -> dict[str, Any]:
    info = {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "device": str(device), "load_average_1m": os.getloadavg()[0]}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                    compute_capability=f"{props.major}.{props.minor}")
    return info


def device_tag(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float:
    """Peak device memory since reset_peak (CUDA); on CPU the process's peak RSS (not resettable)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------- data
def synthetic_features(out: Path, n_utts: int, seconds: float, seed: int) -> Path:
    """Voiced-speech-like signals (gliding f0, harmonics, formant-ish tilt, noise bursts, syllable
    envelopes) and their log-mels with the project's front-end (numpy/torch only: no corpus tools
    needed on a bare GPU box), written as a features dir (manifest.jsonl + .npy)."""
    rng = np.random.default_rng(seed)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    (out / "mel").mkdir(exist_ok=True)
    lines = []
    n = int(seconds * SR) // HOP * HOP
    tt = np.arange(n) / SR
    for i in range(n_utts):
        f0 = rng.uniform(90, 220) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.3, 2) * tt))
        phase = 2 * np.pi * np.cumsum(f0) / SR
        wav = sum(np.sin(k * phase) / k ** 1.3 for k in range(1, 16))
        wav += 0.3 * rng.standard_normal(n) * (np.sin(2 * np.pi * rng.uniform(1, 4) * tt) > 0.6)
        env = np.clip(np.sin(2 * np.pi * rng.uniform(2, 5) * tt + rng.uniform(0, 6)), 0, None) ** 0.5
        wav = (wav * env).astype(np.float32)
        wav = 0.95 * wav / max(float(np.abs(wav).max()), 1e-6)
        mel = log_mel(wav, PRESET.name).astype(np.float32)
        split = "valid" if i == n_utts - 1 else "train"
        np.save(out / "audio" / f"u{i}.npy", wav)
        np.save(out / "mel" / f"u{i}.npy", mel)
        lines.append(json.dumps({"utt": f"u{i}", "split": split, "audio": f"audio/u{i}.npy",
                                 "mel": f"mel/u{i}.npy", "samples": int(n), "frames": int(mel.shape[1])}))
    (out / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return out


def make_prior(kind: str, features: Path):
    if kind == "standard":
        return StandardPrior()
    items = read_manifest(features, split="train")
    stats = compute_energy_stats((it.utt, np.asarray(it.mel())) for it in items)
    return EnergyPrior(stats["e_min"], stats["e_max"])


# ----------------------------------------------------------------------------- training
def bench_train(args: argparse.Namespace, device: torch.device, features: Path) -> dict[str, Any]:
    L, C, cycle = SIZES[args.size]
    prior = make_prior(args.prior, features)
    # frames crops: the resident path is then entirely on the device (official crops add a host copy of each
    # crop's mel for the energy prior's sigma; the loss curves compared here do not depend on the crop mode)
    sampler = CropSampler(read_manifest(features, split="train"), args.crop_frames, args.batch, "hifigan", seed=0,
                          mode="frames")
    data = ResidentCrops(sampler, prior, HOP, device)
    diffusion = Diffusion()
    torch.manual_seed(0)
    fast_model = DiffWave(residual_layers=L, residual_channels=C, dilation_cycle=cycle,
                          fused_gate=args.fused_gate).to(device)
    init_state = {k: v.detach().clone() for k, v in fast_model.state_dict().items()}
    ref_model = ReferenceDiffWave(residual_layers=L, residual_channels=C, dilation_cycle_length=cycle).to(device)
    load_project_state(ref_model, init_state)  # same initial weights
    ref_opt = torch.optim.Adam(ref_model.parameters(), lr=2e-4)
    fast_opt = make_optimizer(fast_model, 2e-4, args.cuda_graphs)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    step_fn = TrainStep(fast_model, fast_opt, scaler, diffusion, device, args.precision, compile=args.compile,
                        cuda_graphs=args.cuda_graphs)

    def inputs(k: int, noise_seed: int = 0):
        x0, mel, prior = data.batch(k)
        t, n = diffusion.draw_training_noise(x0, torch.Generator().manual_seed(1_000_003 * (noise_seed + 1) + k))
        return x0, mel, prior, t, n

    def run(name: str, step: Callable[..., float], noise_seed: int = 0) -> dict[str, Any]:
        reset_peak(device)
        losses, times = [], []
        for k in range(args.warmup + args.train_steps):
            sync(device)
            t0 = time.perf_counter()
            loss = step(*inputs(k, noise_seed))
            sync(device)
            if k >= args.warmup:
                times.append(time.perf_counter() - t0)
                losses.append(loss)
        med = statistics.median(times)
        return {"path": name, "median_step_s": med, "samples_per_s": args.batch / med,
                "audio_s_per_s": args.batch * args.crop_frames * HOP / SR / med, "peak_memory_mib": peak_mib(device),
                "loss_curve": losses}

    def ref_step(x0, mel, prior, t, n) -> float:
        ref_model.train()  # the reference code takes the diagonal prior's sigma tensor
        return float(reference_train_step(ref_model, ref_opt, x0, mel, prior.sigma, t, n))

    # warm-up steps (compilation, CUDA-graph capture, cuDNN choices) are real updates for both paths
    # on the same warm-up batches, so the curves that follow start from comparable weights
    ref = run("reference", ref_step)
    fast = run(step_fn.path, step_fn)
    # the yardstick for "equal loss": the reference again from the same weights with other noise and
    # diffusion steps (its seed-to-seed spread); the fast path's gap to the reference should be no larger
    load_project_state(ref_model, init_state)
    ref_opt.state.clear()
    ref2 = run("reference_other_noise", ref_step, noise_seed=1)
    tail = max(1, len(ref["loss_curve"]) // 5)
    ref_tail, fast_tail = float(np.mean(ref["loss_curve"][-tail:])), float(np.mean(fast["loss_curve"][-tail:]))
    ref2_tail = float(np.mean(ref2["loss_curve"][-tail:]))
    return {"size": args.size, "n_params": count_parameters(fast_model), "batch": args.batch,
            "crop_frames": args.crop_frames, "prior": args.prior, "warmup_steps": args.warmup,
            "timed_steps": args.train_steps,
            "fast_options": {"precision": args.precision, "compile": args.compile, "cuda_graphs": args.cuda_graphs,
                             "fused_gate": args.fused_gate, "features_on_device": True},
            "reference": ref, "fast": fast, "reference_other_noise": ref2,
            "speedup_samples_per_s": fast["samples_per_s"] / ref["samples_per_s"],
            "final_loss_mean_last_20pct": {"reference": ref_tail, "fast": fast_tail, "reference_other_noise": ref2_tail},
            "final_loss_ratio_fast_over_reference": fast_tail / ref_tail,
            "seed_spread_abs": abs(ref2_tail - ref_tail), "fast_gap_abs": abs(fast_tail - ref_tail),
            "fast_within_seed_spread": abs(fast_tail - ref_tail) <= abs(ref2_tail - ref_tail)}


# ----------------------------------------------------------------------------- synthesis
def bench_synth(args: argparse.Namespace, device: torch.device, features: Path) -> list[dict[str, Any]]:
    L, C, cycle = SIZES[args.size]
    torch.manual_seed(0)
    model = DiffWave(residual_layers=L, residual_channels=C, dilation_cycle=cycle,
                     fused_gate=args.fused_gate).to(device).eval()
    torch.nn.init.normal_(model.output_projection.weight, std=0.01)  # an untrained but non-trivial denoiser
    ref_model = ReferenceDiffWave(residual_layers=L, residual_channels=C, dilation_cycle_length=cycle).to(device)
    load_project_state(ref_model, model.state_dict())
    ref_model.eval()
    diffusion = Diffusion()
    frames = int(args.synth_seconds * SR / HOP)
    item = read_manifest(features, split="train")[0]
    mel_np = np.resize(np.asarray(item.mel()), (N_MELS, frames)).astype(np.float32)  # tiled to the length
    mel = torch.from_numpy(mel_np).unsqueeze(0).to(device)
    sigma = torch.ones(1, frames * HOP, device=device)
    audio_s = frames * HOP / SR
    out = []
    for steps in args.t_infer:
        n_steps = len(diffusion.schedule(steps)[0])
        noise = torch.randn(n_steps, 1, frames * HOP, generator=torch.Generator().manual_seed(steps)).to(device)
        samplers: dict[str, Callable[[], torch.Tensor]] = {
            "reference": lambda: reference_sample(ref_model, mel, sigma[0:1], steps, list(noise))}
        fast_fp32 = FastSampler(model, diffusion, steps, device, "fp32", args.cuda_graphs)
        fast_bf16 = FastSampler(model, diffusion, steps, device, "bf16", args.cuda_graphs)
        samplers["fast_fp32"] = lambda: fast_fp32(mel, sigma, noise)
        samplers["fast_bf16"] = lambda: fast_bf16(mel, sigma, noise)
        row: dict[str, Any] = {"T_infer": steps, "audio_seconds": audio_s, "batch": 1, "repeats": args.repeats}
        wavs = {}
        for name, fn in samplers.items():
            reset_peak(device)
            wavs[name] = fn()  # warm-up (and graph capture)
            times = []
            for _ in range(args.repeats):
                sync(device)
                t0 = time.perf_counter()
                fn()
                sync(device)
                times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            row[name] = {"median_s": med, "rtf": med / audio_s, "peak_memory_mib": peak_mib(device)}
        ref_mel = log_mel_torch(wavs["reference"][0].float().cpu())
        row["max_abs_diff_fast_fp32_vs_reference"] = float((wavs["fast_fp32"] - wavs["reference"]).abs().max())
        row["ls_mae_bf16_vs_fp32"] = float((log_mel_torch(wavs["fast_bf16"][0].cpu()) -
                                            log_mel_torch(wavs["fast_fp32"][0].cpu())).abs().mean())
        row["ls_mae_fast_fp32_vs_reference"] = float((log_mel_torch(wavs["fast_fp32"][0].cpu()) - ref_mel).abs().mean())
        row["bf16_tolerance"] = BF16_LS_MAE_TOLERANCE
        row["bf16_within_tolerance"] = row["ls_mae_bf16_vs_fp32"] <= BF16_LS_MAE_TOLERANCE
        row["speedup_fast_fp32"] = row["reference"]["rtf"] / row["fast_fp32"]["rtf"]
        row["speedup_fast_bf16"] = row["reference"]["rtf"] / row["fast_bf16"]["rtf"]
        out.append(row)
        print(json.dumps({k: v for k, v in row.items()}), flush=True)
    return out


def bench_batched(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    """Throughput of a test set synthesised in batches (audio seconds per second, fast sampler)."""
    L, C, cycle = SIZES[args.size]
    torch.manual_seed(0)
    model = DiffWave(residual_layers=L, residual_channels=C, dilation_cycle=cycle,
                     fused_gate=args.fused_gate).to(device).eval()
    diffusion = Diffusion()
    frames = int(args.synth_seconds * SR / HOP)
    rows = []
    for precision in ("fp32", "bf16"):
        for batch in args.batched_sizes:
            fs = FastSampler(model, diffusion, 6, device, precision, args.cuda_graphs)
            mel = torch.randn(batch, N_MELS, frames, device=device)
            sigma = torch.ones(batch, frames * HOP, device=device)
            noise = torch.randn(fs.n_steps, batch, frames * HOP, device=device)
            reset_peak(device)
            fs(mel, sigma, noise)
            times = []
            for _ in range(args.repeats):
                sync(device)
                t0 = time.perf_counter()
                fs(mel, sigma, noise)
                sync(device)
                times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            rows.append({"T_infer": 6, "precision": precision, "batch": batch, "utterance_seconds": args.synth_seconds,
                         "median_s": med, "audio_s_per_s": batch * frames * HOP / SR / med,
                         "peak_memory_mib": peak_mib(device)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


# ----------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="smoke settings: tiny network, short crops, few steps")
    ap.add_argument("--size", choices=sorted(SIZES), default=None, help="network (default base; tiny with --tiny)")
    ap.add_argument("--prior", choices=["energy", "standard"], default="energy")
    ap.add_argument("--batch", type=int, default=None, help="training batch (default 16; 2 with --tiny)")
    ap.add_argument("--crop-frames", type=int, default=None, help="training crop, frames (default 62; 8 with --tiny)")
    ap.add_argument("--train-steps", type=int, default=None, help="timed training steps per path (default 300)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps per path first (default 5)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="bf16", help="fast path precision")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="torch.compile the fast path (default: on with CUDA)")
    ap.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=None,
                    help="CUDA graphs for the fast paths (default: on with CUDA; CUDA only)")
    ap.add_argument("--fused-gate", action=argparse.BooleanOptionalAction, default=False,
                    help="model.fused_gate for the fast path (redundant under --compile)")
    ap.add_argument("--t-infer", type=int, nargs="+", default=[6, 12, 50])
    ap.add_argument("--synth-seconds", type=float, default=None, help="utterance length (default 5 s)")
    ap.add_argument("--batched-sizes", type=int, nargs="+", default=None, help="default 1 4 16 32")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per synthesis case (default 10)")
    ap.add_argument("--features", type=Path, default=None,
                    help="a priorgrad features dir to train on (default: synthetic voiced signals made here)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["train", "synth", "batched"])
    ap.add_argument("--out", type=Path, default=None, help="default benchmarks/results/gpu_<device>.json")
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: CUDA is not available on this machine (use --device cpu --tiny)")
    t = args.tiny
    args.size = args.size or ("tiny" if t else "base")
    args.batch = args.batch or (2 if t else 16)
    args.crop_frames = args.crop_frames or (8 if t else 62)
    args.train_steps = args.train_steps or (3 if t else 300)
    args.warmup = args.warmup if args.warmup is not None else (1 if t else 5)
    args.synth_seconds = args.synth_seconds or (0.2 if t else 5.0)
    args.batched_sizes = args.batched_sizes or ([1, 2] if t else [1, 4, 16, 32])
    args.repeats = args.repeats or (1 if t else 10)
    args.compile = cuda if args.compile is None else args.compile
    args.cuda_graphs = cuda if args.cuda_graphs is None else args.cuda_graphs
    if args.cuda_graphs and not cuda:
        ap.error("--cuda-graphs needs --device cuda")
    if t:
        args.t_infer = [s for s in args.t_infer if s != 50] or [6]  # T=50 is minutes on a CPU
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = torch.device(args.device)
    out = args.out or ROOT / "benchmarks" / "results" / f"gpu_{device_tag(device)}.json"
    results: dict[str, Any] = {
        "machine": machine(device),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"},
        "reference": "benchmarks/reference_vocoder.py (official code's shape: eager fp32, conditioner per call)",
    }
    with tempfile.TemporaryDirectory() as tmp:
        features = args.features or synthetic_features(Path(tmp) / "features", 3 if args.tiny else 24,
                                                       max(1.0, args.crop_frames * HOP / SR + 0.5), seed=0)
        if "train" not in args.skip:
            results["train"] = bench_train(args, device, features)
            tr = results["train"]
            print(json.dumps({"train_speedup": tr["speedup_samples_per_s"],
                              "loss_ratio": tr["final_loss_ratio_fast_over_reference"]}), flush=True)
        if "synth" not in args.skip:
            results["synthesis_batch1"] = bench_synth(args, device, features)
        if "batched" not in args.skip:
            results["synthesis_batched"] = bench_batched(args, device)
    write_json_atomic(out, results)
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    main()
