"""Load and validate the pipeline outputs the report reads (docs/interfaces.md, "Pipeline outputs").

Every problem is an error that names the file and what is wrong with it: a report built on a
half-read table would state claims the runs do not support.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

from eval.aggregate import FLOOR, KINDS  # noqa: E402
from eval.contract import (AUDIO_DIR, AUDIO_INDEX, CONVERGENCE_COLUMNS, KIND_MODEL,  # noqa: E402
                                  REFERENCE_AUDIO, RTF_COLUMNS, SCORE_COLUMNS, TRIAL_KEYS,
                                  KIND_VOCODED_REFERENCE, VOCODED_REFERENCE_AUDIO)
from priorgrad.core import registry  # noqa: E402


def family_priors(family: str) -> tuple[str, ...]:
    """A family's prior names (the values of trials.json's and scores.csv's prior column), sorted."""
    return tuple(sorted(registry.priors(family)))


def family_systems(family: str) -> tuple[str, ...]:
    """A family's systems, baselines first (registry order)."""
    return tuple(registry.system_names(family))


# the vocoder family's (kept for the modules and tests that import them)
PRIORS = family_priors("vocoder")
SYSTEMS = family_systems("vocoder")

SCORES_COLUMNS = list(SCORE_COLUMNS)
SUMMARY_KEYS = ["kind", "system", "prior", "size", "n_params", "budget", "t_infer", "metric", "n", "n_seeds",
                "n_failed", "n_dropped", "dropped", "mean", "seed_sd", "ci_low", "ci_high", "higher_is_better",
                "judged", "not_judged"]
COMPARISON_KEYS = ["kind", "a", "b", "prior_b", "size", "budget", "t_infer", "metric", "n", "n_seeds_a", "n_seeds_b",
                   "n_dropped", "dropped", "mean_diff", "ci_low", "ci_high", "p_boot", "higher_is_better", "judged",
                   "not_judged", "margin", "outcome"]
PROVENANCE_KEYS = ["git_commit", "params_hash", "corpus", "machine", "metric_versions"]



class ReportInputError(ValueError):
    """A pipeline output is missing or malformed; the message names the file."""


@dataclass(frozen=True)
class AudioSetting:
    """One directory of kept examples: a system at one size, budget and T_infer (kind "model"), or a
    system's prior noise without denoising (kind "prior_noise": size "", budget 0, T_infer 0)."""
    system: str
    size: str
    budget: int
    t_infer: int
    directory: Path
    kind: str = KIND_MODEL
    seed: int = 0
    condition: str = ""       # acoustic: the synthesis condition of the clips (E1, E2, E3); vocoder: ""

    @property
    def name(self) -> str:
        return self.directory.name


@dataclass
class RunData:
    eval_dir: Path
    sweep_dir: Path
    convergence: pd.DataFrame
    trials: list[dict[str, Any]]
    scores: pd.DataFrame
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    rtf: pd.DataFrame
    provenance: dict[str, Any]
    reference_audio: dict[str, Path]             # utt -> wav
    audio_settings: list[AudioSetting] = field(default_factory=list)
    family: str = "vocoder"
    vocoded_reference: dict[str, Path] = field(default_factory=dict)   # acoustic: utt -> vocoder(GT mel) wav

    @property
    def systems_run(self) -> tuple[str, ...]:
        """The family's systems these runs scored, in registry order: a registered system the sweep did not
        run (SpecGrad outside the priors profile) gets no column, pair or claim, rather than empty ones."""
        scored = set(self.scores.loc[self.scores["kind"] == "model", "system"]) if len(self.scores) else set()
        return tuple(s for s in family_systems(self.family) if s in scored)

    def input_files(self) -> list[Path]:
        """Every file the report is built from (for the provenance section's input list)."""
        files = [self.sweep_dir / "convergence.csv", self.sweep_dir / "trials.json",
                 self.eval_dir / AUDIO_DIR / AUDIO_INDEX]
        files += [self.eval_dir / n for n in ("scores.csv", "summary.json", "comparisons.json",
                                               "rtf.csv", "provenance.json")]
        return files


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise ReportInputError(f"{path}: required pipeline output not found (run the pipeline first: dvc repro)")


def _read_csv(path: Path, columns: list[str], numeric: dict[str, str], allow_empty_value: bool) -> pd.DataFrame:
    """Read a tidy CSV as strings, then convert the numeric columns, naming any bad row."""
    _require_file(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ReportInputError(f"{path}: not a readable CSV ({e})") from e
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ReportInputError(f"{path}: missing columns {missing} (has {list(df.columns)})")
    if df.empty:
        raise ReportInputError(f"{path}: no rows")
    df = df[columns].copy()
    for col, kind in numeric.items():
        raw = df[col].str.strip()
        conv = pd.to_numeric(raw, errors="coerce")
        empty = raw == ""
        bad = conv.isna() & ~(empty & allow_empty_value & (col == "value"))
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise ReportInputError(f"{path}: row {i + 2}: column {col!r} is not a number: {df[col].iloc[i]!r}")
        if kind == "int":
            if (conv.dropna() % 1 != 0).any():
                raise ReportInputError(f"{path}: column {col!r} must hold integers")
            df[col] = conv.astype("int64")
        else:
            df[col] = conv.astype("float64")
    return df


def _check_values(path: Path, df: pd.DataFrame, col: str, allowed: tuple[str, ...]) -> None:
    bad = sorted(set(df[col]) - set(allowed))
    if bad:
        raise ReportInputError(f"{path}: column {col!r} has unknown values {bad} (expected {list(allowed)})")


def _read_json(path: Path) -> Any:
    _require_file(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReportInputError(f"{path}: invalid JSON ({e})") from e


def _records(path: Path, keys: list[str], optional_keys: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    data = _read_json(path)
    if not isinstance(data, list):
        raise ReportInputError(f"{path}: expected a JSON list of objects, got {type(data).__name__}")
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise ReportInputError(f"{path}: item {i} is not an object")
        missing = [k for k in keys if k not in rec and k not in optional_keys]
        if missing:
            raise ReportInputError(f"{path}: item {i} lacks keys {missing}")
    return data


def _numeric_frame(path: Path, records: list[dict[str, Any]], keys: list[str],
                   floats: list[str], ints: list[str], nullable: tuple[str, ...] = ()) -> pd.DataFrame:
    df = pd.DataFrame(records, columns=keys)
    for col in floats + ints:
        conv = pd.to_numeric(df[col], errors="coerce")
        bad = conv.isna() & ~(df[col].isna() & (col in nullable))
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise ReportInputError(f"{path}: item {i}: {col!r} is not a number: {records[i].get(col)!r}")
        df[col] = conv.astype("int64") if col in ints else conv.astype("float64")
    df["higher_is_better"] = df["higher_is_better"].astype(bool)
    for col in ("size", "metric"):
        df[col] = df[col].astype(str)
    return df


def _load_audio(eval_dir: Path, systems: tuple[str, ...] = SYSTEMS
                ) -> tuple[dict[str, Path], list[AudioSetting], dict[str, Any]]:
    """The recordings and every kept set, as the evaluate stage's audio/index.json lists them (and the index)."""
    audio_dir = eval_dir / AUDIO_DIR
    index_path = audio_dir / AUDIO_INDEX
    index = _read_json(index_path)
    if not isinstance(index, dict) or not isinstance(index.get("sets"), list):
        raise ReportInputError(f"{index_path}: expected an object with a 'sets' list")
    ref_dir = audio_dir / index.get("reference", REFERENCE_AUDIO)
    if not ref_dir.is_dir():
        raise ReportInputError(f"{ref_dir}: reference audio directory not found")
    reference = {p.stem: p for p in sorted(ref_dir.glob("*.wav"))}
    if not reference:
        raise ReportInputError(f"{ref_dir}: no .wav files")
    settings: list[AudioSetting] = []
    for i, rec in enumerate(index["sets"]):
        missing = [k for k in ("dir", "kind", "system", "size", "budget", "t_infer", "seed") if k not in rec]
        if missing:
            raise ReportInputError(f"{index_path}: set {i}: missing keys {missing}")
        if rec["kind"] == KIND_VOCODED_REFERENCE:  # vocoder(GT mel): read by _load_vocoded_reference
            continue
        if rec["system"] not in systems or rec["kind"] not in KINDS:
            raise ReportInputError(f"{index_path}: set {i}: unknown system {rec['system']!r} or kind {rec['kind']!r}")
        d = audio_dir / rec["dir"]
        if not d.is_dir():
            raise ReportInputError(f"{d}: audio directory listed in {index_path} not found")
        settings.append(AudioSetting(rec["system"], str(rec["size"]), int(rec["budget"]), int(rec["t_infer"]), d,
                                     rec["kind"], int(rec["seed"]), str(rec.get("condition", ""))))
    return reference, settings, index


def _load_vocoded_reference(eval_dir: Path, index: dict[str, Any]) -> dict[str, Path]:
    """Acoustic: the vocoder run on the ground-truth mel (audio/reference-vocoded, or the index's
    "vocoded_reference" folder), the primary reference of the vocoded metrics."""
    d = eval_dir / AUDIO_DIR / str(index.get("vocoded_reference", VOCODED_REFERENCE_AUDIO))
    if not d.is_dir():
        raise ReportInputError(f"{d}: vocoded ground-truth mel audio directory not found (the acoustic evaluate "
                               f"stage writes vocoder(GT mel) there)")
    return {p.stem: p for p in sorted(d.glob("*.wav"))}


def load_runs(eval_dir: str | Path, sweep_dir: str | Path, family: str = "vocoder") -> RunData:
    """Read every pipeline output the report uses for one family's section (the same files and formats for
    both; registry.comparisons(family) are the system pairs); raise ReportInputError naming the first bad file."""
    eval_dir, sweep_dir = Path(eval_dir), Path(sweep_dir)
    priors, systems = family_priors(family), family_systems(family)
    pairs = [tuple(p) for p in registry.comparisons(family)]
    for d in (eval_dir, sweep_dir):
        if not d.is_dir():
            raise ReportInputError(f"{d}: directory not found (run the pipeline first: dvc repro)")

    conv_path = sweep_dir / "convergence.csv"
    convergence = _read_csv(conv_path, CONVERGENCE_COLUMNS,
                            {"n_params": "int", "seed": "int", "budget": "int", "step": "int", "value": "float"},
                            allow_empty_value=False)
    _check_values(conv_path, convergence, "prior", priors)

    trials_path = sweep_dir / "trials.json"
    trials = _records(trials_path, TRIAL_KEYS)
    for i, t in enumerate(trials):
        if t["prior"] not in priors:
            raise ReportInputError(f"{trials_path}: item {i}: prior {t['prior']!r} not in {list(priors)}")

    scores_path = eval_dir / "scores.csv"
    scores = _read_csv(scores_path, SCORES_COLUMNS,
                       {"n_params": "int", "seed": "int", "budget": "int", "t_infer": "int", "value": "float"},
                       allow_empty_value=True)
    _check_values(scores_path, scores, "system", systems)
    _check_values(scores_path, scores, "prior", priors)
    _check_values(scores_path, scores, "kind", KINDS)
    dup = scores.duplicated(["kind", "system", "size", "seed", "budget", "t_infer", "utt", "metric"])
    if dup.any():
        i = int(dup.to_numpy().nonzero()[0][0])
        raise ReportInputError(f"{scores_path}: row {i + 2}: duplicate score for one system, size, seed, budget, "
                               f"T_infer, utterance and metric")

    summary_path = eval_dir / "summary.json"
    summary = _numeric_frame(summary_path, _records(summary_path, SUMMARY_KEYS), SUMMARY_KEYS,
                             floats=["mean", "seed_sd", "ci_low", "ci_high"],
                             ints=["n_params", "budget", "t_infer", "n", "n_seeds", "n_failed", "n_dropped"],
                             nullable=("mean", "seed_sd", "ci_low", "ci_high"))
    _check_values(summary_path, summary, "system", systems)
    if summary.empty:
        raise ReportInputError(f"{summary_path}: no rows")

    comp_path = eval_dir / "comparisons.json"
    comparisons = _numeric_frame(comp_path, _records(comp_path, COMPARISON_KEYS), COMPARISON_KEYS,
                                 floats=["mean_diff", "ci_low", "ci_high", "p_boot", "margin"],
                                 ints=["budget", "t_infer", "n", "n_seeds_a", "n_seeds_b", "n_dropped"],
                                 nullable=("mean_diff", "ci_low", "ci_high", "p_boot", "margin"))
    for i, rec in comparisons.iterrows():
        if rec["kind"] == "floor":
            ok = rec["b"] == FLOOR and rec["a"] in systems
        else:
            ok = rec["kind"] == "systems" and (rec["a"], rec["b"]) in pairs
        if not ok:
            want = " or ".join(f"a={a}, b={b}" for a, b in pairs)
            raise ReportInputError(f"{comp_path}: item {i}: kind {rec['kind']!r} with a={rec['a']!r}, b={rec['b']!r} "
                                   f"(expected systems: {want}; floor: b={FLOOR})")

    rtf_path = eval_dir / "rtf.csv"
    rtf = _read_csv(rtf_path, RTF_COLUMNS, {"n_params": "int", "t_infer": "int", "rtf": "float"},
                    allow_empty_value=False)
    _check_values(rtf_path, rtf, "system", systems)

    prov_path = eval_dir / "provenance.json"
    provenance = _read_json(prov_path)
    if not isinstance(provenance, dict):
        raise ReportInputError(f"{prov_path}: expected a JSON object")
    missing = [k for k in PROVENANCE_KEYS if k not in provenance]
    if missing:
        raise ReportInputError(f"{prov_path}: missing keys {missing}")

    reference, settings, index = _load_audio(eval_dir, systems)
    vocoded = _load_vocoded_reference(eval_dir, index) if family == "acoustic" else {}
    log.info("%s: read %d convergence rows, %d scores, %d summary rows, %d comparisons, %d audio settings", family,
             len(convergence), len(scores), len(summary), len(comparisons), len(settings))
    return RunData(eval_dir, sweep_dir, convergence, trials, scores, summary, comparisons, rtf,
                   provenance, reference, settings, family, vocoded)
