"""Acoustic model: training step time and synthesis RTF (mel, and audio with Griffin-Lim) for the tiny,
cpu and paper sizes, on toy features in the contract's directory format (made in a temp dir).

Training: the real trainer's step (AcousticTrainer.train_step: encoder, variance adaptor, windowed
diffusion loss, AdamW). Mel synthesis: the real sampler (sample_mels, E1 / E3, strided schedules);
the in-run reference is a straightforward sampler that recomputes the decoder's per-layer
conditioner projections at every step (ours computes them once per utterance). Audio RTF adds
Griffin-Lim (60 iterations). Medians over repeats; the machine's load average is recorded because
other work on a shared CPU skews them.

    python benchmarks/bench_acoustic.py --out benchmarks/results/acoustic_cpu.json
    python benchmarks/bench_acoustic.py --device cuda --sizes paper --steps 2 6 12 400 --out benchmarks/results/acoustic_gpu.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import machine, sync  # noqa: E402
from priorgrad.acoustic.model_config import load_acoustic_config  # noqa: E402
from priorgrad.acoustic.synthesize import make_schedule, sample_mels  # noqa: E402
from priorgrad.acoustic.toydata import make_toy_features  # noqa: E402
from priorgrad.acoustic.train import AcousticTrainer  # noqa: E402
from priorgrad.acoustic.vocode import griffin_lim  # noqa: E402
from priorgrad.vocoder.model import count_parameters  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SR, HOP = 22050, 256
REFERENCE = ("reference_mel_rtf: the same sampler recomputing the decoder's per-layer conditioner projections at "
             "every step (ours: once per utterance); speedup_vs_reference = reference / ours. audio_rtf_griffin_lim = "
             "mel_rtf + Griffin-Lim's RTF (60 iterations). Synthesis: E1, 4 test utterances batched, strided schedules.")


def bench_train(trainer: AcousticTrainer, steps: int, warmup: int, device: torch.device) -> dict:
    for _ in range(warmup):
        trainer.train_step()
    times = []
    for _ in range(steps):
        sync(device)
        t0 = time.perf_counter()
        trainer.train_step()
        sync(device)
        times.append(time.perf_counter() - t0)
    return {"median_step_s": statistics.median(times), "steps_timed": steps, "warmup_steps": warmup}


def _straightforward(trainer: AcousticTrainer):
    """The reference sampler's decoder: the conditioner projections recomputed at every step."""
    dec = trainer.model.decoder
    original = dec.condition
    calls = {"n": 0}

    def per_step(cond):
        calls["n"] += 1
        return _Lazy(original, cond)

    return per_step, original, calls


class _Lazy(list):
    """Looks like the list of per-layer projections; recomputes them on every iteration (once per step)."""

    def __init__(self, fn, cond):
        super().__init__()
        self.fn, self.cond = fn, cond

    def __iter__(self):
        return iter(self.fn(self.cond))


def bench_synth(trainer: AcousticTrainer, steps: int, repeats: int, condition: str, device: torch.device,
                reference: bool) -> dict:
    cfg = trainer.cfg
    sched = make_schedule(trainer.diffusion, "strided", steps)
    utts = trainer.features.utterances("test")[:4]
    trainer.model.eval()

    def run() -> tuple[float, int]:
        sync(device)
        t0 = time.perf_counter()
        res = sample_mels(trainer.model, trainer.diffusion, cfg.model, trainer.table, utts, sched,
                          list(range(len(utts))), condition, trainer.f0_stats, device)
        sync(device)
        return time.perf_counter() - t0, sum(r["mel"].shape[1] for r in res)

    out = {}
    run()  # warm-up
    walls, frames = zip(*(run() for _ in range(repeats)))
    audio_s = frames[0] * HOP / SR
    out["mel_rtf"] = statistics.median(walls) / audio_s
    if reference:
        per_step, original, _ = _straightforward(trainer)
        trainer.model.decoder.condition = per_step
        try:
            ref_walls = [run()[0] for _ in range(repeats)]
        finally:
            trainer.model.decoder.condition = original
        out["reference_mel_rtf"] = statistics.median(ref_walls) / audio_s
        out["speedup_vs_reference"] = out["reference_mel_rtf"] / out["mel_rtf"]
    out["audio_seconds"] = audio_s
    return out


def bench_griffin_lim(trainer: AcousticTrainer, repeats: int) -> dict:
    mel = trainer.features.utterances("test")[0].mel
    walls = []
    for i in range(repeats):
        t0 = time.perf_counter()
        griffin_lim(mel, 60, i)
        walls.append(time.perf_counter() - t0)
    return {"griffin_lim_rtf": statistics.median(walls) / (mel.shape[1] * HOP / SR)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", nargs="+", default=["tiny", "cpu", "paper"])
    ap.add_argument("--steps", nargs="+", type=int, default=[6, 12], help="inference steps (strided)")
    ap.add_argument("--train-steps", type=int, default=5, help="timed training steps (paper size on CPU: 1)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tmp = Path(tempfile.mkdtemp())
    feats = make_toy_features(tmp / "feats", n_train=16, n_valid=2, n_test=4, min_tokens=20, max_tokens=28)
    results = {"machine": machine(device), "data": "toy features (priorgrad/acoustic/toydata.py), 4 test utterances "
                                                   "of ~130-230 frames, 16 train",
               "reference": REFERENCE, "command": " ".join(["python"] + sys.argv), "sizes": {}}
    for size in args.sizes:
        cfg = load_acoustic_config(ROOT / "params.yaml", [f"acoustic.model.size={size}", f"acoustic.train.device={args.device}",
                                                          "acoustic.train.valid_utterances=1"])
        trainer = AcousticTrainer(cfg, feats, tmp / f"run-{size}", prior=feats / "phoneme_stats.npz", progress=False)
        slow = size == "paper" and device.type == "cpu"
        entry = {"n_params": count_parameters(trainer.model), "decoder_params": count_parameters(trainer.model.decoder),
                 "config": {"batch_size": cfg.train.batch_size, "window_frames": cfg.train.window_frames,
                            **{k: getattr(cfg.size, k) for k in ("hidden", "predictor", "encoder_layers",
                                                                  "decoder_channels", "decoder_layers")}}}
        entry["train"] = bench_train(trainer, 1 if slow else args.train_steps, 1, device)
        entry["synthesis"] = {}
        for s in args.steps:
            for cond in ("E1",):  # E3 of an untrained model predicts ~0 durations: not a useful timing
                entry["synthesis"][f"{cond}_{s}"] = bench_synth(trainer, s, 1 if slow else args.repeats, cond, device,
                                                                reference=(cond == "E1"))
        entry["audio"] = bench_griffin_lim(trainer, 1 if slow else args.repeats)
        for key, v in entry["synthesis"].items():
            v["audio_rtf_griffin_lim"] = v["mel_rtf"] + entry["audio"]["griffin_lim_rtf"]
        results["sizes"][size] = entry
        print(json.dumps({size: entry}, indent=2), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
