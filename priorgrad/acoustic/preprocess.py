"""Corpus + vocoder features -> the acoustic features directory (docs/acoustic-data.md).

`priorgrad acoustic preprocess --corpus DIR --features VOCODER_FEATS --out DIR`: the mel, the split and
the audio come from the vocoder's features directory (so the mels are identical to the vocoder's and
the acoustic test set is the vocoder's test set); transcripts and eSpeak phoneme events come from the
corpus (LJSpeech layout). Durations: eSpeak events when the corpus has them (``durations: auto`` or
``espeak``), else the two-stage MAS aligner (trained on the train split, exported for every split).

Passes: (1) per utterance, tokens + raw f0 (+ event durations) -> ``raw/<utt>.npz``; the vocabulary;
MAS durations when needed (``mas_durations.npz``); f0 statistics over voiced train frames; (2) per
utterance the final ``utts/<utt>.npz``. Every file is written atomically and a re-run skips finished
files; a change of settings, vocabulary or f0 statistics invalidates what depends on it (``stamp.json``).
All bad utterances are reported together in one error (each message names the file or utterance).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from priorgrad.acoustic import events as ev
from priorgrad.acoustic import features as ft
from priorgrad.acoustic.data_config import AcousticDataConfig
from priorgrad.acoustic.mas import AlignItem, AlignmentError, export_durations, train_aligner
from priorgrad.acoustic.text import WORD, TextError, Vocabulary, text_to_tokens
from priorgrad.core.fileio import save_npz_atomic, write_json_atomic, write_text_atomic
from priorgrad.core.logs import show_progress

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
VOCAB = "vocab.json"
F0_STATS = "f0_stats.json"
STAMP = "stamp.json"
SUMMARY = "acoustic_preprocess.json"
MAS_CACHE = "mas_durations.npz"
ARRAYS = ("tokens", "durations", "mel2ph", "mel", "f0", "uv", "energy")


class AcousticDataError(ValueError):
    """A corpus or features problem; the message names the file(s) or utterance(s)."""


def _load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of an npz, or None when missing or unreadable (then it is recomputed)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError):
        return None


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resolve_durations(choice: str, corpus_dir: Path) -> str:
    """espeak | mas for this corpus; asking for espeak on a corpus without events names the file."""
    if choice == "auto":
        return "espeak" if ev.has_events(corpus_dir) else "mas"
    if choice == "espeak" and not ev.has_events(corpus_dir):
        ev.load_events(corpus_dir)  # raises DurationError naming phoneme_events.jsonl
    return choice


def _invalidate(out_dir: Path, key: str, stamp: dict[str, Any], dirs: Iterable[str], files: Iterable[str]) -> None:
    """Remove the outputs that depend on ``stamp[key]`` when it changed since the last run."""
    path = out_dir / STAMP
    old = json.loads(path.read_text()) if path.is_file() else {}
    if old.get(key) != stamp[key]:
        for d in dirs:
            shutil.rmtree(out_dir / d, ignore_errors=True)
        for f in files:
            (out_dir / f).unlink(missing_ok=True)
        if old.get(key) is not None:
            log.info("%s: %s changed since the last run: recomputing what depends on it", out_dir, key)
    merged = {**old, key: stamp[key]}
    write_json_atomic(path, merged)


def preprocess_acoustic(corpus_dir: str | Path, features_dir: str | Path, out_dir: str | Path, params: Any,
                        cfg: AcousticDataConfig, progress: bool | None = None) -> dict[str, Any]:
    """Write the acoustic features directory; returns the summary (also in acoustic_preprocess.json)."""
    from tqdm import tqdm

    from priorgrad.core.audio import get_preset
    from priorgrad.corpus import espeak
    from priorgrad.corpus.ljspeech import read_metadata
    from priorgrad.core.features import read_manifest

    corpus_dir, features_dir, out_dir = Path(corpus_dir), Path(features_dir), Path(out_dir)
    show = show_progress(progress)
    preset = get_preset(params.audio.preset)
    if preset.name != "hifigan":
        raise AcousticDataError(f"audio.preset: the acoustic model needs the hifigan ln-mel, got {preset.name!r}")
    texts = {u.utt_id: u.text for u in read_metadata(corpus_dir)}
    vitems = sorted(read_manifest(features_dir), key=lambda it: it.utt)
    missing = [it.utt for it in vitems if it.utt not in texts]
    if missing:
        raise AcousticDataError(f"{corpus_dir / 'metadata.csv'}: {len(missing)} utterance(s) of {features_dir} "
                                f"are not in the corpus, e.g. {missing[:3]}")
    source = resolve_durations(cfg.features.durations, corpus_dir)
    events = ev.load_events(corpus_dir) if source == "espeak" else {}
    settings = {"durations": source, "voice": cfg.text.voice, "f0_floor": cfg.features.f0_floor,
                "f0_ceil": cfg.features.f0_ceil, "preset": preset.name, "espeak_ng": espeak.version(),
                "mas": dataclasses.asdict(cfg.features.mas) if source == "mas" else None}
    out_dir.mkdir(parents=True, exist_ok=True)
    _invalidate(out_dir, "settings", {"settings": settings}, ["raw", "utts"],
                [VOCAB, F0_STATS, MAS_CACHE, MANIFEST, SUMMARY])

    # ---- pass 1: tokens, raw f0, event durations
    errors: list[str] = []
    dropped: dict[str, str] = {}
    raw: dict[str, dict[str, Any]] = {}
    n_computed = 0
    for it in tqdm(vitems, desc="acoustic preprocess (tokens, f0)", unit="utt", disable=not show):
        text = texts[it.utt]
        path = out_dir / "raw" / f"{it.utt}.npz"
        cached = _load_npz(path)
        if cached is not None and str(cached["text"]) == text and int(cached["n_frames"]) == it.frames:
            rec = cached
        else:
            try:
                if not it.mel_path.is_file() or not it.audio_path.is_file():
                    raise AcousticDataError(f"{it.mel_path}: vocoder feature file missing for utterance {it.utt}")
                toks = text_to_tokens(text, it.utt, cfg.text.voice)
                f0 = ft.f0_hz(np.load(it.audio_path), it.frames, preset.sample_rate, preset.hop_length, it.utt,
                              cfg.features.f0_floor, cfg.features.f0_ceil)
                rec = {"text": np.array(text), "n_frames": np.array(it.frames), "tokens": np.array(toks),
                       "f0_hz": f0}
                if source == "espeak":
                    if it.utt not in events:
                        raise ev.DurationError(f"{corpus_dir / ev.EVENTS_FILE}: no events for utterance {it.utt}")
                    rec["durations"] = ev.durations_from_events(toks, events[it.utt], it.frames, preset.hop_length,
                                                                preset.sample_rate)
                else:
                    from priorgrad.acoustic.mas import check_alignable

                    check_alignable(sum(t != WORD for t in toks), it.frames, it.utt)
            except (TextError, ev.DurationError, AlignmentError, ft.FeatureError, AcousticDataError) as e:
                errors.append(f"{corpus_dir / 'wavs' / (it.utt + '.wav')}: {e}")
                continue
            save_npz_atomic(path, **rec)
            n_computed += 1
        if not (np.asarray(rec["f0_hz"]) > 0).any():
            dropped[it.utt] = "no voiced frame (pyworld f0 is 0 everywhere)"
            log.warning("utterance %s dropped: %s", it.utt, dropped[it.utt])
            continue
        raw[it.utt] = {"item": it, "tokens": [str(t) for t in rec["tokens"]], "f0_hz": np.asarray(rec["f0_hz"]),
                       "durations": np.asarray(rec["durations"]) if "durations" in rec else None}
    if errors:
        raise AcousticDataError(f"{len(errors)} of {len(vitems)} utterance(s) of {corpus_dir} could not be used:\n  "
                                + "\n  ".join(errors))
    if not any(r["item"].split == "train" for r in raw.values()):
        raise AcousticDataError(f"{features_dir}: no usable training utterance")

    vocab = Vocabulary.build(r["tokens"] for r in raw.values())
    vocab.save(out_dir / VOCAB)

    # ---- MAS durations (a global step: the aligner learns from the whole train split)
    if source == "mas":
        mas_key = _digest({"settings": settings, "vocab": vocab.tokens, "utts": sorted(raw)})
        cache = _load_npz(out_dir / MAS_CACHE)
        if cache is not None and str(cache.get("__key__")) == mas_key:
            mas_durs = {k: v for k, v in cache.items() if k != "__key__"}
        else:
            items = {u: AlignItem(u, np.asarray(vocab.encode(r["tokens"], u)),
                                  np.array([t != WORD for t in r["tokens"]]), np.load(r["item"].mel_path))
                     for u, r in raw.items()}
            m = cfg.features.mas
            model = train_aligner([items[u] for u in sorted(items) if raw[u]["item"].split == "train"], len(vocab),
                                  m.steps, m.batch_size, m.hidden, m.layers, m.kernel, m.learning_rate, m.seed,
                                  m.threads, progress=show)
            mas_durs = export_durations(model, [items[u] for u in sorted(items)], m.batch_size)
            save_npz_atomic(out_dir / MAS_CACHE, __key__=np.array(mas_key), **mas_durs)
        for u, r in raw.items():
            r["durations"] = mas_durs[u]

    # ---- f0 statistics over voiced train frames
    voiced = np.concatenate([r["f0_hz"][r["f0_hz"] > 0] for r in raw.values() if r["item"].split == "train"])
    f0_stats = {"mean": float(voiced.mean()), "std": float(voiced.std()), "n_frames": int(voiced.size)}
    if not f0_stats["std"] > 0:
        raise AcousticDataError(f"{features_dir}: voiced training f0 has no spread (std 0); cannot z-score f0")
    write_json_atomic(out_dir / F0_STATS, f0_stats)
    _invalidate(out_dir, "final", {"final": _digest({"vocab": vocab.tokens, "f0": f0_stats,
                                                     "durations": {u: r["durations"].tolist() for u, r in raw.items()}})},
                ["utts"], [])

    # ---- pass 2: the final per-utterance arrays
    records, n_final = [], 0
    for u in tqdm(sorted(raw), desc="acoustic preprocess (features)", unit="utt", disable=not show):
        r, it = raw[u], raw[u]["item"]
        path = out_dir / "utts" / f"{u}.npz"
        if _load_npz(path) is None:
            dur = np.asarray(r["durations"], dtype=np.int64)
            mel = np.asarray(np.load(it.mel_path), dtype=np.float32)
            f0, uv = ft.normalise_f0(r["f0_hz"], f0_stats["mean"], f0_stats["std"])
            save_npz_atomic(path, tokens=np.asarray(vocab.encode(r["tokens"], u), dtype=np.int64), durations=dur,
                            mel2ph=ft.mel2ph_from_durations(dur), mel=mel, f0=f0, uv=uv, energy=ft.energy(mel))
            n_final += 1
        records.append({"utt": u, "split": it.split, "n_frames": int(it.frames), "n_tokens": len(r["tokens"]),
                        "text": texts[u], "durations_from": source})
    stale = [p for p in (out_dir / "utts").glob("*.npz") if p.stem not in raw]
    for p in stale:
        p.unlink()
    write_text_atomic(out_dir / MANIFEST, "".join(json.dumps(rec, sort_keys=True) + "\n" for rec in records))
    summary = {"settings": settings, "n_utterances": len(records), "n_computed_pass1": n_computed,
               "n_written": n_final, "dropped": dropped, "vocab_size": len(vocab), "f0_stats": f0_stats,
               "splits": {s: sum(rec["split"] == s for rec in records) for s in ("train", "valid", "test")},
               "tokens_per_utterance": {"mean": float(np.mean([rec["n_tokens"] for rec in records])),
                                        "max": int(max(rec["n_tokens"] for rec in records))}}
    write_json_atomic(out_dir / SUMMARY, summary)
    log.info("acoustic features: %d utterances (%d written, %d dropped), %d tokens, durations from %s",
             len(records), n_final, len(dropped), len(vocab), source)
    return summary


# ----------------------------------------------------------------------------- reading
def read_acoustic_manifest(features_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(features_dir) / MANIFEST
    if not path.is_file():
        raise AcousticDataError(f"{path}: not found (run `priorgrad acoustic preprocess` first)")
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise AcousticDataError(f"{path}:{i}: malformed manifest line ({e})") from e
    return out


def load_utterance(features_dir: str | Path, rec: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of one manifest record, checked against each other and the manifest."""
    path = Path(features_dir) / "utts" / f"{rec['utt']}.npz"
    arrays = _load_npz(path)
    if arrays is None:
        raise AcousticDataError(f"{path}: missing or unreadable feature file of utterance {rec['utt']}")
    absent = [k for k in ARRAYS if k not in arrays]
    if absent:
        raise AcousticDataError(f"{path}: missing array(s) {absent}")
    n, x = int(rec["n_frames"]), int(rec["n_tokens"])
    if (arrays["mel"].shape[1] != n or len(arrays["mel2ph"]) != n or len(arrays["tokens"]) != x
            or int(arrays["durations"].sum()) != n):
        raise AcousticDataError(f"{path}: arrays do not match the manifest ({n} frames, {x} tokens)")
    return arrays


def iter_utterances(features_dir: str | Path, records: list[dict[str, Any]]
                    ) -> Iterator[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    for rec in records:
        yield rec, load_utterance(features_dir, rec)
