"""The one evaluate driver's own checks (experiments.eval_driver): the trial loader of either family and
the row kinds a family declares; fast, no synthesis."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.eval_driver import load_trials, write_outputs
from experiments.eval_family import EvalFamily, Examples, FamilyScores
from experiments.testset import EvaluateError


def _trial(**kw) -> dict:
    return {"trial": "t0", "prior": "energy", "size": "tiny", "n_params": 1, "seed": 0,
            "checkpoints": {"10": "c.pt"}, **kw}


def _sweep(tmp_path: Path, trials) -> Path:
    (tmp_path / "trials.json").write_text(json.dumps(trials))
    return tmp_path


def test_one_loader_checks_either_family(tmp_path: Path) -> None:
    assert load_trials(_sweep(tmp_path, [_trial()]))[0]["prior"] == "energy"  # the vocoder's, by default
    assert load_trials(_sweep(tmp_path, [_trial(prior="phoneme", family="acoustic")]), "acoustic")
    with pytest.raises(EvaluateError, match=r"trials\.json: sweep trial list not found \(run the sweep stage"):
        load_trials(tmp_path / "nowhere")
    with pytest.raises(EvaluateError, match=r"acoustic sweep trial list not found"):
        load_trials(tmp_path / "nowhere", "acoustic")
    with pytest.raises(EvaluateError, match=r"trial t0: unknown vocoder prior 'phoneme'"):
        load_trials(_sweep(tmp_path, [_trial(prior="phoneme")]))
    with pytest.raises(EvaluateError, match=r"trial t0: family 'acoustic', expected 'vocoder'"):
        load_trials(_sweep(tmp_path, [_trial(family="acoustic")]))
    with pytest.raises(EvaluateError, match=r"duplicate trial names"):
        load_trials(_sweep(tmp_path, [_trial(), _trial()]))
    with pytest.raises(EvaluateError, match=r"trial 't0' lacks \['seed'\]"):
        load_trials(_sweep(tmp_path, [{k: v for k, v in _trial().items() if k != "seed"}]))


def test_rows_of_an_undeclared_kind_are_an_error(tmp_path: Path) -> None:
    family = EvalFamily(name="vocoder", configure=lambda p, q: None, score=lambda run: None, row_kinds=("model",))
    row = {"system": "priorgrad", "prior": "energy", "size": "", "n_params": 0, "seed": 0, "budget": 0,
           "t_infer": 0, "utt": "u", "metric": "mrstft", "value": 1.0, "kind": "mean_reference"}
    scores = FamilyScores(rows=[row], higher={"mrstft": False}, rtf={}, examples=Examples(tmp_path, [], 0, []),
                          provenance={}, run_scores=lambda trial: {})
    with pytest.raises(EvaluateError, match=r"undeclared kind\(s\) \['mean_reference'\]"):
        write_outputs(family, tmp_path / "out", scores, rule=None)
