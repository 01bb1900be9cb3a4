"""Training throughput and synthesis RTF of the DiffWave network (base 64x30, small 32x30, tiny CPU net).

Writes JSON with the machine, versions, configuration and medians. The in-run reference for synthesis
is a straightforward sampler that recomputes the conditioner (upsampler + per-layer projections) at
every step, as lmnt-com/diffwave does; ours computes it once per utterance. Needs only torch + numpy,
so it also runs on a bare GPU machine:

    python benchmarks/bench_core.py --out benchmarks/results/core_cpu.json
    python benchmarks/bench_core.py --device cuda --precision fp32 bf16 --out benchmarks/results/core_gpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from priorgrad.core.diffusion import Diffusion  # noqa: E402
from priorgrad.vocoder.model import DiffWave, count_parameters  # noqa: E402
from priorgrad.core.prior_contract import DiagonalDraw  # noqa: E402

SIZES = {"base": (30, 64, 10), "small": (30, 32, 10), "tiny": (6, 16, 3)}
SR, HOP = 22050, 256


def machine(device: torch.device) -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "device": str(device),
            "load_average_1m": os.getloadavg()[0]}  # other work on the machine skews the medians
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def bench_train(size: str, device: torch.device, batch: int, crop_frames: int, steps: int, warmup: int,
                precision: str) -> dict:
    L, C, cycle = SIZES[size]
    torch.manual_seed(0)
    model = DiffWave(residual_layers=L, residual_channels=C, dilation_cycle=cycle).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    diff = Diffusion()
    n = crop_frames * HOP
    x0 = (0.5 * torch.randn(batch, n)).clamp(-1, 1).to(device)
    mel = torch.randn(batch, 80, crop_frames).to(device)
    sigma = torch.rand(batch, n).clamp(min=0.1).to(device)
    times = []
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = diff.training_loss(lambda x, c, t: model(x, c, t), x0, mel, DiagonalDraw(sigma))
        loss.backward()
        opt.step()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"size": size, "n_params": count_parameters(model), "batch": batch, "crop_samples": n,
            "precision": precision, "steps_timed": steps, "median_step_s": med, "steps_per_s": 1 / med,
            "audio_s_per_s": batch * n / SR / med}


@torch.no_grad()
def bench_synth(size: str, device: torch.device, seconds: float, steps: int, repeats: int, precision: str) -> dict:
    L, C, cycle = SIZES[size]
    torch.manual_seed(0)
    model = DiffWave(residual_layers=L, residual_channels=C, dilation_cycle=cycle).to(device).eval()
    torch.nn.init.normal_(model.output_projection.weight, std=0.01)  # a non-trivial denoiser
    diff = Diffusion()
    frames = int(seconds * SR / HOP)
    mel = torch.randn(1, 80, frames).to(device)
    sigma = torch.ones(1, frames * HOP).to(device)
    audio_s = frames * HOP / SR

    def ours():
        cond = model.condition(mel)
        return diff.sample(lambda x, c, t: model.denoise(x, cond, t), None, DiagonalDraw(sigma), steps,
                           generator=torch.Generator().manual_seed(0), shape=sigma.shape, device=device)

    def straightforward():
        return diff.sample(lambda x, c, t: model(x, mel, t), None, DiagonalDraw(sigma), steps,
                           generator=torch.Generator().manual_seed(0), shape=sigma.shape, device=device)

    out = {}
    for name, fn in (("ours", ours), ("reference", straightforward)):
        times = []
        with autocast(device, precision):
            if repeats > 1:
                fn()  # warm-up (skipped for the single timed run of the costliest CPU cases)
            for _ in range(repeats):
                sync(device)
                t0 = time.perf_counter()
                y = fn()
                sync(device)
                times.append(time.perf_counter() - t0)
        out[name] = {"median_s": statistics.median(times), "rtf": statistics.median(times) / audio_s}
        out[f"{name}_output"] = y
    same = torch.allclose(out.pop("ours_output"), out.pop("reference_output"), atol=1e-5)
    return {"size": size, "n_params": count_parameters(model), "T_infer": steps, "audio_seconds": audio_s,
            "precision": precision, "repeats": repeats, "rtf": out["ours"]["rtf"],
            "rtf_reference_per_step_conditioner": out["reference"]["rtf"],
            "speedup_vs_reference": out["reference"]["rtf"] / out["ours"]["rtf"], "identical_output": bool(same)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/core_cpu.json")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", nargs="+", default=["fp32"])
    ap.add_argument("--sizes", nargs="+", default=["tiny", "small", "base"])
    ap.add_argument("--batch", type=int, default=None, help="train batch (default: 2 on CPU, 16 on GPU)")
    ap.add_argument("--crop-frames", type=int, default=None, help="train crop (default: 16 on CPU, 62 on GPU)")
    ap.add_argument("--train-steps", type=int, default=None)
    ap.add_argument("--synth-seconds", type=float, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    batch = args.batch or (16 if gpu else 2)
    crop = args.crop_frames or (62 if gpu else 16)
    train_steps = args.train_steps or (20 if gpu else 3)
    synth_s = args.synth_seconds or (5.0 if gpu else 0.5)
    repeats = args.repeats or (5 if gpu else 3)
    results = {"machine": machine(device), "config": {"batch": batch, "crop_frames": crop, "train_steps": train_steps,
                                                      "synth_seconds": synth_s, "repeats": repeats},
               "train": [], "synthesis": []}
    for precision in args.precision:
        for size in args.sizes:
            results["train"].append(bench_train(size, device, batch, crop, train_steps, 1, precision))
            print(json.dumps(results["train"][-1]), flush=True)
            for steps in (6, 50):
                # on CPU the 30-layer networks at T=50 cost 1-2 min per second of audio: time them once
                rep = 1 if (not gpu and size != "tiny" and steps == 50) else repeats
                results["synthesis"].append(bench_synth(size, device, synth_s, steps, rep, precision))
                print(json.dumps(results["synthesis"][-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
