"""The default corpus: single-speaker English speech synthesised offline with eSpeak NG.

``make_corpus(out_dir)`` writes an LJSpeech-layout corpus (metadata.csv + wavs/<id>.wav, 16-bit PCM,
22050 Hz mono by default) from sentences made by :mod:`priorgrad.corpus.sentences`, with per-utterance
prosody (speaking rate, base pitch, pitch range) drawn from the seed. Same arguments, same bytes (on
the same machine): synthesis runs in a fresh worker process, in utterance order, because eSpeak's wave
generator carries state from one utterance to the next (see :mod:`priorgrad.corpus.espeak`).

With ``phoneme_events`` (the default) the synthesis also records eSpeak's phoneme events, written to
``phoneme_events.jsonl`` (one line per utterance: the events' [sample, name] in raw-synthesis samples,
the raw length and the trim offset of :func:`_finish`); the acoustic model takes its durations from
them. The wav bytes are identical with events on or off.

Re-running with the same arguments on a complete corpus does nothing (``corpus.json`` records the
arguments and the file list); a partial corpus is completed, rewriting only files whose bytes differ.
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from priorgrad.corpus import espeak
from priorgrad.corpus.ljspeech import (CorpusError, atomic_write_bytes, encode_wav, format_metadata,
                                       parse_metadata)
from priorgrad.corpus.sentences import generate_sentences, replacement_sentence, word_count

log = logging.getLogger(__name__)

CORPUS_JSON = "corpus.json"
FORMAT = "priorgrad-synth-corpus"
FORMAT_VERSION = 2          # 2: phoneme_events.jsonl (eSpeak phoneme events); wav bytes as in version 1
EVENTS_FILE = "phoneme_events.jsonl"
MAX_ATTEMPTS = 8            # sentence replacements tried before an utterance that stays too short is an error
TRIM_THRESHOLD_DB = -40.0   # samples below peak - 40 dB at either end count as silence
TRIM_MARGIN_S = 0.05        # silence kept before the first and after the last speech sample
CHUNK = 32                  # utterances per request to the worker (progress granularity)


def default_args(**overrides: Any) -> dict[str, Any]:
    """The full, JSON-able argument set of a corpus (what ``corpus.json`` records)."""
    args: dict[str, Any] = dict(
        n_utterances=300, seed=0, sample_rate=espeak.NATIVE_SAMPLE_RATE, voice="en-us",
        min_words=3, max_words=25, rate=[130, 210], pitch=[30, 70], pitch_range=[20, 80],
        volume=75, min_seconds=0.5,
    )
    unknown = set(overrides) - set(args)
    if unknown:
        raise TypeError(f"unknown corpus argument(s): {sorted(unknown)}")
    args.update(overrides)
    for key in ("rate", "pitch", "pitch_range"):
        lo, hi = (int(v) for v in args[key])
        if lo > hi:
            raise ValueError(f"{key} range [{lo}, {hi}] is empty")
        args[key] = [lo, hi]
    if int(args["n_utterances"]) < 1:
        raise ValueError(f"n_utterances must be >= 1, got {args['n_utterances']}")
    if int(args["sample_rate"]) < 8000:
        raise ValueError(f"sample_rate must be >= 8000 Hz, got {args['sample_rate']}")
    espeak.Prosody(args["rate"][0], args["pitch"][0], args["pitch_range"][0], args["volume"]).check()
    espeak.Prosody(args["rate"][1], args["pitch"][1], args["pitch_range"][1], args["volume"]).check()
    return args


def utterance_id(seed: int, index: int, n: int) -> str:
    """``SYN<seed>-<index>`` with 1-based, zero-padded index (``SYN0-0001``), LJSpeech-like."""
    return f"SYN{seed}-{index + 1:0{max(4, len(str(n)))}d}"


_OUR_WAV = re.compile(r"^SYN\d+-\d+\.wav$")


def prosody_for(args: dict[str, Any], index: int) -> espeak.Prosody:
    """Per-utterance prosody, drawn from its own seed so that it does not depend on the corpus size."""
    rng = np.random.default_rng(np.random.SeedSequence([int(args["seed"]), 0x9A0D, index]))
    draw = lambda lo_hi: int(rng.integers(lo_hi[0], lo_hi[1] + 1))  # noqa: E731
    return espeak.Prosody(rate=draw(args["rate"]), pitch=draw(args["pitch"]),
                          pitch_range=draw(args["pitch_range"]), volume=int(args["volume"]))


def trim_bounds(wav: np.ndarray, sample_rate: int, threshold_db: float = TRIM_THRESHOLD_DB,
                margin_s: float = TRIM_MARGIN_S) -> tuple[int, int]:
    """[start, end) of the speech plus ``margin_s`` on each side; (0, 0) for an all-zero clip."""
    mag = np.abs(wav.astype(np.float32))
    peak = float(mag.max()) if mag.size else 0.0
    if peak == 0.0:
        return 0, 0
    loud = np.flatnonzero(mag > peak * 10.0 ** (threshold_db / 20.0))
    margin = int(round(margin_s * sample_rate))
    return max(0, int(loud[0]) - margin), min(len(wav), int(loud[-1]) + 1 + margin)


def trim_silence(wav: np.ndarray, sample_rate: int, threshold_db: float = TRIM_THRESHOLD_DB,
                 margin_s: float = TRIM_MARGIN_S) -> np.ndarray:
    """Cut leading/trailing silence, keeping ``margin_s`` around the speech."""
    start, end = trim_bounds(wav, sample_rate, threshold_db, margin_s)
    return wav[start:end]


def to_int16(wav: np.ndarray) -> np.ndarray:
    return np.clip(np.round(wav * 32768.0), -32768, 32767).astype(np.int16)


# ----------------------------------------------------------------------------- worker process
def _worker_version() -> str:
    return espeak.version()


def _worker_init(phoneme_events: bool) -> None:
    espeak.engine(phoneme_events=phoneme_events)


def _worker_synth(jobs: list[tuple[str, dict[str, int], str]]
                  ) -> list[tuple[np.ndarray, list[tuple[int, str]] | None]]:
    """Runs in the worker process: (int16 audio, phoneme events or None) per (text, prosody, voice)."""
    if espeak.engine().phoneme_events:
        return [espeak.synthesize_with_events(text, espeak.Prosody(**p), voice) for text, p, voice in jobs]
    return [(espeak.synthesize_int16(text, espeak.Prosody(**p), voice), None) for text, p, voice in jobs]


class _Synthesiser:
    """A fresh single-process worker, so the library state at the first utterance is always the same."""

    def __init__(self, phoneme_events: bool = True) -> None:
        # spawn (not fork): a forked child would inherit eSpeak state from this process
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_worker_init, initargs=(bool(phoneme_events),))

    def _run(self, fn, *args):
        try:
            return self._pool.submit(fn, *args).result()
        except BrokenProcessPool as e:  # the library crashed the worker (it cannot raise a Python error)
            raise espeak.EspeakError(f"the eSpeak NG worker process died ({e})") from e

    def __call__(self, jobs: list[tuple[str, espeak.Prosody, str]]
                 ) -> list[tuple[np.ndarray, list[tuple[int, str]] | None]]:
        return self._run(_worker_synth, [(text, asdict(p), voice) for text, p, voice in jobs])

    def version(self) -> str:
        return self._run(_worker_version)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


# ----------------------------------------------------------------------------- corpus
def _load_summary(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / CORPUS_JSON
    if not path.exists():
        return None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CorpusError(f"{path}: unreadable corpus summary ({e}); delete it to rebuild the corpus") from e
    if not isinstance(summary, dict) or summary.get("format") != FORMAT:
        raise CorpusError(f"{path}: not a {FORMAT} summary; refusing to overwrite this directory")
    return summary


def is_complete(out_dir: Path, args: dict[str, Any], phoneme_events: bool = True) -> bool:
    """True when ``out_dir`` holds the corpus of exactly these arguments (summary, metadata, every wav,
    and the phoneme events when asked for)."""
    summary = _load_summary(out_dir)
    if summary is None or summary.get("args") != args or summary.get("format_version") != FORMAT_VERSION:
        return False
    if bool(summary.get("phoneme_events")) != bool(phoneme_events):
        return False
    if phoneme_events and not (out_dir / EVENTS_FILE).is_file():
        return False
    ids = [u["id"] for u in summary.get("utterances", [])]
    if len(ids) != args["n_utterances"] or not (out_dir / "metadata.csv").is_file():
        return False
    return all((out_dir / "wavs" / f"{i}.wav").is_file() for i in ids)


def _check_target_dir(out_dir: Path) -> None:
    """Refuse to write into a directory holding something other than a corpus made here."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise CorpusError(f"{out_dir}: exists and is not a directory")
    if _load_summary(out_dir) is not None or (out_dir / ".synth-partial").exists():
        return
    meta = out_dir / "metadata.csv"
    if meta.exists():
        utts, problems = parse_metadata(out_dir)
        foreign = [u.utt_id for u in utts if not _OUR_WAV.match(u.utt_id + ".wav")]
        if foreign or problems:
            what = f"utterances not made by the synthesiser (e.g. {foreign[0]})" if foreign else "malformed lines"
            raise CorpusError(f"{meta}: holds {what}; refusing to overwrite; choose an empty output directory")


def make_corpus(out_dir: str | os.PathLike, n_utterances: int = 300, seed: int = 0,
                sample_rate: int = espeak.NATIVE_SAMPLE_RATE, *, progress: bool | None = None,
                phoneme_events: bool = True, **options: Any) -> dict[str, Any]:
    """Synthesise the corpus into ``out_dir`` (LJSpeech layout) and return its summary.

    ``options`` override the other entries of :func:`default_args` (voice, min_words, max_words,
    rate, pitch, pitch_range as [lo, hi], volume, min_seconds). The summary is also written to
    ``out_dir/corpus.json`` (deterministic: no timestamps); the returned dict adds ``up_to_date``
    (nothing had to be done), ``written`` (files rewritten) and ``wall_seconds``. ``phoneme_events``
    records eSpeak's phoneme events into ``phoneme_events.jsonl`` (the audio is the same either way).
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    args = default_args(n_utterances=int(n_utterances), seed=int(seed), sample_rate=int(sample_rate), **options)
    if is_complete(out_dir, args, phoneme_events):
        summary = _load_summary(out_dir)
        log.info("%s: corpus is up to date (%d utterances), nothing to do", out_dir, args["n_utterances"])
        return {**summary, "up_to_date": True, "written": 0, "wall_seconds": time.perf_counter() - t0}
    _check_target_dir(out_dir)
    (out_dir / "wavs").mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_dir / ".synth-partial", json.dumps(args, sort_keys=True).encode())
    old = out_dir / CORPUS_JSON
    if old.exists():  # the old summary no longer describes the directory's content
        old.unlink()
    (out_dir / EVENTS_FILE).unlink(missing_ok=True)  # rewritten below, with the summary

    n, sr = args["n_utterances"], args["sample_rate"]
    min_words = args["min_words"]
    sentences = generate_sentences(n, args["seed"], min_words, args["max_words"])
    prosodies = [prosody_for(args, i) for i in range(n)]
    ids = [utterance_id(args["seed"], i, n) for i in range(n)]

    from tqdm import tqdm

    records: list[dict[str, Any]] = []
    rows: list[tuple[str, str]] = []
    event_lines: list[str] = []
    written = 0
    worker = _Synthesiser(phoneme_events)
    try:
        espeak_ng = worker.version()
        with tqdm(total=n, desc="synthesising corpus", unit="utt", disable=None if progress is None else not progress) as bar:
            for start in range(0, n, CHUNK):
                idx = list(range(start, min(n, start + CHUNK)))
                audio = worker([(sentences[i], prosodies[i], args["voice"]) for i in idx])
                for i, (raw, events) in zip(idx, audio):
                    text, attempts = sentences[i], 0
                    wav, offset = _finish(raw, sr)
                    # Skip nothing silently: a clip too short for training is re-made with another sentence.
                    while len(wav) < args["min_seconds"] * sr:
                        attempts += 1
                        if attempts > MAX_ATTEMPTS:
                            raise CorpusError(f"utterance {ids[i]}: audio stays shorter than "
                                              f"{args['min_seconds']} s after {MAX_ATTEMPTS} replacement sentences")
                        text = replacement_sentence(args["seed"], i, attempts, max(min_words, 6))
                        log.info("utterance %s: %.2f s is too short, using another sentence", ids[i], len(wav) / sr)
                        raw, events = worker([(text, prosodies[i], args["voice"])])[0]
                        wav, offset = _finish(raw, sr)
                    data = encode_wav(wav, sr)
                    path = out_dir / "wavs" / f"{ids[i]}.wav"
                    if not (path.is_file() and path.read_bytes() == data):
                        atomic_write_bytes(path, data)
                        written += 1
                    rows.append((ids[i], text))
                    if events is not None:
                        event_lines.append(json.dumps(
                            {"id": ids[i], "native_rate": espeak.NATIVE_SAMPLE_RATE, "raw_samples": int(len(raw)),
                             "offset": int(offset), "events": [[int(s), name] for s, name in events]}) + "\n")
                    records.append({"id": ids[i], "words": word_count(text), "seconds": round(len(wav) / sr, 4),
                                    "replaced": attempts, **asdict(prosodies[i])})
                    bar.update(1)
    finally:
        worker.close()

    planned = set(ids)
    stale = [p for p in (out_dir / "wavs").glob("*.wav") if _OUR_WAV.match(p.name) and p.stem not in planned]
    for p in stale:  # left by an earlier run with other arguments; they would be wavs without transcript
        p.unlink()
    if stale:
        log.info("%s: removed %d wav files of an earlier corpus", out_dir, len(stale))
    atomic_write_bytes(out_dir / "metadata.csv", format_metadata(rows).encode("utf-8"))
    if phoneme_events:
        atomic_write_bytes(out_dir / EVENTS_FILE, "".join(event_lines).encode("utf-8"))

    seconds = np.array([r["seconds"] for r in records])
    summary = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "args": args,
        "espeak_ng": espeak_ng, "n_utterances": n, "phoneme_events": bool(phoneme_events),
        "total_seconds": round(float(seconds.sum()), 3), "min_seconds": float(seconds.min()),
        "max_seconds": float(seconds.max()), "mean_words": round(float(np.mean([r["words"] for r in records])), 3),
        "replaced_sentences": int(sum(r["replaced"] > 0 for r in records)),
        "utterances": records,
    }
    atomic_write_bytes(out_dir / CORPUS_JSON, (json.dumps(summary, indent=1, sort_keys=True) + "\n").encode())
    (out_dir / ".synth-partial").unlink(missing_ok=True)
    log.info("%s: %d utterances, %.1f min of audio (%d files written, %d stale removed)", out_dir, n,
             summary["total_seconds"] / 60, written, len(stale))
    return {**summary, "up_to_date": False, "written": written, "wall_seconds": time.perf_counter() - t0}


def _finish(raw: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    """Trim eSpeak's silences and bring the clip to the corpus rate: (int16 clip, trim offset in raw
    native-rate samples; the clip's first sample is raw sample ``offset``)."""
    start, end = trim_bounds(raw, espeak.NATIVE_SAMPLE_RATE)
    wav = raw[start:end]
    if sample_rate != espeak.NATIVE_SAMPLE_RATE and len(wav):
        from priorgrad.core.audio import resample

        wav = to_int16(resample(wav.astype(np.float32) / 32768.0, espeak.NATIVE_SAMPLE_RATE, sample_rate))
    return wav, start


# ----------------------------------------------------------------------------- CLI
def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="priorgrad corpus make",
                                          description="Synthesise the default eSpeak NG corpus (LJSpeech layout).")
    d = default_args()
    p.add_argument("--out", required=True, type=Path, help="output directory (metadata.csv, wavs/, corpus.json)")
    p.add_argument("--n", "--n-utterances", dest="n_utterances", type=int, default=d["n_utterances"],
                   help="number of utterances (default %(default)s)")
    p.add_argument("--seed", type=int, default=d["seed"], help="seed of sentences and prosody (default %(default)s)")
    p.add_argument("--sample-rate", type=int, default=d["sample_rate"], help="Hz (default %(default)s)")
    p.add_argument("--min-words", type=int, default=d["min_words"])
    p.add_argument("--max-words", type=int, default=d["max_words"])
    p.add_argument("--rate", type=int, nargs=2, default=d["rate"], metavar=("LO", "HI"), help="words per minute")
    p.add_argument("--pitch", type=int, nargs=2, default=d["pitch"], metavar=("LO", "HI"), help="eSpeak 0..100")
    p.add_argument("--pitch-range", type=int, nargs=2, default=d["pitch_range"], metavar=("LO", "HI"),
                   help="eSpeak 0..100")
    p.add_argument("--volume", type=int, default=d["volume"], help="eSpeak amplitude 0..200")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main_make(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = make_corpus(args.out, args.n_utterances, args.seed, args.sample_rate,
                              progress=False if args.no_progress else None, min_words=args.min_words,
                              max_words=args.max_words, rate=args.rate, pitch=args.pitch,
                              pitch_range=args.pitch_range, volume=args.volume)
    except (CorpusError, ValueError, espeak.EspeakError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    state = "up to date" if summary["up_to_date"] else f"{summary['written']} files written"
    print(f"{args.out}: {summary['n_utterances']} utterances, {summary['total_seconds'] / 60:.1f} min "
          f"of audio ({state})")
    return 0


if __name__ == "__main__":
    sys.exit(main_make())
