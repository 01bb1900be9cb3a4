"""``python -m eval``: score a directory, score several systems at once, compare two, list the metrics.

Exit status: 0 on success, also when some utterances failed (a warning names them; scores.jsonl
holds each error); 2 when the run cannot start (missing directory, unknown metric, bad scores file).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

log = logging.getLogger("eval")


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("score", help="score generated wavs against references (paired by file stem)")
    s.add_argument("--ref", type=Path, default=None,
                   help="directory of reference wavs (<utt>.wav); without it only the reference-free metrics "
                        "(DNSMOS) are scored, on every generated wav")
    s.add_argument("--gen", required=True, type=Path, help="directory of generated wavs (<utt>.wav)")
    s.add_argument("--out", required=True, type=Path, help="output directory: scores.jsonl, summary.json")
    _common_scoring_args(s)

    sm = sub.add_parser("score-many", help="score several generated directories against one reference "
                                           "directory; one tidy table plus paired comparisons to a baseline")
    sm.add_argument("--ref", type=Path, default=None,
                    help="directory of reference wavs (without it: reference-free metrics only)")
    sm.add_argument("--gen", required=True, action="append", metavar="NAME=DIR",
                    help="a system: its name and directory of generated wavs (repeat for each system)")
    sm.add_argument("--baseline", required=True, help="the system every other one is compared with (a - baseline)")
    sm.add_argument("--out", required=True, type=Path,
                    help="output directory: scores.csv, summary.csv, comparisons.{json,csv}, <system>/")
    _common_scoring_args(sm)
    _margins_arg(sm)

    c = sub.add_parser("compare", help="compare two scored systems (a - b): seeds, then utterances")
    c.add_argument("--a", required=True, type=Path, nargs="+",
                   help="score directories (or scores.jsonl) of system a, one per training seed")
    c.add_argument("--b", required=True, type=Path, nargs="+",
                   help="score directories (or scores.jsonl) of system b, one per training seed")
    c.add_argument("--out", required=True, type=Path, help="output JSON file")
    c.add_argument("--metrics", default=None, help="comma-separated keys (default: all scored in both)")
    c.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    c.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    c.add_argument("--min-seeds", type=int, default=3,
                   help="fewer seeds per system: shown, not judged (default 3, as report.min_seeds)")
    c.add_argument("--min-n", type=int, default=8,
                   help="fewer utterances scored for every seed of both: not judged (default 8, as report.claim_min_n)")
    _margins_arg(c)

    sub.add_parser("list", help="list the metrics with their metadata")
    return p


def _margins_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--margins", default="params", metavar="M=V,...|params|none",
                   help="equivalence margins: a significant difference whose estimate lies inside +-margin is a "
                        "'negligible difference', not a better system (the report's rule). 'params' (default): "
                        "the project's params.yaml report.equivalence_margins; 'none': no margins; or e.g. "
                        "'pesq_wb=0.1,mrstft=0.05'")


def parse_margins(text: str) -> dict[str, float]:
    """--margins: 'params' (the project's report.equivalence_margins), 'none', or 'metric=value,...'."""
    text = text.strip()
    if text == "none":
        return {}
    if text == "params":
        from priorgrad.core.schema import read_params

        path = Path(__file__).resolve().parents[1] / "params.yaml"
        if not path.is_file():
            log.warning("--margins params: %s not found; no equivalence margins", path)
            return {}
        section = (read_params(path).get("report") or {}).get("equivalence_margins") or {}
        return {str(k): float(v) for k, v in section.items()}
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            v = float(value)
        except ValueError:
            v = float("nan")
        if not sep or not name.strip() or not v > 0:
            raise ValueError(f"--margins {text!r}: expected 'params', 'none' or metric=value pairs with values > 0, "
                             f"e.g. 'pesq_wb=0.1,mrstft=0.05' (bad item {item!r})")
        out[name.strip()] = v
    return out


def _verdict(r: dict) -> str:
    """The one rule's outcome of a compare / score-many result, in words."""
    if not r["judged"]:
        return f"not judged ({r['not_judged']})"
    return {"a": "better=a", "b": "better=b"}.get(r["better"], r["outcome"])


def _common_scoring_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--metrics", default="all", help="comma-separated metric keys, or 'all' (default)")
    s.add_argument("--length-tolerance", default="1hop", metavar="TOL",
                   help="how far a generated file's length may differ from its reference's before the "
                        "reference metrics fail for it; within it both are trimmed to the shorter: "
                        "'<k>hop(s)' (front-end hops: 256 samples at 22050 Hz, scaled to the files' rate) or "
                        "'<n>' samples. Default '1hop' (the spec's policy for this project's vocoders); other "
                        "vocoders' published samples often need e.g. '4hops'. Recorded in summary.json")
    s.add_argument("--align", choices=("dtw", "lag"), default=None,
                   help="align each generated file to its reference first. 'dtw': mcd, f0_rmse and vuv_error "
                        "compare the whole (silence-trimmed) files along a DTW path on mel-cepstra, for "
                        "text-to-speech output of another length; the sample-aligned metrics keep "
                        "--length-tolerance. 'lag': shift by the cross-correlation lag (|lag| <= --max-lag, "
                        "recorded per utterance) before every reference metric, for a vocoder's constant "
                        "delay. Default: none (sample-aligned, the spec's policy). Recorded in summary.json")
    s.add_argument("--max-lag", default=None, metavar="LAG",
                   help="with --align lag: the largest shift tried, '<k>hops' or '<n>' samples like "
                        "--length-tolerance (default '8hops': 2048 samples, 93 ms at 22050 Hz)")
    s.add_argument("--pair-by", default=None, metavar="REGEX",
                   help="pair generated and reference files by the first group of this regular expression, "
                        "searched in each file name (e.g. '(\\d+)\\.wav$' pairs ss_gt_1.wav with "
                        "ss_hgan_v1_1.wav), instead of identical names; every wav must give one key, "
                        "no key two files")
    s.add_argument("--text", type=Path, default=None, metavar="FILE",
                   help="what each utterance says, for wer and cer: 'id|text' lines or an LJSpeech "
                        "metadata.csv (its normalized column); ids are the utterance keys (file stems, or "
                        "--pair-by keys). Without it, 'all' leaves wer and cer out")
    s.add_argument("--workers", type=int, default=_default_workers(),
                   help="worker processes (default: the CPUs this process may use)")
    s.add_argument("--cache", type=Path, default=None,
                   help="score cache file (sqlite; default OUT/cache.sqlite)")
    s.add_argument("--no-cache", action="store_true", help="score everything, read and write no cache")
    s.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    s.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")


def _inputs(args: argparse.Namespace) -> dict:
    """The scoring options both score commands share, parsed (ValueError/FileNotFoundError on bad input)."""
    from eval.files import read_texts
    from eval.pair import parse_alignment, parse_length_tolerance

    return {"length_policy": parse_length_tolerance(args.length_tolerance),
            "alignment": parse_alignment(args.align, args.max_lag), "pair_by": args.pair_by,
            "texts": None if args.text is None else read_texts(args.text),
            "text_source": None if args.text is None else str(args.text)}


def _print_alignment(records: Sequence[dict]) -> None:
    lags = [r["alignment"]["lag_samples"] for r in records if "lag_samples" in r.get("alignment", {})]
    if lags:
        print(f"{'lag':12s} n={len(lags):<4d} samples: min={min(lags)} max={max(lags)} (> 0: generated is late)")
    ratios = [r["alignment"]["duration_ratio"] for r in records if "duration_ratio" in r.get("alignment", {})]
    if ratios:
        print(f"{'duration':12s} n={len(ratios):<4d} generated/reference speech: "
              f"min={min(ratios):.3f} max={max(ratios):.3f}")


def _score(args: argparse.Namespace) -> int:
    from eval.runner import EvalInputError, score_dirs

    try:
        records, summary = score_dirs(args.ref, args.gen, args.metrics, args.out, workers=args.workers,
                                      cache_path=args.cache, use_cache=not args.no_cache, seed=args.seed,
                                      n_boot=args.n_boot, **_inputs(args))
    except (EvalInputError, ValueError, FileNotFoundError) as e:
        log.error("%s", e)
        return 2
    failed = [r["utt"] for r in records if r["errors"]]
    for name, s in summary.items():
        mean = "n/a" if s["mean"] is None else f"{s['mean']:.4f}"
        ci = "" if s["ci_low"] is None else f" [{s['ci_low']:.4f}, {s['ci_high']:.4f}]"
        print(f"{name:12s} n={s['n']:<4d} failed={s['n_failed']:<4d} mean={mean}{ci}")
    _print_alignment(records)
    if failed:
        log.warning("%d of %d utterance(s) had at least one failed metric (%s); see %s",
                    len(failed), len(records), ", ".join(failed[:5]) + (" ..." if len(failed) > 5 else ""),
                    args.out / "scores.jsonl")
    return _nothing_scored({"": summary}, {"": records}, args.out)


def _nothing_scored(summaries: dict[str, dict[str, dict]], records: dict[str, list[dict]], out: Path) -> int:
    """1 (with an error per metric) when a metric that was asked for has no scored utterance in some run;
    0 otherwise. Partial failures are warnings: a script or CI step must notice a run that scored nothing."""
    empty = [(system, metric) for system, summ in summaries.items() for metric, s in summ.items() if s["n"] == 0]
    for system, metric in empty:
        reasons = [r["errors"][metric] for r in records.get(system, []) if metric in r.get("errors", {})]
        where = f"{system}: " if system else ""
        log.error("%s%s: nothing could be scored (%d of %d utterance(s) failed%s); see %s", where, metric,
                  len(reasons), len(records.get(system, [])), f", e.g. {reasons[0]}" if reasons else "", out)
    return 1 if empty else 0


def _score_many(args: argparse.Namespace) -> int:
    from eval.runner import EvalInputError
    from eval.systems import parse_systems, score_systems

    try:
        systems = parse_systems(args.gen)
        margins = parse_margins(args.margins)
        result = score_systems(args.ref, systems, args.baseline, args.metrics, args.out, workers=args.workers,
                               cache_path=args.cache, use_cache=not args.no_cache, seed=args.seed,
                               n_boot=args.n_boot, margins=margins, **_inputs(args))
    except (EvalInputError, ValueError, FileNotFoundError) as e:
        log.error("%s", e)
        return 2
    for name, summ in result["summary"].items():
        for metric, s in summ.items():
            mean = "n/a" if s["mean"] is None else f"{s['mean']:.4f}"
            print(f"{name:16s} {metric:12s} n={s['n']:<4d} failed={s['n_failed']:<4d} mean={mean}")
    for name, per_metric in result["comparisons"].items():
        for metric, r in per_metric.items():
            if r["mean_diff"] is None:
                print(f"{name} - {args.baseline} {metric:12s} not comparable: {r['error']}")
            else:
                print(f"{name} - {args.baseline} {metric:12s} n={r['n']:<4d} diff={r['mean_diff']:+.4f} "
                      f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] {_verdict(r)}")
    print(f"tables: {args.out / 'scores.csv'}, {args.out / 'summary.csv'}, {args.out / 'comparisons.csv'}")
    return _nothing_scored(result["summary"], result["records"], args.out)


def compare_scores(a_paths: Sequence[Path] | Path, b_paths: Sequence[Path] | Path,
                   metrics: Sequence[str] | None = None, seed: int = 0, n_boot: int = 2000, min_seeds: int = 3,
                   min_n: int = 8, margins: dict[str, float] | None = None) -> dict[str, dict]:
    """a - b per metric; each path is one training seed's scores.jsonl (or its directory).

    eval.systems.compare_records: the two-level bootstrap and the project's one judging rule. A metric
    that cannot be compared (no utterance scored for every seed of both) has null statistics and ``error``.
    """
    from eval.files import read_scores
    from eval.registry import METRICS, resolve
    from eval.systems import compare_records

    a_paths = [a_paths] if isinstance(a_paths, Path) else list(a_paths)
    b_paths = [b_paths] if isinstance(b_paths, Path) else list(b_paths)
    recs = {"a": [read_scores(p) for p in a_paths], "b": [read_scores(p) for p in b_paths]}
    if metrics is None:
        have = {side: {k for run in runs for r in run for k in r if k in METRICS} for side, runs in recs.items()}
        names = [m for m in METRICS if m in have["a"] and m in have["b"]]
        if not names:
            raise ValueError(f"{a_paths[0]} and {b_paths[0]} have no metric in common")
    else:
        names = [m.name for m in resolve(list(metrics))]
    return compare_records(recs["a"], recs["b"], names, seed=seed, n_boot=n_boot, min_seeds=min_seeds,
                           min_n=min_n, margins=margins)


def _compare(args: argparse.Namespace) -> int:
    from eval.files import write_json

    metrics = None if args.metrics is None else [m.strip() for m in args.metrics.split(",") if m.strip()]
    try:
        result = compare_scores(args.a, args.b, metrics, seed=args.seed, n_boot=args.n_boot,
                                min_seeds=args.min_seeds, min_n=args.min_n, margins=parse_margins(args.margins))
    except (FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 2
    write_json(args.out, result)
    failed = [name for name, r in result.items() if "error" in r]
    for name, r in result.items():
        if name in failed:
            log.error("%s: nothing could be compared (%s)", name, r["error"])
            continue
        print(f"{name:12s} seeds={r['n_seeds_a']}/{r['n_seeds_b']} n={r['n']:<4d} dropped={r['n_dropped']:<3d} "
              f"a-b={r['mean_diff']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] {_verdict(r)}")
    return 1 if failed else 0


def _list() -> int:
    from eval.registry import METRICS

    for m in METRICS.values():
        print(json.dumps({"name": m.name, "description": m.description, **m.info()}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.command == "score":
        return _score(args)
    if args.command == "score-many":
        return _score_many(args)
    if args.command == "compare":
        return _compare(args)
    return _list()
