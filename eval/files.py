"""Reading and atomically writing the score files (scores.jsonl, summary.json, comparisons)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from priorgrad.core.fileio import read_jsonl, write_jsonl_atomic, write_text_atomic


def write_json(path: str | os.PathLike, obj: Any) -> None:
    # allow_nan=False: undefined statistics are None, and a NaN sneaking in is a bug worth an error
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


write_jsonl = write_jsonl_atomic


def read_scores(path: str | os.PathLike) -> list[dict[str, Any]]:
    """scores.jsonl (or a directory holding one) -> list of records; errors name the file and line."""
    path = Path(path)
    if path.is_dir():
        path = path / "scores.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: scores file not found (run `python -m eval score` first)")
    records = read_jsonl(path)
    for i, rec in enumerate(records, 1):
        if not isinstance(rec, dict) or "utt" not in rec:
            raise ValueError(f"{path}: record {i}: expected an object with an 'utt' key")
    return records


def read_texts(path: str | os.PathLike) -> dict[str, str]:
    """What each utterance says, for the intelligibility metrics: ``id|text`` lines, or LJSpeech's
    ``metadata.csv`` (``id|raw text|normalized text``: the normalized column, whose numbers and
    abbreviations are spelled out as a recogniser writes them). Blank lines are skipped; every problem
    names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: text file not found (--text: id|text lines or LJSpeech metadata.csv)")
    texts: dict[str, str] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) not in (2, 3):
            raise ValueError(f"{path}:{i}: expected 'id|text' or 'id|text|normalized text', "
                             f"got {len(fields)} '|'-separated field(s)")
        utt, text = fields[0].strip(), fields[-1].strip()
        if not utt or not text:
            raise ValueError(f"{path}:{i}: empty {'id' if not utt else 'text'}")
        if utt in texts:
            raise ValueError(f"{path}:{i}: utterance {utt!r} given twice")
        texts[utt] = text
    if not texts:
        raise ValueError(f"{path}: no texts in the file")
    return texts
