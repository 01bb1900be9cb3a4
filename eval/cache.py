"""Score cache: sqlite, keyed by both files' content hashes, the metric and its implementation version.

Only successful scores are cached (a failure is cheap to retry and may be transient). Only the
runner's main process touches the database, so there are no concurrent writers within one run;
sqlite's own locking covers two runs sharing a cache file.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

from priorgrad.core.fileio import file_digest

_SCHEMA = """CREATE TABLE IF NOT EXISTS scores (
    key TEXT PRIMARY KEY,
    utt TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL
)"""


def file_hash(path: str | os.PathLike) -> str:
    return file_digest(path, length=64)


def score_key(ref_hash: str, gen_hash: str, metric: str, cache_version: str) -> str:
    return hashlib.sha256(f"{ref_hash}\0{gen_hash}\0{metric}\0{cache_version}".encode()).hexdigest()


class ScoreCache:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=60.0)
        self._db.execute(_SCHEMA)
        self._db.commit()

    def get(self, key: str) -> float | None:
        row = self._db.execute("SELECT value FROM scores WHERE key = ?", (key,)).fetchone()
        return None if row is None else float(row[0])

    def put_many(self, rows: list[tuple[str, str, str, float]]) -> None:
        """rows of (key, utt, metric, value); committed at once so an interrupted run keeps them."""
        if rows:
            self._db.executemany("INSERT OR REPLACE INTO scores (key, utt, metric, value) VALUES (?, ?, ?, ?)",
                                 rows)
            self._db.commit()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ScoreCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NoCache:
    """Stands in for ScoreCache when caching is off."""

    def get(self, key: str) -> float | None:
        return None

    def put_many(self, rows: list[tuple[str, str, str, float]]) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "NoCache":
        return self

    def __exit__(self, *exc: object) -> None:
        pass
