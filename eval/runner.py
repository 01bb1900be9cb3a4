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
import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from eval.cache import NoCache, ScoreCache, file_hash, score_key
from eval.files import write_json, write_jsonl
from eval.pair import SPEC_LENGTH_POLICY, Alignment, LengthPolicy, Pair
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
    alignment: Alignment | None = None
    text: str | None = None
    alignment_record: bool = False  # also return what the alignment found (lag, durations)


@dataclass
class UttResult:
    utt: str
    values: dict[str, float]
    errors: dict[str, str]
    seconds: float
    alignment: dict[str, float] = field(default_factory=dict)


# What --align records per utterance (cached with the scores, so a fully cached utterance keeps it).
ALIGNMENT_FIELDS = {"lag": ("lag_samples", "lag_s"),
                    "dtw": ("ref_speech_s", "gen_speech_s", "duration_ratio", "path_frames")}
_INT_FIELDS = {"lag_samples", "path_frames"}
DTW_METRICS = ("mcd", "f0_rmse", "vuv_error")


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
                 utt: str = "", length_policy: LengthPolicy = SPEC_LENGTH_POLICY,
                 alignment: Alignment | None = None, text: str | None = None
                 ) -> tuple[dict[str, float], dict[str, str]]:
    """In-memory scoring of one utterance (e.g. training-time validation); same policy as files."""
    ms = _as_metrics(metrics)
    try:
        pair = Pair(utt, ref, gen, sample_rate, ref_name=f"reference {utt}".strip(),
                    gen_name=f"generated {utt}".strip(), length_policy=length_policy, alignment=alignment,
                    text=text)
    except Exception as e:  # noqa: BLE001
        return {}, {m.name: _error_text(e) for m in ms}
    return score_pair(pair, ms)


def alignment_record(pair: Pair) -> dict[str, float]:
    """What the pair's alignment found (ALIGNMENT_FIELDS); empty when it could not be aligned (the
    metrics that needed it then carry the reason)."""
    if pair.alignment is None:
        return {}
    if pair.alignment.method == "lag":
        return {} if pair.lag is None else {"lag_samples": float(pair.lag), "lag_s": pair.lag / pair.sample_rate}
    from eval.metrics.world import dtw_record

    try:
        return dtw_record(pair)
    except Exception:  # noqa: BLE001 - the DTW metrics record the same failure with its reason
        return {}


def _score_job(job: Job) -> UttResult:
    """Worker entry point (top level, so it pickles under spawn)."""
    start = time.perf_counter()
    ms = resolve(list(job.metrics))
    try:
        pair = Pair.from_files(job.utt, job.ref_path, job.gen_path, job.length_policy, alignment=job.alignment,
                               text=job.text)
    except Exception as e:  # noqa: BLE001 - unreadable generated file: every metric fails with the reason
        err = _error_text(e)
        return UttResult(job.utt, {}, {m.name: err for m in ms}, time.perf_counter() - start)
    values, errors = score_pair(pair, ms)
    info = alignment_record(pair) if job.alignment_record else {}
    return UttResult(job.utt, values, errors, time.perf_counter() - start, info)


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


def compile_pair_by(pattern: str) -> re.Pattern[str]:
    """``--pair-by``: a regular expression with at least one group; its first group is the utterance key."""
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise EvalInputError(f"--pair-by {pattern!r}: not a valid regular expression ({e})") from e
    if rx.groups < 1:
        raise EvalInputError(f"--pair-by {pattern!r}: needs a group, e.g. '(\\d+)\\.wav$': its first group "
                             f"is the key that pairs a generated file with its reference")
    return rx


def _wav_keys(d: Path, pair_by: re.Pattern[str] | None, role: str) -> dict[str, Path]:
    """The directory's wavs by utterance key: the file stem, or the first group of ``pair_by`` searched in
    the file name. A wav the expression does not match, or two wavs with one key, are input errors:
    pairing must never silently drop or mix up a file."""
    if pair_by is None:
        return _wav_stems(d)
    keys: dict[str, Path] = {}
    for path in _wav_stems(d).values():
        m = pair_by.search(path.name)
        key = None if m is None else m.group(1)
        if not key:
            raise EvalInputError(f"--pair-by {pair_by.pattern!r}: the {role} file {path} gives no key "
                                 f"(the expression {'does not match its name' if m is None else 'matches with an empty first group'})")
        if key in keys:
            raise EvalInputError(f"--pair-by {pair_by.pattern!r}: key {key!r} matches two {role} files in {d}: "
                                 f"{keys[key].name} and {path.name}")
        keys[key] = path
    return keys


def _metrics_for_inputs(metrics: str | Sequence[str] | Sequence[Metric], ms: list[Metric],
                        texts: Mapping[str, str] | None) -> list[Metric]:
    """Without texts: ``all`` leaves the text metrics out; naming one is an input error."""
    if texts is not None:
        return ms
    if isinstance(metrics, str) and metrics.strip() == "all":
        return [m for m in ms if not m.needs_text]
    need = [m.name for m in ms if m.needs_text]
    if need:
        raise EvalInputError(f"metric(s) {', '.join(need)} need the utterances' texts: pass --text FILE "
                             f"(id|text lines, or an LJSpeech metadata.csv)")
    return ms


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
               progress: bool | None = None, length_policy: LengthPolicy = SPEC_LENGTH_POLICY,
               alignment: Alignment | None = None, pair_by: str | None = None,
               texts: Mapping[str, str] | None = None, text_source: str | None = None
               ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Score every reference utterance against ``gen_dir/<stem>.wav``; write scores.jsonl + summary.json.

    ``ref_dir=None``: every ``gen_dir`` wav is an utterance, scored with reference-free metrics only
    (see ``reference_free_only``). ``length_policy`` is how far lengths may differ and ``alignment``
    (``eval.pair.parse_alignment``) how files of another timing are aligned; both are recorded in the
    summary, and an alignment's per-utterance findings in each record's ``alignment``. ``pair_by``: a
    regular expression whose first group, searched in each file name, pairs the files instead of their
    stems (each record then names its ``files``). ``texts``: {utterance key: what it says}, for the
    text metrics (``text_source`` names where they came from, for the summary). Returns (records,
    summary). ``cache_path`` defaults to ``out_dir/cache.sqlite``.
    """
    gen_dir, out_dir = Path(gen_dir), Path(out_dir)
    ref_dir = None if ref_dir is None else Path(ref_dir)
    try:
        ms = _as_metrics(metrics) if ref_dir is not None else reference_free_only(metrics)
    except ValueError as e:
        raise EvalInputError(str(e)) from e
    ms = _metrics_for_inputs(metrics, ms, texts)
    if not ms:
        raise EvalInputError("no metric left to score")
    if ref_dir is not None and not ref_dir.is_dir():
        raise EvalInputError(f"reference directory not found: {ref_dir}")
    if not gen_dir.is_dir():
        raise EvalInputError(f"generated-audio directory not found: {gen_dir}")
    rx = None if pair_by is None else compile_pair_by(pair_by)
    gens = _wav_keys(gen_dir, rx, "generated")
    if ref_dir is None:
        if not gens:
            raise EvalInputError(f"no .wav files in the generated-audio directory {gen_dir}")
        refs: dict[str, Path | None] = {u: None for u in gens}
    else:
        refs = dict(_wav_keys(ref_dir, rx, "reference"))
        if not refs:
            raise EvalInputError(f"no .wav files in the reference directory {ref_dir}")
        extra = sorted(set(gens) - set(refs))
        if extra:
            log.warning("%d generated file(s) in %s have no reference in %s and are not scored: %s%s",
                        len(extra), gen_dir, ref_dir, ", ".join(extra[:5]), " ..." if len(extra) > 5 else "")
    if alignment is not None and ref_dir is None:
        raise EvalInputError(f"--align {alignment.method} aligns generated files to their references: it needs --ref")
    # what the alignment records per utterance: lag always; DTW durations where a DTW metric computes the path
    align_fields = () if alignment is None or (alignment.method == "dtw" and not any(
        m.name in DTW_METRICS for m in ms)) else ALIGNMENT_FIELDS[alignment.method]

    cache = NoCache() if not use_cache else ScoreCache(cache_path or out_dir / "cache.sqlite")
    values: dict[str, dict[str, float]] = {u: {} for u in refs}
    errors: dict[str, dict[str, str]] = {u: {} for u in refs}
    found: dict[str, dict[str, float]] = {u: {} for u in refs}
    keys: dict[tuple[str, str], str] = {}
    jobs: list[Job] = []
    n_cached = 0
    with cache:
        for utt, ref_path in refs.items():
            gen_path = gens.get(utt) if rx is not None else gen_dir / f"{utt}.wav"
            if gen_path is None:  # --pair-by: no generated file has this reference's key
                why = f"PairError: no generated file in {gen_dir} has the --pair-by key {utt!r} (reference {ref_path})"
                errors[utt] = {m.name: why for m in ms}
                continue
            text = None if texts is None else texts.get(utt)
            todo = list(ms)
            want_align = bool(align_fields) and gen_path.is_file()
            if gen_path.is_file():
                # a reference-free score does not depend on the reference: keyed by the generated file only;
                # a text metric's by the generated file and the text
                ref_h = "" if ref_path is None else file_hash(ref_path)
                gen_h = file_hash(gen_path)
                todo = []
                for m in ms:
                    version = m.cache_version
                    if m.needs_text:
                        slot = "" if text is None else "text:" + _text_hash(text)
                    elif m.needs_reference:
                        slot = ref_h
                        if alignment is not None:  # an aligned score is another score (absent: keys as before)
                            version += ";align=" + alignment.cache_version
                    else:
                        slot = ""
                    key = score_key(slot, gen_h, m.name, version)
                    hit = cache.get(key)
                    if hit is None:
                        keys[(utt, m.name)] = key
                        todo.append(m)
                    else:
                        values[utt][m.name] = hit
                        n_cached += 1
                if alignment is not None:
                    for f in align_fields:
                        key = score_key(ref_h, gen_h, "alignment:" + f, alignment.cache_version + ";code=" +
                                        _alignment_code())
                        keys[(utt, "alignment:" + f)] = key
                        hit = cache.get(key)
                        if hit is not None:
                            found[utt][f] = hit
                    want_align = len(found[utt]) < len(align_fields)
            if todo or want_align:
                jobs.append(Job(utt, None if ref_path is None else str(ref_path), str(gen_path),
                                tuple(m.name for m in todo), length_policy, alignment, text, want_align))
        # longest files first, so the last job to finish is a short one
        jobs.sort(key=lambda j: -(os.path.getsize(j.gen_path) if os.path.isfile(j.gen_path) else 0))
        log.info("scoring %d utterance(s) x %d metric(s): %d cached, %d job(s) on %d worker(s)",
                 len(refs), len(ms), n_cached, len(jobs), max(1, min(workers, len(jobs))))
        for res in _run_jobs(jobs, workers, progress):
            values[res.utt].update(res.values)
            errors[res.utt].update(res.errors)
            found[res.utt].update(res.alignment)
            cache.put_many([(keys[(res.utt, m)], res.utt, m, v) for m, v in res.values.items()
                            if (res.utt, m) in keys])
            cache.put_many([(keys[(res.utt, "alignment:" + f)], res.utt, "alignment:" + f, v)
                            for f, v in res.alignment.items() if (res.utt, "alignment:" + f) in keys])

    records = []
    for utt, ref_path in refs.items():
        rec: dict[str, Any] = {"utt": utt}
        if rx is not None:
            gen_path = gens.get(utt)
            rec["files"] = {"ref": None if ref_path is None else ref_path.name,
                            "gen": None if gen_path is None else gen_path.name}
        for m in ms:
            rec[m.name] = values[utt].get(m.name)
        if align_fields:
            rec["alignment"] = {f: (int(v) if f in _INT_FIELDS else v) for f, v in found[utt].items()}
        rec["errors"] = {m.name: errors[utt][m.name] for m in ms if m.name in errors[utt]}
        records.append(rec)
    summary = summarize_records(records, ms, seed=seed, n_boot=n_boot, length_policy=length_policy,
                                alignment=alignment, pair_by=pair_by, text_source=text_source)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "scores.jsonl", records)
    write_json(out_dir / "summary.json", summary)
    _warn_failures(records, ms)
    return records, summary


def _alignment_code() -> str:
    """Fingerprint of the code that aligns (eval.pair, eval.metrics.world), part of the cached alignment records."""
    from eval.registry import _code_fingerprint

    return _code_fingerprint("eval.metrics.world")


def summarize_records(records: Sequence[Mapping[str, Any]], metrics: Sequence[Metric], seed: int = 0,
                      n_boot: int = 2000, level: float = 0.95,
                      length_policy: LengthPolicy | None = None, alignment: Alignment | None = None,
                      pair_by: str | None = None, text_source: str | None = None) -> dict[str, dict[str, Any]]:
    """Per metric: the statistics, the metric's metadata, the bootstrap settings and (when given)
    the length policy the pairs were scored under (``settings.length_policy``), the alignment of the
    reference metrics (``settings.alignment``), the pairing expression (``settings.pair_by``) and where
    the text metrics' texts came from (``settings.texts``)."""
    summary: dict[str, dict[str, Any]] = {}
    for m in metrics:
        stats = summarize([r.get(m.name) for r in records], seed=seed, n_boot=n_boot, level=level)
        entry = {**stats, **m.info(),
                 "bootstrap": {**BOOTSTRAP, "seed": seed, "n_boot": n_boot, "level": level}}
        if length_policy is not None:
            entry["settings"] = {**entry["settings"], "length_policy": length_policy.info()}
        if alignment is not None and m.needs_reference:
            entry["settings"] = {**entry["settings"], "alignment": alignment.info()}
        if pair_by is not None:
            entry["settings"] = {**entry["settings"], "pair_by": pair_by}
        if text_source is not None and m.needs_text:
            entry["settings"] = {**entry["settings"], "texts": text_source}
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
