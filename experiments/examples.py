"""Kept audio examples of the evaluate stage, with an index the report reads (no name parsing)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from eval.contract import AUDIO_DIR, AUDIO_INDEX, REFERENCE_AUDIO
from priorgrad.core.fileio import write_json_atomic


def copy_examples(out: Path, ref_dir: Path, utts: list[str], n: int, sets: list[dict[str, Any]]) -> Path:
    """Copies the first n test utterances of the reference and of each set into OUT/audio/ and indexes them.

    ``sets``: {"dir": folder name under audio/, "src": generated dir, plus the row keys (system, prior,
    size, budget, t_infer, seed, kind)}; the caller passes one set per system and setting (the lowest
    seed's, so a listener hears one particular trained network, named in the index).
    """
    audio = out / AUDIO_DIR
    if audio.exists():
        shutil.rmtree(audio)
    keep = utts[:n]
    (audio / REFERENCE_AUDIO).mkdir(parents=True, exist_ok=True)
    for u in keep:
        shutil.copyfile(ref_dir / f"{u}.wav", audio / REFERENCE_AUDIO / f"{u}.wav")
    index: list[dict[str, Any]] = []
    for s in sets:
        dest = audio / s["dir"]
        dest.mkdir(parents=True, exist_ok=True)
        kept = []
        for u in keep:
            src = Path(s["src"]) / f"{u}.wav"
            if src.exists():  # a failed synthesis is absent, and the index says which utterances exist
                shutil.copyfile(src, dest / f"{u}.wav")
                kept.append(u)
        index.append({**{k: v for k, v in s.items() if k != "src"}, "utts": kept})
    path = audio / AUDIO_INDEX
    write_json_atomic(path, {"reference": REFERENCE_AUDIO, "utts": keep, "sets": index})
    return path
