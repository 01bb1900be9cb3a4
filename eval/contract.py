"""The files the pipeline's stages hand to each other: names, columns, audio folders (torch-free).

The sweep writes the trial list and the convergence table; the evaluate stage writes scores, summaries,
comparisons, real-time factors, kept audio with its index, provenance; the report reads them all. Both
sides import this module, so the contract is written once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from priorgrad.fileio import format_csv, write_text_atomic

# ----------------------------------------------------------------------------- sweep outputs
TRIALS_JSON = "trials.json"            # one record per training run (TRIAL_KEYS)
CONVERGENCE_CSV = "convergence.csv"    # validation curves (CONVERGENCE_COLUMNS)
FINAL_VALID_JSON = "final_valid.json"  # DVC metrics: the last validation score of every run
CURVES_DIR = "convergence"             # convergence/<metric>.csv: the same curves, one file (DVC plot) per metric
TRIALS_DIR = "trials"
TUNE_DIR = "tune"

# checkpoints: {budget (str): checkpoint path} for every rung of the budget ladder
TRIAL_KEYS = ["trial", "prior", "system", "size", "n_params", "seed", "budget", "checkpoints", "mlflow_run_id",
              "mlflow_experiment", "family"]  # family: "vocoder" | "acoustic" (priorgrad.registry.FAMILIES)
CONVERGENCE_COLUMNS = ["trial", "prior", "size", "n_params", "seed", "budget", "step", "metric", "value"]

# ----------------------------------------------------------------------------- evaluate outputs
SCORES_CSV = "scores.csv"              # one row per scored (system, seed, budget, T, utterance, metric)
SUMMARY_JSON = "summary.json"
COMPARISONS_JSON = "comparisons.json"
RTF_CSV = "rtf.csv"
PROVENANCE_JSON = "provenance.json"
METRICS_JSON = "metrics.json"          # DVC metrics: the headline comparisons
AUDIO_DIR = "audio"                    # kept examples: audio/<setting>/<utt>.wav
AUDIO_INDEX = "index.json"             # audio/index.json: what each folder of audio/ holds
REFERENCE_AUDIO = "reference"          # audio/reference/<utt>.wav: the recordings

SCORE_COLUMNS = ["system", "prior", "size", "n_params", "seed", "budget", "t_infer", "utt", "metric", "value",
                 "kind"]
RTF_COLUMNS = ["system", "size", "n_params", "t_infer", "rtf", "device"]

# kind of a scores.csv row: a trained system's output, or its prior's own sample without denoising (the
# floor: x_T = sigma * n for the energy prior, n for the standard prior). Floor rows have size "",
# n_params 0, budget 0, t_infer 0, and seed = the index of the noise draw.
KIND_MODEL = "model"
KIND_PRIOR_NOISE = "prior_noise"
# acoustic only: mu_ph alone (the phoneme statistics' mean by the ground-truth durations), what a regression
# model without diffusion would give. L1 / cepstral distances favour a mean over any sampler of the true
# distribution, so it is shown as a labelled reference and is NEVER a floor (no comparison, flag or verdict
# uses it). Rows: system = PriorGrad-AM's (its prior's mean), size "", budget 0, t_infer 0, identical per seed.
KIND_MEAN_REFERENCE = "mean_reference"
# acoustic only: the whole recordings scored with condition E3's metrics (WER / CER of the recogniser on real
# speech: the floor of what it can measure). Shown beside E3, never compared. Rows as the mean reference's.
KIND_RECORDING = "recording"
KINDS = (KIND_MODEL, KIND_PRIOR_NOISE, KIND_MEAN_REFERENCE, KIND_RECORDING)


def audio_setting_dir(system: str, size: str, budget: int, t_infer: int) -> str:
    """Folder name of a trained system's kept examples under audio/."""
    return f"{system}-{size}-{budget}-T{t_infer}"


def prior_noise_dir(system: str) -> str:
    """Folder name of a system's prior-noise (floor) examples under audio/."""
    return f"{system}-prior-noise"


def write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]], columns: list[str]) -> None:
    write_text_atomic(path, format_csv(rows, columns))


# ----------------------------------------------------------------------------- acoustic family
# The acoustic side writes the same files in its own folders (runs/acoustic/sweep, runs/acoustic/eval),
# with two differences, both in the metric name so that eval.aggregate, the claims and the tables need
# no new dimension: the synthesis condition (E1 = ground-truth durations, f0 and energy; E2 = ground-truth
# durations, predicted f0/energy; E3 = all predicted) and, for vocoded audio, the reference it is scored
# against ("" = the same vocoder run on the ground-truth mel, the primary one; "rec" = the recording).
#   "E1/mel_l1", "E2/mel_cd", "E1/pesq_wb" (vs vocoder(GT mel)), "E1/pesq_wb@rec" (vs the recording)
ACOUSTIC_CONDITIONS = ("E1", "E2", "E3")
ACOUSTIC_REFERENCES = ("", "rec")
VOCODED_REFERENCE_AUDIO = "reference-vocoded"   # audio/reference-vocoded/<utt>.wav: vocoder(GT mel)
KIND_VOCODED_REFERENCE = "vocoded_reference"     # kind of that folder's set in audio/index.json


def qualified_metric(condition: str, metric: str, reference: str = "") -> str:
    """The acoustic side's metric name: '<condition>/<metric>[@<reference>]'."""
    if condition not in ACOUSTIC_CONDITIONS:
        raise ValueError(f"unknown synthesis condition {condition!r} (known: {list(ACOUSTIC_CONDITIONS)})")
    if reference not in ACOUSTIC_REFERENCES:
        raise ValueError(f"unknown audio reference {reference!r} (known: {list(ACOUSTIC_REFERENCES)})")
    if "/" in metric or "@" in metric or not metric:
        raise ValueError(f"metric name {metric!r} may not be empty or hold '/' or '@'")
    return f"{condition}/{metric}" + (f"@{reference}" if reference else "")


def split_metric(name: str) -> tuple[str, str, str]:
    """(condition, base metric, reference) of a metric name; ('', name, '') for an unqualified one (vocoder)."""
    if "/" not in name:
        return "", name, ""
    condition, rest = name.split("/", 1)
    base, _, reference = rest.partition("@")
    if condition not in ACOUSTIC_CONDITIONS or reference not in ACOUSTIC_REFERENCES or not base:
        raise ValueError(f"malformed acoustic metric name {name!r} (expected '<E1|E2|E3>/<metric>[@rec]')")
    return condition, base, reference


def base_metric(name: str) -> str:
    """The metric a (possibly qualified) name scores: 'E1/pesq_wb@rec' -> 'pesq_wb'."""
    return split_metric(name)[1]
