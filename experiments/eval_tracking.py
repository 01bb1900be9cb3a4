"""A run's test scores into its own MLflow run, for either family (through the Tracker interface)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from experiments.eval_family import EvalFamily, RunScores
from priorgrad.core import registry


def log_run_scores(uri: str, trial: dict[str, Any], family: EvalFamily, run_scores: Callable[[dict[str, Any]], RunScores],
                   comparisons_path: Path, comparisons: list[dict[str, Any]], timeout_s: float) -> None:
    """``test/T<t>/<metric>`` at step = budget, so each run's scores form a curve over the budget ladder (the
    acoustic metric names carry their condition, '@rec' -> '_at_rec'); and, as tags ``b<budget>/cmp/...`` and
    ``b<budget>/floor/...``, the one rule's outcome of every comparison the run is part of
    (eval.aggregate.mlflow_tags). ``run_scores(trial)``: the family's {(budget, t_infer): (records, summary)},
    asked only for a run that is logged (each summary costs a bootstrap).
    A run without an MLflow run id, or a tracking server that does not answer, is skipped: tracking loss
    is reported by the tracker, never fatal."""
    if not trial.get("mlflow_run_id"):
        return
    from eval.aggregate import mlflow_tags
    from eval.mlflow_log import log_test_scores
    from experiments.trackers import MLflowTracker

    tracker = MLflowTracker.for_run(uri, trial["mlflow_run_id"], timeout_s=timeout_s)
    if not tracker.active:
        return
    system = registry.system_of(trial["prior"], family.name)
    scores = run_scores(trial)
    for budget in sorted({b for b, _ in scores}):
        per_t = {t: v for (b, t), v in scores.items() if b == budget}
        log_test_scores(tracker, per_t, comparisons_path, step=budget,
                        title=f"{trial['trial']} at {budget} steps: test scores vs T_infer")
        tags = mlflow_tags(comparisons, system, trial["size"], budget, name_every_pair=family.name_every_pair)
        tracker.set_tags({f"b{budget}/{k}": v for k, v in tags.items()})
    tracker.close()
