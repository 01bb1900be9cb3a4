"""Acoustic model on the default corpus: E1 mel L1 at S = 2 / 6 / 12 under each few-step protocol
(strided, official, searched) and x0 clip setting (none, data_range), at each training budget, for
each system (B1, B2, PriorGrad) and size, beside each system's floors and start-point diagnostics.

Everything runs through the real code: ``train_acoustic`` (one run per size / prior, checkpoints kept
at every budget), ``sample_mels`` (E1: ground-truth durations, f0, energy), ``make_schedule`` /
``searched_schedule`` (the official grid search on the first VALIDATION utterance, capped), and
``mel_l1``. Per system and schedule it records:

- ``mel_l1``: mean over the test utterances and the noise seeds (``--noise-seeds``), with the per-seed
  means; ``refused``: utterances whose mel a vocoder would refuse (|ln mel| > 30 or not finite);
- ``t_start``: the start point t~_S of the schedule; ``start_mismatch``: sqrt(gamma_bar_S) E|x0 - mu| / s,
  the distance of the data from the prior's mean at the start, in the prior's noise SDs (what a late
  start asks the network to move in one step; 0 for a prior whose mean is the data's);
- floors: ``prior_draw_mel_l1`` (the system's own prior draw, mu + s n / learned mean + n / n: the
  sampler's start x_S) and ``mean_reference_mel_l1`` (the phoneme mean alone: a regression reference).

Training seeds: ``--train-seeds`` (default one: a CPU-time limit, said in the JSON); the noise seeds
give the sampling spread. The machine's load average is recorded (shared CPUs skew the timings).

    python benchmarks/bench_acoustic_protocols.py --features data/acoustic \
        --stats data/acoustic_stats/phoneme_stats.npz --out benchmarks/results/acoustic_protocols_cpu.json
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ("strided", "official", "searched")
CLIPS = ("none", "data_range")
REFUSE_ABS_LN_MEL = 30.0  # the acoustic evaluate stage's render refusal threshold (experiments/acoustic_synthesis.py)


def _overrides(a: argparse.Namespace, size: str, prior: str, seed: int, clip: str) -> list[str]:
    return [f"acoustic.model.size={size}", f"acoustic.model.prior={prior}", f"acoustic.train.seed={seed}",
            f"acoustic.train.max_steps={max(a.budgets)}", f"acoustic.train.keep_steps=[{','.join(map(str, a.budgets))}]",
            f"acoustic.train.validate_every={max(a.budgets)}", "acoustic.train.threads=1",
            "acoustic.train.device=cpu", "acoustic.infer.device=cpu", f"acoustic.infer.clip_x0={clip}",
            *a.set]


def _job(a: argparse.Namespace, size: str, prior: str, seed: int) -> dict[str, Any]:
    import torch

    from priorgrad.acoustic.dataset import FeatureSet
    from priorgrad.acoustic.metrics_mel import mel_l1
    from priorgrad.acoustic.model_config import load_acoustic_config
    from priorgrad.acoustic.synthesize import (load_acoustic_checkpoint, make_schedule, sample_mels,
                                               searched_schedule, table_from_ckpt)
    from priorgrad.acoustic.train import train_acoustic
    from priorgrad.core.diffusion import Diffusion
    from priorgrad.vocoder.infer import utterance_seed
    from priorgrad.core.runtime import kept_checkpoint

    torch.set_num_threads(1)
    run = Path(a.run_root) / f"{size}-{prior}-s{seed}"
    cfg = load_acoustic_config(str(ROOT / "params.yaml"), _overrides(a, size, prior, seed, "none"))
    t0 = time.perf_counter()
    res = train_acoustic(cfg, a.features, run, a.stats, progress=False)
    train_s = time.perf_counter() - t0
    fs = FeatureSet(a.features)
    test = fs.utterances("test")[:a.n_utts]
    valid0 = fs.utterances("valid")[0]
    dev = torch.device("cpu")
    out: dict[str, Any] = {"size": size, "prior": prior, "train_seed": seed, "train_wall_s": train_s,
                           "s_per_step": train_s / max(a.budgets), "n_params": res["n_params"], "budgets": {}}
    for budget in a.budgets:
        ck = kept_checkpoint(run / "checkpoints", budget)
        model, ccfg, ckpt = load_acoustic_checkpoint(ck, dev)
        table = table_from_ckpt(ckpt)
        f0 = (float(ckpt["f0_stats"]["mean"]), float(ckpt["f0_stats"]["std"]))
        diffusion = Diffusion(ccfg.diffusion.num_steps, ccfg.diffusion.beta_start, ccfg.diffusion.beta_end)
        cells: list[dict[str, Any]] = []
        floors: dict[str, Any] = {}
        for clip in CLIPS:
            for protocol in PROTOCOLS:
                for steps in a.steps:
                    if protocol == "official" and steps != 6:
                        continue  # the official code publishes 6-step betas only
                    t1 = time.perf_counter()
                    rec = None
                    if protocol == "searched":
                        sched, rec = searched_schedule(model, diffusion, ccfg.model, table, valid0, f0, dev, steps,
                                                       a.search_cap, 0, clip)
                    else:
                        sched = make_schedule(diffusion, protocol, steps)
                    search_s = time.perf_counter() - t1
                    per_seed, refused, clipped_last, draws, mism = [], 0, [], [], []
                    abar_start = float(np.prod(1.0 - sched.eta))
                    for ns in a.noise_seeds:
                        clipped: list[float] = []
                        outs = sample_mels(model, diffusion, ccfg.model, table, test, sched,
                                           [utterance_seed(ns, f"E1:{u.utt}") for u in test], "E1", f0, dev,
                                           clip_x0=clip, clipped=clipped)
                        if clipped:
                            clipped_last.append(clipped[-1])
                        l1s = []
                        for u, r in zip(test, outs):
                            ok = np.all(np.isfinite(r["mel"])) and np.abs(r["mel"]).max() <= REFUSE_ABS_LN_MEL
                            refused += int(not ok)
                            l1s.append(mel_l1(r["mel"], u.mel))
                            draws.append(mel_l1(r["x_start"], u.mel))
                            mism.append(float(np.sqrt(abar_start) * np.mean(np.abs(u.mel - r["mu"]) / r["s"])))
                        per_seed.append(float(np.mean(l1s)))
                    cells.append({"protocol": protocol, "clip_x0": clip, "steps": steps, "schedule": sched.name,
                                  "t_start": float(sched.t[-1]), "start_mismatch": float(np.mean(mism)),
                                  "mel_l1": float(np.mean(per_seed)), "mel_l1_per_noise_seed": per_seed,
                                  "refused": refused, "n_utterances": len(test) * len(a.noise_seeds),
                                  "clipped_last_step": float(np.mean(clipped_last)) if clipped_last else None,
                                  "search": None if rec is None else {k: rec.get(k) for k in
                                                                      ("betas", "t", "mel_l1", "n_evaluated",
                                                                       "n_unalignable", "utterance")},
                                  "search_s": search_s if rec is not None else 0.0})
                    floors["prior_draw_mel_l1"] = float(np.mean(draws))
        mean_ref = [mel_l1(table.frame_stats(u.frame_ids())[0], u.mel) for u in test] if table is not None else []
        floors["mean_reference_mel_l1"] = float(np.mean(mean_ref)) if mean_ref else None
        out["budgets"][str(budget)] = {"cells": cells, **floors}
        print(f"{size} {prior} s{seed} b{budget}: " + ", ".join(
            f"{c['protocol'][:4]}/{c['clip_x0'][:4]}/S{c['steps']}={c['mel_l1']:.2f}" for c in cells), flush=True)
    return out


def main() -> None:
    import torch
    from bench_core import machine

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--features", default="data/acoustic")
    p.add_argument("--stats", default="data/acoustic_stats/phoneme_stats.npz")
    p.add_argument("--sizes", nargs="+", default=["tiny_c80", "tiny_c256"])
    p.add_argument("--priors", nargs="+", default=["standard", "trainable", "phoneme"])
    p.add_argument("--budgets", nargs="+", type=int, default=[100, 200, 400])
    p.add_argument("--train-seeds", nargs="+", type=int, default=[0])
    p.add_argument("--noise-seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", nargs="+", type=int, default=[2, 6, 12])
    p.add_argument("--n-utts", type=int, default=8, help="first N test utterances")
    p.add_argument("--search-cap", type=int, default=30, help="grid-search candidates per search (evenly spaced)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--run-root", default="/tmp/bench_acoustic_protocols")
    p.add_argument("--set", action="append", default=[], help="extra params override key=value (all runs)")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    jobs = [(size, prior, seed) for size in a.sizes for prior in a.priors for seed in a.train_seeds]
    with ProcessPoolExecutor(a.workers) as ex:
        results = list(ex.map(_job, [a] * len(jobs), *zip(*jobs)))
    doc = {"benchmark": "acoustic few-step protocols x x0 clip (E1 mel L1, default corpus)",
           "machine": machine(torch.device("cpu")), "load_avg_start": load0, "load_avg_end": os.getloadavg(),
           "wall_s": time.perf_counter() - t0, "settings": {k: v for k, v in vars(a).items()},
           "note": ("one training seed per system (CPU time); mel_l1 = mean over test utterances and noise seeds; "
                    "start_mismatch in the prior's noise SDs; searched = the official grid (capped, evenly spaced) "
                    "on the first validation utterance; official = the 6-step config betas only"),
           "runs": results}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    from priorgrad.core.fileio import write_json_atomic

    write_json_atomic(a.out, doc)
    print(f"wrote {a.out} ({doc['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
