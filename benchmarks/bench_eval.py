"""Throughput of the eval package on the 32 real clips of ljspeech_mini.

For each metric alone and for all metrics together, ``eval.runner.score_dirs`` scores the 32 clips
(reference = the recording, generated = the recording with white noise at 20 dB SNR, hop-trimmed
like a vocoder's output) with N worker processes and no cache, so every figure includes starting
the workers; CPU seconds (this process plus its workers) are recorded too, since wall time grows
when other jobs compete for the 2 cores (the load average before and after is recorded). Also
records the warm single-process CPU cost of each metric per utterance (no start-up, no shared
analysis). Writes benchmarks/results/eval_cpu.json (machine, versions, configuration,
medians over repeats).

    python benchmarks/bench_eval.py [--workers 2] [--repeats 3] [--out benchmarks/results/eval_cpu.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval.files import write_json  # noqa: E402
from eval.pair import Pair  # noqa: E402
from eval.registry import METRICS, package_version  # noqa: E402
from eval.runner import score_dirs  # noqa: E402

CORPUS = ROOT.parent / "shared/data/ljspeech_mini"
SNR_DB = 20.0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _prepare(tmp: Path) -> tuple[Path, Path, float, list[str]]:
    import soundfile as sf

    from priorgrad.core.audio import read_wav  # the project's checked reader (a truncated wav is an error)

    ref_dir, gen_dir = tmp / "ref", tmp / "gen"
    ref_dir.mkdir()
    gen_dir.mkdir()
    wavs = sorted((CORPUS / "wavs").glob("*.wav"))
    if not wavs:
        raise SystemExit(f"no wavs in {CORPUS / 'wavs'} (../shared/data/ljspeech_mini)")
    seconds = 0.0
    rng = np.random.default_rng(0)
    for w in wavs:
        x, sr = read_wav(w)
        seconds += len(x) / sr
        noise = rng.standard_normal(len(x))
        scale = np.sqrt(np.mean(x.astype(np.float64) ** 2) / (np.mean(noise ** 2) * 10 ** (SNR_DB / 10)))
        y = np.clip(x + scale * noise, -1, 1).astype(np.float32)
        sf.write(str(ref_dir / w.name), x, sr, subtype="PCM_16")
        sf.write(str(gen_dir / w.name), y[: len(y) // 256 * 256], sr, subtype="PCM_16")
    return ref_dir, gen_dir, seconds, [w.stem for w in wavs]


def _cpu_seconds() -> float:
    """CPU time of this process plus its finished children (the pool's workers once it is shut down)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _timed_run(ref: Path, gen: Path, metrics: list[str], out: Path, workers: int) -> tuple[float, float, int]:
    """(wall s, CPU s, failed values). CPU time does not grow when other jobs compete for the cores."""
    cpu0, start = _cpu_seconds(), time.perf_counter()
    records, summary = score_dirs(ref, gen, metrics, out, workers=workers, use_cache=False, progress=False)
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu0
    failed = sum(s["n_failed"] for s in summary.values())
    return wall, cpu, failed


def _warm_costs(ref: Path, gen: Path, utts: list[str]) -> dict[str, float]:
    """Median CPU seconds per utterance of each metric alone, in this process, after a warm-up."""
    import torch

    torch.set_num_threads(1)
    from eval.metrics import dnsmos

    dnsmos.set_threads(1)
    costs: dict[str, float] = {}
    for name, m in METRICS.items():
        fn = m.function()
        fn(Pair.from_files(utts[0], ref / f"{utts[0]}.wav", gen / f"{utts[0]}.wav"))  # warm-up
        times = []
        for u in utts:
            pair = Pair.from_files(u, ref / f"{u}.wav", gen / f"{u}.wav")
            t = time.process_time()
            fn(pair)
            times.append(time.process_time() - t)
        costs[name] = statistics.median(times)
    return costs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the all-metrics run (median)")
    ap.add_argument("--metric-repeats", type=int, default=1, help="repeats of each single-metric run")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/eval_cpu.json")
    args = ap.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as td:
        tmp = Path(td)
        ref, gen, audio_s, utts = _prepare(tmp)
        n = len(utts)
        all_walls, all_cpus = [], []
        for i in range(args.repeats):
            wall, cpu, failed = _timed_run(ref, gen, list(METRICS), tmp / f"all{i}", args.workers)
            if failed:
                raise SystemExit(f"{failed} metric value(s) failed in the all-metrics run; see {tmp}")
            all_walls.append(wall)
            all_cpus.append(cpu)
            print(f"all metrics, run {i + 1}: {wall:.2f} s wall, {cpu:.1f} s CPU ({n / wall:.2f} utt/s), "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
        per_metric = {}
        for name in METRICS:
            runs = [_timed_run(ref, gen, [name], tmp / f"{name}{i}", args.workers) for i in range(args.metric_repeats)]
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            per_metric[name] = {"wall_s": round(wall, 3), "utt_per_s": round(n / wall, 3), "cpu_s": round(cpu, 2),
                                "runs_wall_s": [round(r[0], 3) for r in runs]}
            print(f"{name:12s} {wall:6.2f} s wall {cpu:6.1f} s CPU {n / wall:6.2f} utt/s", flush=True)
        warm = _warm_costs(ref, gen, utts)
    load_after = os.getloadavg()

    all_wall = statistics.median(all_walls)
    result = {
        "benchmark": "eval: all metrics and each metric alone on ljspeech_mini",
        "machine": {"platform": platform.platform(), "cpu": _cpu_model(), "cpus_usable": len(os.sched_getaffinity(0)),
                    "python": platform.python_version(), "loadavg_1_5_15_before": [round(v, 2) for v in load_before],
                    "loadavg_1_5_15_after": [round(v, 2) for v in load_after]},
        "versions": {p: package_version(p) for p in ("pesq", "pystoi", "pyworld", "pysptk", "speechmos",
                                                      "onnxruntime", "torch", "soxr", "numpy", "priorgrad-bench")},
        "configuration": {"corpus": "ljspeech_mini (32 LJSpeech recordings)", "utterances": n,
                          "audio_seconds": round(audio_s, 2),
                          "generated": f"reference + white noise at {SNR_DB} dB SNR",
                          "workers": args.workers, "cache": "off", "repeats_all": args.repeats,
                          "repeats_per_metric": args.metric_repeats,
                          "note": "wall times include starting the worker processes (spawn) and their imports"},
        "all_metrics": {"metrics": list(METRICS), "wall_s_median": round(all_wall, 3),
                        "utt_per_s": round(n / all_wall, 3), "runs_wall_s": [round(w, 3) for w in all_walls],
                        "cpu_s_median": round(statistics.median(all_cpus), 2),
                        "runs_cpu_s": [round(c, 2) for c in all_cpus],
                        "target_s": 30.0, "meets_target": all_wall < 30.0},
        "per_metric": per_metric,
        "warm_single_process_cpu_s_per_utt_median": {k: round(v, 4) for k, v in warm.items()},
    }
    write_json(args.out, result)
    print(json.dumps(result["all_metrics"], indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
