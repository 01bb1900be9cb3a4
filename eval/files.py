"""Reading and atomically writing the score files (scores.jsonl, summary.json, comparisons)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    # allow_nan=False: undefined statistics are None, and a NaN sneaking in is a bug worth an error
    _atomic_write_text(Path(path), json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> None:
    lines = [json.dumps(r, allow_nan=False) for r in records]
    _atomic_write_text(Path(path), "".join(line + "\n" for line in lines))


def read_scores(path: str | os.PathLike) -> list[dict[str, Any]]:
    """scores.jsonl (or a directory holding one) -> list of records; errors name the file and line."""
    path = Path(path)
    if path.is_dir():
        path = path / "scores.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: scores file not found (run `python -m eval score` first)")
    records = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{i}: not valid JSON ({e})") from e
        if not isinstance(rec, dict) or "utt" not in rec:
            raise ValueError(f"{path}:{i}: expected an object with an 'utt' key")
        records.append(rec)
    return records
