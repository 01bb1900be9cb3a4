"""Experiment trackers behind one interface.

The trainer only calls ``Tracker``; MLflow and Ray Tune implementations live in ``experiments/`` so
that training runs with torch and numpy alone.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger(__name__)


class Tracker:
    """No-op base: subclasses override what they support."""

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        pass

    def log_input(self, name: str, source: str, rows: list[dict[str, Any]], context: str) -> None:
        """Record a data set the run used (``rows``: one dict per example, e.g. the feature manifest)."""

    def log_table(self, rows: list[dict[str, Any]], artifact_file: str) -> None:
        """A small table (one dict per row) that belongs to the run but is not a metric curve."""

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """A matplotlib figure, shown with the run (the caller closes it)."""

    def close(self, status: str = "FINISHED") -> None:
        pass


NullTracker = Tracker


class JsonlTracker(Tracker):
    """Appends one JSON object per log_metrics call: {"step": k, "metric": value, ...}."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def truncate_after(self, step: int) -> None:
        """On resume, drop records newer than the checkpoint so no step is logged twice."""
        if not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", -1) <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(self.path)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **clean}, sort_keys=True) + "\n")

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


class CompositeTracker(Tracker):
    """Fans out to several trackers; one failing tracker is reported, never fatal to training."""

    def __init__(self, trackers: Iterable[Tracker]):
        self.trackers = [t for t in trackers if t is not None]

    def _each(self, method: str, *args: Any, **kwargs: Any) -> None:
        for t in list(self.trackers):
            try:
                getattr(t, method)(*args, **kwargs)
            except Exception as e:  # tracking must not kill a training run
                log.warning("tracker %s failed in %s (%s); disabling it for this run", type(t).__name__, method, e)
                self.trackers.remove(t)

    def log_params(self, params: dict[str, Any]) -> None:
        self._each("log_params", params)

    def set_tags(self, tags: dict[str, str]) -> None:
        self._each("set_tags", tags)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._each("log_metrics", metrics, step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._each("log_artifact", path, artifact_path)

    def log_input(self, name: str, source: str, rows: list[dict[str, Any]], context: str) -> None:
        self._each("log_input", name, source, rows, context)

    def log_table(self, rows: list[dict[str, Any]], artifact_file: str) -> None:
        self._each("log_table", rows, artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self._each("log_figure", figure, artifact_file)

    def close(self, status: str = "FINISHED") -> None:
        self._each("close", status)
