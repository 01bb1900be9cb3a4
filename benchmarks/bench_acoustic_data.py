"""Monotonic Alignment Search speed: numpy MAS (vectorised over tokens and batch) against a
straightforward pure-Python port of monotonic_align/core.pyx measured in the same run.

    python benchmarks/bench_acoustic_data.py --out benchmarks/results/acoustic_data_cpu.json
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from priorgrad.acoustic.mas import durations_from_path, maximum_path  # noqa: E402


def reference_path(value: np.ndarray) -> np.ndarray:
    """core.pyx maximum_path_each, cell by cell in Python (the straightforward reference)."""
    v = value.astype(np.float32).copy()
    t_x, t_y = v.shape
    neg = np.float32(-1e9)
    for y in range(t_y):
        for x in range(max(0, t_x + y - t_y), min(t_x, y + 1)):
            cur = neg if x == y else v[x, y - 1]
            prev = (np.float32(0.0) if y == 0 else neg) if x == 0 else v[x - 1, y - 1]
            v[x, y] += max(cur, prev)
    path = np.zeros((t_x, t_y), np.int32)
    index = t_x - 1
    for y in range(t_y - 1, -1, -1):
        path[index, y] = 1
        if index != 0 and (index == y or v[index, y - 1] < v[index - 1, y - 1]):
            index -= 1
    return path


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    results = []
    for nx, ny in ((100, 800), (40, 300)):
        value = rng.normal(size=(nx, ny)).astype(np.float32)
        ours = median_time(lambda: maximum_path(value), args.repeats)
        ref = median_time(lambda: reference_path(value), max(1, args.repeats // 3))
        same = bool((maximum_path(value) == reference_path(value)).all())
        results.append({"case": f"single {nx}x{ny}", "ours_s": ours, "reference_s": ref, "speedup": ref / ours,
                        "identical_paths": same})
    batch = [rng.normal(size=(int(rng.integers(40, 100)), int(rng.integers(300, 800)))).astype(np.float32)
             for _ in range(16)]
    nx, ny = max(b.shape[0] for b in batch), max(b.shape[1] for b in batch)
    padded = np.zeros((16, nx, ny), np.float32)
    for i, b in enumerate(batch):
        padded[i, :b.shape[0], :b.shape[1]] = b
    tx, ty = [b.shape[0] for b in batch], [b.shape[1] for b in batch]
    ours = median_time(lambda: maximum_path(padded, tx, ty), args.repeats)
    one_by_one = median_time(lambda: [maximum_path(b) for b in batch], args.repeats)
    same = all((durations_from_path(p[:b.shape[0], :b.shape[1]]) == durations_from_path(maximum_path(b))).all()
               for p, b in zip(maximum_path(padded, tx, ty), batch))
    results.append({"case": "batch of 16 (40-100 tokens x 300-800 frames)", "ours_s": ours,
                    "reference_s": one_by_one, "reference": "our numpy MAS one utterance at a time",
                    "speedup": one_by_one / ours, "identical_paths": same})
    out = {"benchmark": "monotonic alignment search", "unit": "seconds (median)",
           "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                       "numpy": np.__version__, "load_average_1m": os.getloadavg()[0]},
           "reference": "pure-Python port of monotonic_align/core.pyx (cell by cell)", "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
