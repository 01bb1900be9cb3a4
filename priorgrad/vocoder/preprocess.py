"""Corpus -> features: one normalised waveform and one log-mel .npy per utterance, plus a manifest.

Also computes the prior statistics over the training split. Every path is an argument (DVC passes
them). A re-run skips utterances whose source file and audio settings are unchanged.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from priorgrad.core.audio import AudioError, get_preset, load_audio, log_mel
from priorgrad.core.config import Params
from priorgrad.vocoder.data import MANIFEST, read_manifest
from priorgrad.core.logs import show_progress
from priorgrad.core.fileio import save_npy_atomic, write_json_atomic, write_text_atomic
from priorgrad.vocoder.prior import compute_energy_stats

log = logging.getLogger(__name__)


def _source_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def preprocess(corpus_dir: str | Path, out_dir: str | Path, params: Params, progress: bool | None = None,
               lists_dir: str | Path | None = None) -> dict[str, Any]:
    """Write FEATS/audio/*.npy, FEATS/mel/*.npy and FEATS/manifest.jsonl for every utterance of the corpus."""
    from priorgrad.corpus.ljspeech import read_metadata, split_utterances

    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    preset = get_preset(params.audio.preset)
    utts = read_metadata(corpus_dir)
    c = params.corpus
    splits = split_utterances(utts, n_valid=c.n_valid, n_test=c.n_test, seed=c.split_seed, official=c.official_split,
                              lists_dir=lists_dir)
    split_of = {u.utt_id: name for name, members in splits.items() for u in members}

    settings = {"preset": preset.name, "allow_resample": params.audio.allow_resample}
    previous = _previous_manifest(out_dir, settings)
    records, errors, n_done = [], [], 0
    for u in tqdm(utts, desc="preprocess", unit="utt", disable=not show_progress(progress)):
        wav_path = Path(u.wav_path)
        rec = {"utt": u.utt_id, "split": split_of[u.utt_id], "audio": f"audio/{u.utt_id}.npy",
               "mel": f"mel/{u.utt_id}.npy", "text": u.text}
        try:
            key = _source_key(wav_path) if wav_path.exists() else None
            prev = previous.get(u.utt_id)
            if (prev and key and prev.get("source") == key and (out_dir / rec["audio"]).exists()
                    and (out_dir / rec["mel"]).exists()):
                rec.update(samples=prev["samples"], frames=prev["frames"], source=key)
                records.append(rec)
                continue
            audio = load_audio(wav_path, preset, allow_resample=params.audio.allow_resample)
            mel = log_mel(audio, preset.name)
            if mel.shape[1] * preset.hop_length != len(audio):
                raise AudioError(f"{wav_path}: mel frames {mel.shape[1]} do not match {len(audio)} samples")
        except AudioError as e:
            errors.append(str(e))
            continue
        save_npy_atomic(out_dir / rec["audio"], audio)
        save_npy_atomic(out_dir / rec["mel"], mel.astype(np.float32))
        rec.update(samples=int(len(audio)), frames=int(mel.shape[1]), source=key)
        records.append(rec)
        n_done += 1
    if errors:
        # Every bad file is listed, so the user fixes the corpus in one pass.
        raise AudioError(f"{len(errors)} of {len(utts)} file(s) in {corpus_dir} could not be used:\n  "
                         + "\n  ".join(errors))
    write_text_atomic(out_dir / MANIFEST, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    summary = {"settings": settings, "n_utterances": len(records), "n_computed": n_done,
               "splits": {s: sum(r["split"] == s for r in records) for s in ("train", "valid", "test")},
               "seconds": {s: round(sum(r["samples"] for r in records if r["split"] == s) / preset.sample_rate, 3)
                           for s in ("train", "valid", "test")}}
    write_json_atomic(out_dir / "preprocess.json", summary)
    log.info("preprocessed %d utterances (%d computed, %d unchanged)", len(records), n_done, len(records) - n_done)
    return summary


def _previous_manifest(out_dir: Path, settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Records of an earlier run with the same audio settings (else nothing is reused)."""
    summary_path, manifest = out_dir / "preprocess.json", out_dir / MANIFEST
    if not (summary_path.exists() and manifest.exists()):
        return {}
    try:
        if json.loads(summary_path.read_text()).get("settings") != settings:
            return {}
        return {r["utt"]: r for r in (json.loads(x) for x in manifest.read_text().splitlines() if x.strip())}
    except (json.JSONDecodeError, KeyError):
        return {}


def prior_stats(features_dir: str | Path, out_path: str | Path, preset: str = "hifigan") -> dict[str, Any]:
    """E_min / E_max over all frames of all full-length training utterances -> JSON."""
    items = read_manifest(features_dir, split="train")
    stats = compute_energy_stats(((it.utt, np.asarray(it.mel())) for it in items), preset)
    write_json_atomic(out_path, stats)
    return stats
