"""What an evaluate stage's family is, as data: the one driver (experiments.eval_driver) runs either family.

A family says how it is configured (its params section, validated before any work), how it synthesises
and scores its trials (its conditions, floors and references), which kinds of scores.csv rows it writes,
and how its MLflow comparison tags are named. Everything else (trial list, judging rule, the stage files,
MLflow logging) is the driver's, the same for both. The vocoder's descriptor is experiments.evaluate.VOCODER,
the acoustic model's experiments.acoustic_evaluate.ACOUSTIC.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from priorgrad.core.config import Params

# {(budget, t_infer): (per-utterance records, eval summary)} of one run: what eval.mlflow_log.log_test_scores takes
RunScores = dict[tuple[int, int], tuple[list[dict[str, Any]], dict[str, Any]]]


@dataclass
class EvalRun:
    """What the driver hands a family's ``score``: the stage's settings, inputs and the checked trials."""
    params_path: Path
    params: Params
    settings: Any                 # the family's validated section(s): what its ``configure`` returned
    sources: Any                  # the family's own command-line inputs (features, statistics, recordings ...)
    root: Path                    # project root: relative checkpoint paths in trials.json are under it
    trials: list[dict[str, Any]]
    trials_path: Path             # the sweep's trials.json they were read from (named in errors)
    work: Path                    # OUT/work: synthesised sets and the score cache, kept across re-runs


@dataclass
class Examples:
    """The kept audio (experiments.examples.copy_examples): references, utterances, how many, which sets."""
    ref_dir: Path
    utts: list[str]
    n: int
    sets: list[dict[str, Any]]


@dataclass
class FamilyScores:
    """What a family's ``score`` hands back to the driver, which judges it and writes the stage files."""
    rows: list[dict[str, Any]]                       # scores.csv rows (eval.contract.SCORE_COLUMNS)
    higher: dict[str, bool]                          # metric -> higher is better (the rule's direction)
    rtf: dict[tuple, list[float]]                    # (system, size, n_params, t_infer, device) -> RTFs
    examples: Examples
    provenance: dict[str, Any]
    # a trial -> its scores for MLflow; called only for a run that is logged (summaries cost a bootstrap each)
    run_scores: Callable[[dict[str, Any]], RunScores]
    extra: dict[str, Any] = field(default_factory=dict)  # added to the stage's returned summary


@dataclass(frozen=True)
class EvalFamily:
    """One evaluate stage's family."""
    name: str                                        # registry family: its priors, its pairs, its judging rule
    configure: Callable[[Path, Params], Any]         # (params path, params) -> validated settings; errors name keys
    score: Callable[[EvalRun], FamilyScores]         # synthesis and scoring of every trial, floor and reference
    row_kinds: tuple[str, ...]                       # kinds of rows it writes (model, prior_noise, mean_reference ...)
    # MLflow tags: the headline pair names the other system too (the vocoder's headline pair never has)
    name_every_pair: bool = False


def checkpoint_path(root: Path, ckpt: str) -> Path:
    """A checkpoint path of trials.json: absolute as written, else relative to the project root."""
    return Path(ckpt) if Path(ckpt).is_absolute() else root / ckpt


def budgets(trial: dict[str, Any]) -> list[tuple[str, str]]:
    """A trial's (budget, checkpoint) pairs, smallest budget first (the ladder's order)."""
    return sorted(trial["checkpoints"].items(), key=lambda kv: int(kv[0]))


def largest_budget(trial: dict[str, Any]) -> tuple[str, str]:
    """A trial's (budget, checkpoint) of its largest budget: the end of its ladder."""
    return max(trial["checkpoints"].items(), key=lambda kv: int(kv[0]))
