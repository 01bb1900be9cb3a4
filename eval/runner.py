"""Batch scoring: pair reference and generated wavs by stem, score in worker processes, cache, summarise.

One job per utterance computes all its requested metrics, so analysis is shared (resampling once per
rate, one WORLD analysis for MCD, F0 and V/UV, one DNSMOS inference for its four outputs). The cache
is read and written only in the main process. A failure is recorded per utterance and metric as
None plus its error string; it never stops the other utterances.
"""
from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from eval.cache import NoCache, ScoreCache, file_hash, score_key
from eval.files import write_json, write_jsonl
from eval.pair import SPEC_LENGTH_POLICY, LengthPolicy, Pair
from eval.registry import Metric, resolve
from eval.stats import BOOTSTRAP, summarize

log = logging.getLogger(__name__)


class EvalInputError(ValueError):
    """The run cannot start (missing directory, no reference files, unknown metric)."""


@dataclass(frozen=True)
class Job:
    utt: str
    ref_path: str | None  # None: no reference (reference-free metrics only)
    gen_path: str
    metrics: tuple[str, ...]
    length_policy: LengthPolicy = SPEC_LENGTH_POLICY


@dataclass
class UttResult:
    utt: str
    values: dict[str, float]
    errors: dict[str, str]
    seconds: float


def _error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


# ----------------------------------------------------------------------------- one utterance
def score_pair(pair: Pair, metrics: Sequence[Metric]) -> tuple[dict[str, float], dict[str, str]]:
    """Compute each metric on one pair; returns (values, errors), a metric is in exactly one of them."""
    values: dict[str, float] = {}
    errors: dict[str, str] = {}
    for m in metrics:
        try:
            v = float(m.function()(pair))
            if not np.isfinite(v):
                raise ValueError(f"{m.name} is {v} (not a finite number)")
            values[m.name] = v
        except Exception as e:  # noqa: BLE001 - any metric failure becomes a recorded error
            errors[m.name] = _error_text(e)
    return values, errors


def score_arrays(ref: np.ndarray | None, gen: np.ndarray, sample_rate: int,
                 metrics: str | Sequence[str] | Sequence[Metric],
                 utt: str = "", length_policy: LengthPolicy = SPEC_LENGTH_POLICY
                 ) -> tuple[dict[str, float], dict[str, str]]:
    """In-memory scoring of one utterance (e.g. training-time validation); same policy as files."""
    ms = _as_metrics(metrics)
    try:
        pair = Pair(utt, ref, gen, sample_rate, ref_name=f"reference {utt}".strip(),
                    gen_name=f"generated {utt}".strip(), length_policy=length_policy)
    except Exception as e:  # noqa: BLE001
        return {}, {m.name: _error_text(e) for m in ms}
    return score_pair(pair, ms)


def _score_job(job: Job) -> UttResult:
    """Worker entry point (top level, so it pickles under spawn)."""
    start = time.perf_counter()
    ms = resolve(list(job.metrics))
    try:
        pair = Pair.from_files(job.utt, job.ref_path, job.gen_path, job.length_policy)
    except Exception as e:  # noqa: BLE001 - unreadable generated file: every metric fails with the reason
        err = _error_text(e)
        return UttResult(job.utt, {}, {m.name: err for m in ms}, time.perf_counter() - start)
    values, errors = score_pair(pair, ms)
    return UttResult(job.utt, values, errors, time.perf_counter() - start)


def _init_worker() -> None:
    """One compute thread per worker process: N workers should use N cores, not N x cores."""
    import sys

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"  # for libraries loaded later in this process (torch reads it at import)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # for those already loaded (numpy's BLAS)
    except ImportError:  # pragma: no cover - threadpoolctl comes with librosa's scikit-learn
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    from eval.metrics import dnsmos

    dnsmos.set_threads(1)


def _as_metrics(metrics: str | Sequence[str] | Sequence[Metric]) -> list[Metric]:
    if isinstance(metrics, str):
        return resolve(metrics)
    items = list(metrics)
    if items and all(isinstance(m, Metric) for m in items):
        return items  # type: ignore[return-value]
    return resolve([str(m) for m in items])


# ----------------------------------------------------------------------------- directories
def _wav_stems(d: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(d.iterdir()) if p.is_file() and p.suffix.lower() == ".wav"}


def _run_jobs(jobs: list[Job], workers: int, progress: bool | None) -> Iterable[UttResult]:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="eval", unit="utt", disable=(None if progress is None else not progress))
    try:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                yield _score_job(job)
                bar.update(1)
            return
        ctx = multiprocessing.get_context("spawn")  # fork after torch/onnxruntime threads start can hang
        with cf.ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx,
                                    initializer=_init_worker) as pool:
            futures = {pool.submit(_score_job, job): job for job in jobs}
            try:
                for fut in cf.as_completed(futures):
                    job = futures[fut]
                    try:
                        result = fut.result()
                    except Exception as e:  # noqa: BLE001 - e.g. a worker killed by the OS
                        err = f"worker failed: {_error_text(e)}"
                        result = UttResult(job.utt, {}, {m: err for m in job.metrics}, 0.0)
                    yield result
                    bar.update(1)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    finally:
        bar.close()


def reference_free_only(metrics: str | Sequence[str] | Sequence[Metric]) -> list[Metric]:
    """The metrics to score when there is no reference directory.

    ``"all"`` means every reference-free metric; naming a metric that needs a reference is an error
    (scoring it would only fill the table with failures).
    """
    ms = _as_metrics(metrics)
    if isinstance(metrics, str) and metrics.strip() == "all":
        return [m for m in ms if not m.needs_reference]
    need = [m.name for m in ms if m.needs_reference]
    if need:
        free = ", ".join(m.name for m in _as_metrics("all") if not m.needs_reference)
        raise EvalInputError(f"metric(s) {', '.join(need)} need a reference directory (--ref); "
                             f"without one only the reference-free metrics can be scored ({free})")
    return ms


def score_dirs(ref_dir: str | os.PathLike | None, gen_dir: str | os.PathLike,
               metrics: str | Sequence[str] | Sequence[Metric], out_dir: str | os.PathLike,
               workers: int = 1, *, cache_path: str | os.PathLike | None = None, use_cache: bool = True,
               seed: int = BOOTSTRAP["seed"], n_boot: int = BOOTSTRAP["n_boot"],
               progress: bool | None = None, length_policy: LengthPolicy = SPEC_LENGTH_POLICY
               ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Score every reference utterance against ``gen_dir/<stem>.wav``; write scores.jsonl + summary.json.

    ``ref_dir=None``: every ``gen_dir`` wav is an utterance, scored with reference-free metrics only
    (see ``reference_free_only``). ``length_policy`` is how far lengths may differ (recorded in the
    summary). Returns (records, summary). ``cache_path`` defaults to ``out_dir/cache.sqlite``.
    """
    gen_dir, out_dir = Path(gen_dir), Path(out_dir)
    ref_dir = None if ref_dir is None else Path(ref_dir)
    try:
        ms = _as_metrics(metrics) if ref_dir is not None else reference_free_only(metrics)
    except ValueError as e:
        raise EvalInputError(str(e)) from e
    if not ms:
        raise EvalInputError("no metric left to score")
    if ref_dir is not None and not ref_dir.is_dir():
        raise EvalInputError(f"reference directory not found: {ref_dir}")
    if not gen_dir.is_dir():
        raise EvalInputError(f"generated-audio directory not found: {gen_dir}")
    gens = _wav_stems(gen_dir)
    if ref_dir is None:
        if not gens:
            raise EvalInputError(f"no .wav files in the generated-audio directory {gen_dir}")
        refs: dict[str, Path | None] = {u: None for u in gens}
    else:
        refs = dict(_wav_stems(ref_dir))
        if not refs:
            raise EvalInputError(f"no .wav files in the reference directory {ref_dir}")
        extra = sorted(set(gens) - set(refs))
        if extra:
            log.warning("%d generated file(s) in %s have no reference in %s and are not scored: %s%s",
                        len(extra), gen_dir, ref_dir, ", ".join(extra[:5]), " ..." if len(extra) > 5 else "")

    cache = NoCache() if not use_cache else ScoreCache(cache_path or out_dir / "cache.sqlite")
    values: dict[str, dict[str, float]] = {u: {} for u in refs}
    errors: dict[str, dict[str, str]] = {u: {} for u in refs}
    keys: dict[tuple[str, str], str] = {}
    jobs: list[Job] = []
    n_cached = 0
    with cache:
        for utt, ref_path in refs.items():
            gen_path = gen_dir / f"{utt}.wav"
            todo = list(ms)
            if gen_path.is_file():
                # a reference-free score does not depend on the reference: keyed by the generated file only
                ref_h = "" if ref_path is None else file_hash(ref_path)
                gen_h = file_hash(gen_path)
                todo = []
                for m in ms:
                    key = score_key(ref_h if m.needs_reference else "", gen_h, m.name, m.cache_version)
                    hit = cache.get(key)
                    if hit is None:
                        keys[(utt, m.name)] = key
                        todo.append(m)
                    else:
                        values[utt][m.name] = hit
                        n_cached += 1
            if todo:
                jobs.append(Job(utt, None if ref_path is None else str(ref_path), str(gen_path),
                                tuple(m.name for m in todo), length_policy))
        # longest files first, so the last job to finish is a short one
        jobs.sort(key=lambda j: -(os.path.getsize(j.gen_path) if os.path.isfile(j.gen_path) else 0))
        log.info("scoring %d utterance(s) x %d metric(s): %d cached, %d job(s) on %d worker(s)",
                 len(refs), len(ms), n_cached, len(jobs), max(1, min(workers, len(jobs))))
        for res in _run_jobs(jobs, workers, progress):
            values[res.utt].update(res.values)
            errors[res.utt].update(res.errors)
            cache.put_many([(keys[(res.utt, m)], res.utt, m, v) for m, v in res.values.items()
                            if (res.utt, m) in keys])

    records = []
    for utt in refs:
        rec: dict[str, Any] = {"utt": utt}
        for m in ms:
            rec[m.name] = values[utt].get(m.name)
        rec["errors"] = {m.name: errors[utt][m.name] for m in ms if m.name in errors[utt]}
        records.append(rec)
    summary = summarize_records(records, ms, seed=seed, n_boot=n_boot, length_policy=length_policy)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "scores.jsonl", records)
    write_json(out_dir / "summary.json", summary)
    _warn_failures(records, ms)
    return records, summary


def summarize_records(records: Sequence[Mapping[str, Any]], metrics: Sequence[Metric], seed: int = 0,
                      n_boot: int = 2000, level: float = 0.95,
                      length_policy: LengthPolicy | None = None) -> dict[str, dict[str, Any]]:
    """Per metric: the statistics, the metric's metadata, the bootstrap settings and (when given)
    the length policy the pairs were scored under (``settings.length_policy``)."""
    summary: dict[str, dict[str, Any]] = {}
    for m in metrics:
        stats = summarize([r.get(m.name) for r in records], seed=seed, n_boot=n_boot, level=level)
        entry = {**stats, **m.info(),
                 "bootstrap": {**BOOTSTRAP, "seed": seed, "n_boot": n_boot, "level": level}}
        if length_policy is not None:
            entry["settings"] = {**entry["settings"], "length_policy": length_policy.info()}
        summary[m.name] = entry
    return summary


def _warn_failures(records: Sequence[Mapping[str, Any]], metrics: Sequence[Metric]) -> None:
    for m in metrics:
        failed = [r for r in records if r.get(m.name) is None]
        if failed:
            first = failed[0]
            log.warning("%s: %d of %d utterance(s) failed (first: %s: %s)", m.name, len(failed), len(records),
                        first["utt"], first["errors"].get(m.name, "no error recorded"))


def n_failed_utterances(records: Sequence[Mapping[str, Any]]) -> int:
    return sum(1 for r in records if r.get("errors"))
