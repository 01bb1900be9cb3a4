"""Reading and atomically writing the score files (scores.jsonl, summary.json, comparisons)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from priorgrad.fileio import read_jsonl, write_jsonl_atomic, write_text_atomic


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
