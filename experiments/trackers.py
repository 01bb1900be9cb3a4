"""MLflow and Ray Tune implementations of ``priorgrad.core.tracking.Tracker``.

Tracking is never allowed to stop training: an unreachable MLflow store is reported once as a
warning and the tracker turns itself off (the trial's metrics.jsonl still has everything).

What MLflow 3.x users expect to see: experiments tagged as model-training experiments
(``mlflow.experimentKind = custom_model_development``; without it the UI opens a new experiment on
its GenAI pages: traces, sessions, an assistant), a description on every experiment and run
(``mlflow.note.content``, the UI's "Description"), curves as metrics, the data set as the run's
input (``log_input``), small tables (``log_table``) and figures (``log_figure``).
"""
from __future__ import annotations

import logging
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from priorgrad.core.tracking import Tracker

log = logging.getLogger(__name__)

# MLflow's limits (3.x): a param value holds at most 6000 characters, a batch at most 100 params
# and 1000 metrics.
_MAX_PARAM_CHARS = 6000
_PARAM_BATCH = 100
_METRIC_BATCH = 1000

# Read by the MLflow UI (mlflow/server/js: ExperimentKind; "genai_development" opens the GenAI pages).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
DESCRIPTION_TAG = "mlflow.note.content"  # the "Description" shown on experiment and run pages


def default_tracking_uri(root: Path, configured: str | None) -> str:
    """params tracking.uri, else MLFLOW_TRACKING_URI, else sqlite mlflow.db in the project root."""
    if configured:
        return configured
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


class TrackingUnavailable(RuntimeError):
    """The MLflow store could not be reached or used."""


def quiet_http(timeout_s: float) -> None:
    # MLflow retries HTTP calls with exponential back-off by default (minutes against a dead server);
    # one short attempt is enough to decide that tracking is lost.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(math.ceil(timeout_s))))


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast (TrackingUnavailable) for an HTTP tracking server that does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout_s)
    except requests.RequestException as e:
        raise TrackingUnavailable(f"MLflow tracking server {uri} is unreachable ({type(e).__name__}: {e})") from e


def _retry(fn: Callable[[], Any], what: str, attempts: int = 5) -> Any:
    """sqlite stores refuse writers while another process holds the lock; wait a little and retry."""
    for i in range(attempts):
        try:
            return fn()
        except Exception as e:  # MlflowException wraps sqlalchemy's OperationalError
            if "locked" not in str(e).lower() or i == attempts - 1:
                raise
            log.debug("%s: database locked, retry %d", what, i + 1)
            time.sleep(0.2 * 2 ** i)
    return None


def ensure_experiment(uri: str, name: str, artifact_root: Path | None = None, timeout_s: float = 5.0,
                      description: str | None = None) -> str:
    """Create (or find) the MLflow experiment, marked as a model-training experiment; returns its id.

    Raises TrackingUnavailable.
    """
    quiet_http(timeout_s)
    check_reachable(uri, timeout_s)
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=uri)
        exp = _retry(lambda: client.get_experiment_by_name(name), "get_experiment")
        if exp is None:
            location = None
            if artifact_root is not None and not uri.startswith(("http://", "https://")):
                location = (artifact_root / name).resolve().as_uri()
            tags = {EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND}
            if description:
                tags[DESCRIPTION_TAG] = description
            return _retry(lambda: client.create_experiment(name, artifact_location=location, tags=tags),
                          "create_experiment")
        # an experiment made by an older version of this project: mark it too (tags are mutable)
        wanted = {EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND, **({DESCRIPTION_TAG: description} if description else {})}
        for key, value in wanted.items():
            if exp.tags.get(key) != value:
                _retry(lambda: client.set_experiment_tag(exp.experiment_id, key, value), "set_experiment_tag")
        return exp.experiment_id
    except TrackingUnavailable:
        raise
    except Exception as e:
        raise TrackingUnavailable(f"MLflow store {uri}: {type(e).__name__}: {e}") from e


class MLflowTracker(Tracker):
    """One MLflow run. Pass ``run_id`` to continue an existing run (a resumed trial)."""

    def __init__(self, uri: str, experiment: str, run_name: str, run_id: str | None = None,
                 tags: dict[str, str] | None = None, artifact_root: Path | None = None, timeout_s: float = 5.0):
        self.uri = uri
        self.client = None
        self.run_id: str | None = None
        try:
            exp_id = ensure_experiment(uri, experiment, artifact_root, timeout_s)
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=uri)
            if run_id:
                run = _retry(lambda: client.get_run(run_id), "get_run")
                if run.info.status != "RUNNING":
                    _retry(lambda: client.update_run(run_id, status="RUNNING"), "update_run")
            else:
                run = _retry(lambda: client.create_run(exp_id, run_name=run_name, tags=tags or {}), "create_run")
            self.client, self.run_id = client, run.info.run_id
        except Exception as e:
            self._lost(e)

    @classmethod
    def for_run(cls, uri: str, run_id: str, artifact_root: Path | None = None,
                timeout_s: float = 5.0) -> "MLflowTracker":
        """A tracker that continues the existing run ``run_id`` (e.g. to add test scores to a trial's run).

        Inactive (``active`` False, a warning logged) when the store or the run cannot be reached.
        """
        experiment = ""
        try:
            quiet_http(timeout_s)
            check_reachable(uri, timeout_s)
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=uri)
            run = _retry(lambda: client.get_run(run_id), "get_run")
            experiment = _retry(lambda: client.get_experiment(run.info.experiment_id), "get_experiment").name
        except Exception as e:
            tracker = cls.__new__(cls)
            tracker.uri, tracker.client, tracker.run_id = uri, None, None
            tracker._lost(e)
            return tracker
        return cls(uri, experiment, run.info.run_name, run_id=run_id, artifact_root=artifact_root,
                   timeout_s=timeout_s)

    @property
    def active(self) -> bool:
        return self.client is not None

    def _lost(self, e: BaseException) -> None:
        log.warning("MLflow tracking lost (%s: %s); training goes on, metrics stay in the run's metrics.jsonl",
                    type(e).__name__, e)
        self.client = None

    def _call(self, what: str, fn: Callable[[], Any]) -> None:
        if self.client is None:
            return
        try:
            _retry(fn, what)
        except Exception as e:
            self._lost(e)

    def log_params(self, params: dict[str, Any]) -> None:
        if self.client is None:
            return
        from mlflow.entities import Param

        try:
            existing = _retry(lambda: self.client.get_run(self.run_id), "get_run").data.params
        except Exception as e:
            self._lost(e)
            return
        # MLflow params are write-once; a resumed run logs only what is new.
        new = [Param(str(k), str(v)[:_MAX_PARAM_CHARS]) for k, v in params.items() if str(k) not in existing]
        for i in range(0, len(new), _PARAM_BATCH):
            chunk = new[i:i + _PARAM_BATCH]
            self._call("log_params", lambda: self.client.log_batch(self.run_id, params=chunk))

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(str(k), str(v)) for k, v in tags.items()]
        self._call("set_tags", lambda: self.client.log_batch(self.run_id, tags=batch))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))]
        for i in range(0, len(batch), _METRIC_BATCH):
            chunk = batch[i:i + _METRIC_BATCH]
            self._call("log_metrics", lambda: self.client.log_batch(self.run_id, metrics=chunk))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        p = Path(path)
        if p.is_dir():
            where = artifact_path or p.name  # a directory keeps its name in the run's artifacts
            self._call("log_artifacts", lambda: self.client.log_artifacts(self.run_id, str(p), where))
        else:
            self._call("log_artifact", lambda: self.client.log_artifact(self.run_id, str(p), artifact_path))

    def log_input(self, name: str, source: str, rows: list[dict[str, Any]], context: str) -> None:
        """The data set as the run's input (Datasets column / "Inputs"): name, source, digest, schema.

        Only this description is stored, not the rows. A resumed run logging the same data set again
        adds nothing (MLflow keys inputs by the data set's digest).
        """
        if self.client is None:
            return
        import mlflow.data
        import pandas as pd
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        try:
            with warnings.catch_warnings():
                # MLflow warns that a local path matches two (identical) local source types, and that
                # integer columns cannot hold missing values: neither applies to a manifest description
                warnings.simplefilter("ignore", UserWarning)
                dataset = mlflow.data.from_pandas(pd.DataFrame(rows), source=source, name=name)
                # the schema is inferred here, lazily: inside the filter too
                entity = DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])
        except Exception as e:  # a data set we cannot describe is worth a warning, not a lost run
            log.warning("MLflow: cannot describe data set %s (%s: %s)", name, type(e).__name__, e)
            return
        self._call("log_inputs", lambda: self.client.log_inputs(self.run_id, datasets=[entity]))

    def log_table(self, rows: list[dict[str, Any]], artifact_file: str) -> None:
        if self.client is None:
            return
        import pandas as pd

        self._call("log_table", lambda: self.client.log_table(self.run_id, pd.DataFrame(rows), artifact_file))

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self._call("log_figure", lambda: self.client.log_figure(self.run_id, figure, artifact_file))

    def close(self, status: str = "FINISHED") -> None:
        self._call("close", lambda: self.client.set_terminated(self.run_id, status=status))


class RayTuneTracker(Tracker):
    """Reports metrics with their training step to Ray Tune (``ray.tune.report``) from inside a trial."""

    def __init__(self, only_prefix: str | None = None):
        from ray import tune

        self._report = tune.report
        self.only_prefix = only_prefix
        self.last: dict[str, float] = {}

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        clean = {k: float(v) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)
                 and (self.only_prefix is None or k.startswith(self.only_prefix))}
        if not clean:
            return
        self.last.update(clean)
        # Tune keeps the latest value of every key, so the last validation stays visible in its tables.
        self._report({**self.last, "step": int(step)})
