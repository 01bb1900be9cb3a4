"""Benchmark: how fast the default eSpeak NG corpus is made and validated on this machine.

Measures, over several repeats (median reported):
- end-to-end ``make_corpus`` of the default corpus into a fresh directory (worker start-up,
  synthesis, trimming, WAV encoding, atomic writes): audio seconds per wall second;
- raw eSpeak NG synthesis in this process (no trimming, no I/O): audio seconds per wall second;
- ``validate_corpus`` on the made corpus: audio seconds checked per wall second;
- a re-run on the complete corpus (the no-op path).

Usage: python benchmarks/bench_corpus.py [--n 300] [--repeats 3] [--out benchmarks/results/corpus_cpu.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            # other work on a shared machine slows every number below; recorded to judge a run
            "load_avg_1min_at_start": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="utterances (default: the default corpus size)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "corpus_cpu.json")
    args = ap.parse_args(argv)

    from priorgrad.corpus import espeak, synth
    from priorgrad.corpus.ljspeech import atomic_write_bytes
    from priorgrad.corpus.sentences import generate_sentences
    from priorgrad.corpus.validate import validate_corpus

    make_s, make_rate, validate_s, validate_rate, noop_s, raw_rate = [], [], [], [], [], []
    summary = {}
    with tempfile.TemporaryDirectory(prefix="bench_corpus_") as tmp:
        for r in range(args.repeats):
            out = Path(tmp) / f"run{r}"
            t = time.perf_counter()
            summary = synth.make_corpus(out, n_utterances=args.n, seed=args.seed, progress=False)
            dt = time.perf_counter() - t
            make_s.append(dt)
            make_rate.append(summary["total_seconds"] / dt)
            t = time.perf_counter()
            synth.make_corpus(out, n_utterances=args.n, seed=args.seed, progress=False)
            noop_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            report = validate_corpus(out, progress=False)
            dt = time.perf_counter() - t
            assert report.ok, "the benchmark corpus should validate clean"
            validate_s.append(dt)
            validate_rate.append(report.usable_seconds / dt)

        sentences = generate_sentences(args.n, args.seed)
        a = synth.default_args(n_utterances=args.n, seed=args.seed)
        prosodies = [synth.prosody_for(a, i) for i in range(args.n)]
        espeak.engine()  # load once, outside the timing
        for _ in range(args.repeats):
            t = time.perf_counter()
            samples = sum(len(espeak.synthesize_int16(s, p)) for s, p in zip(sentences, prosodies))
            raw_rate.append(samples / espeak.NATIVE_SAMPLE_RATE / (time.perf_counter() - t))

    result = {
        "benchmark": "corpus",
        "machine": machine(),
        "versions": {"espeak_ng": espeak.version(), "espeakng-loader": version("espeakng-loader"),
                     "numpy": version("numpy"), "soundfile": version("soundfile")},
        "configuration": {"n_utterances": args.n, "seed": args.seed, "repeats": args.repeats,
                          "sample_rate": summary["args"]["sample_rate"],
                          "audio_seconds": summary["total_seconds"], "mean_words": summary["mean_words"]},
        "median": {
            "make_corpus_wall_s": statistics.median(make_s),
            "make_corpus_audio_s_per_wall_s": statistics.median(make_rate),
            "espeak_raw_audio_s_per_wall_s": statistics.median(raw_rate),
            "validate_wall_s": statistics.median(validate_s),
            "validate_audio_s_per_wall_s": statistics.median(validate_rate),
            "rerun_noop_wall_s": statistics.median(noop_s),
        },
        "runs": {"make_corpus_wall_s": make_s, "validate_wall_s": validate_s, "rerun_noop_wall_s": noop_s,
                 "espeak_raw_audio_s_per_wall_s": raw_rate},
    }
    atomic_write_bytes(args.out, (json.dumps(result, indent=2) + "\n").encode())
    print(json.dumps(result["median"], indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
