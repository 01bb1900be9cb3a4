"""Cost of the training-crop modes (``train.crop``): time to assemble one batch, official vs frames.

``official`` recomputes each crop's mel with the front-end (one batched STFT + mel per step);
``frames`` slices the precomputed mel. Measured on a features directory written like
``priorgrad preprocess`` writes one (synthetic harmonic signals, 4 s each), at the CPU profile's batch
(4 x 16 frames) and the paper's (16 x 62 frames), next to one training step of the network each
profile trains on CPU (the tiny network; the paper's batch trains on a GPU, so no CPU step is timed
for it) so the difference can be read against a step:

    python benchmarks/bench_crops.py --out benchmarks/results/crops_cpu.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_core import bench_train, machine  # noqa: E402
from priorgrad.core.audio import log_mel, normalize, trim_to_hops  # noqa: E402
from priorgrad.vocoder.data import CropSampler, read_manifest  # noqa: E402
from priorgrad.core.fileio import save_npy_atomic, write_text_atomic  # noqa: E402

SR, HOP = 22050, 256


def make_features(root: Path, n: int, seconds: float) -> None:
    rng = np.random.default_rng(0)
    lines = []
    for k in range(n):
        t = np.arange(int(seconds * SR)) / SR
        wav = sum(np.sin(2 * np.pi * rng.uniform(90, 250) * h * t) / h for h in range(1, 6))
        audio = trim_to_hops(normalize((wav * np.abs(np.sin(3 * t))).astype(np.float32)), HOP)
        mel = log_mel(audio)
        save_npy_atomic(root / "audio" / f"u{k}.npy", audio)
        save_npy_atomic(root / "mel" / f"u{k}.npy", mel)
        lines.append(json.dumps({"utt": f"u{k}", "split": "train", "audio": f"audio/u{k}.npy",
                                 "mel": f"mel/u{k}.npy", "samples": len(audio), "frames": mel.shape[1]}))
    write_text_atomic(root / "manifest.jsonl", "\n".join(lines) + "\n")


def bench_batch(items, mode: str, batch: int, crop: int, steps: int) -> float:
    sampler = CropSampler(items, crop, batch, "hifigan", seed=0, mode=mode)
    for s in range(3):
        sampler.batch(s)  # warm-up (page cache, filterbank)
    times = []
    for s in range(steps):
        t0 = time.perf_counter()
        sampler.batch(1000 + s)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200, help="timed batches per mode and configuration")
    ap.add_argument("--train-steps", type=int, default=3, help="timed training steps (context)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1: stable medians on a shared machine; a trial uses sweep.cpus_per_trial)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        make_features(Path(tmp), n=32, seconds=4.0)
        items = read_manifest(tmp, split="train")
        for name, batch, crop, size in (("cpu profile", 4, 16, "tiny"), ("paper", 16, 62, None)):
            off = bench_batch(items, "official", batch, crop, args.steps)
            fr = bench_batch(items, "frames", batch, crop, args.steps)
            rec = {"configuration": name, "batch": batch, "crop_frames": crop, "official_batch_s": off,
                   "frames_batch_s": fr, "official_over_frames": off / fr, "extra_s_per_step": off - fr}
            if size:
                step = bench_train(size, device, batch, crop, args.train_steps, 1, "fp32")
                rec.update(train_step=step, extra_fraction_of_train_step=(off - fr) / step["median_step_s"])
            results.append(rec)
            print(json.dumps(results[-1]))
    out = {"benchmark": "crop modes (median seconds to assemble one batch)", "machine": machine(device),
           "reference": "frames (slices the precomputed mel)", "results": results}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
