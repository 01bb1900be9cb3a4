"""The evaluate stage's test set: cropped test mels (synthesis inputs) and matching reference wavs."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from experiments.spec import EvaluateConfig
from priorgrad.core.config import Params
from priorgrad.core.fileio import file_digest, save_npy_atomic


class EvaluateError(RuntimeError):
    """Missing sweep outputs or a trial that cannot be evaluated; the message names the file."""


def prepare_test_set(params: Params, cfg: EvaluateConfig, features: Path, work: Path) -> tuple[Path, Path, list[str]]:
    """Writes work/inputs/{mel,reference}; returns (mel_dir, ref_dir, utts) in manifest order.

    References are the preprocessed (peak-normalised, hop-trimmed) test audio cut to the same frames as
    the mel, so generated and reference audio have the same length.
    """
    from priorgrad.core.audio import write_wav
    from priorgrad.vocoder.data import load_item_arrays, read_manifest

    items = read_manifest(features, split="test")
    if not items:
        raise EvaluateError(f"{features / 'manifest.jsonl'}: no test utterances")
    if cfg.n_utterances:
        items = items[:cfg.n_utterances]
    mel_dir, ref_dir = work / "inputs" / "mel", work / "inputs" / "reference"
    # Leftovers of an earlier, larger selection must not be synthesised or scored.
    for d in (mel_dir, ref_dir):
        if d.exists():
            shutil.rmtree(d)
    hop = params.hop_length
    for it in items:
        audio, mel = load_item_arrays(it, hop)
        frames = mel.shape[1] if cfg.max_frames <= 0 else min(cfg.max_frames, mel.shape[1])
        save_npy_atomic(mel_dir / f"{it.utt}.npy", np.ascontiguousarray(mel[:, :frames], dtype=np.float32))
        write_wav(ref_dir / f"{it.utt}.wav", np.asarray(audio[:frames * hop], dtype=np.float32),
                  params.audio.sample_rate)
    return mel_dir, ref_dir, [it.utt for it in items]


def inputs_key(utts: list[str], cfg: EvaluateConfig, features: Path) -> dict[str, object]:
    """What the synthesis inputs depend on (part of every synthesis cache key)."""
    return {"utts": utts, "max_frames": cfg.max_frames, "features": file_digest(features / "manifest.jsonl", 12)}
