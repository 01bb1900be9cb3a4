"""The acoustic sweep's design (params section ``acoustic_sweep:``): validation, trial expansion, trial identity.

The acoustic trials run through the vocoder's machinery (experiments/sweep.py, trial.py: Ray Tune or
sequential, MLflow, resume, the budget ladder); only what a trial IS differs: prior x decoder size x
seed, each one run to the largest budget with a checkpoint kept at every budget. Backend, resources,
Ray address and retries come from ``sweep:`` (one place for them).
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any

from experiments.spec import Trial, _section, trial_params
from priorgrad.core import registry
from priorgrad.core.config import Params, params_hash
from priorgrad.core.schema import ConfigError

FAMILY = "acoustic"
# The keys each acoustic trial sets from acoustic_sweep: (params.yaml marks them "(per trial)").
ACOUSTIC_TRIAL_KEYS = ("acoustic.model.prior", "acoustic.model.size", "acoustic.train.seed",
                       "acoustic.train.max_steps", "acoustic.train.keep_steps")
# Speed-only keys: they change how fast a result is made, not the result, so they do not make a new trial.
# compile as the vocoder's train.compile (same maths up to rounding); precision and deterministic are kept in
# the identity, as the vocoder's are.
SPEED_ONLY_TRAIN = ("threads", "device", "compile")   # acoustic.train
SPEED_ONLY_MAS = ("threads",)              # acoustic.features.mas


@dataclass
class AcousticSweepConfig:
    name: str           # MLflow experiment <tracking.experiment_prefix>-<name>-<sweep id>
    priors: list[str]   # acoustic prior names (registry family "acoustic")
    sizes: list[str]    # names from acoustic_sizes
    seeds: list[int]    # acoustic.train.seed of each run
    budgets: list[int]  # the ladder: one run to the largest, a checkpoint kept at each


def acoustic_sizes_of(params: Params) -> dict[str, dict[str, Any]]:
    raw = params.extra.get("acoustic_sizes")
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("params: acoustic_sizes: must be a mapping of size name -> {hidden, predictor, "
                          "encoder_layers, decoder_channels, decoder_layers}")
    return raw


def acoustic_sweep_config(params: Params) -> AcousticSweepConfig:
    a = _section(AcousticSweepConfig, params.extra.get("acoustic_sweep"), "acoustic_sweep")
    if not a.name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"params: acoustic_sweep.name: {a.name!r} may hold letters, digits, - and _ only")
    known = registry.prior_names(FAMILY)
    bad = [p for p in a.priors if p not in known]
    if bad:
        raise ConfigError(f"params: acoustic_sweep.priors: {bad} not registered acoustic priors ({known})")
    sizes = acoustic_sizes_of(params)
    bad = [z for z in a.sizes if z not in sizes]
    if bad:
        raise ConfigError(f"params: acoustic_sweep.sizes: {bad} not defined under acoustic_sizes: "
                          f"(known: {sorted(sizes)})")
    if any(s < 0 for s in a.seeds):
        raise ConfigError(f"params: acoustic_sweep.seeds: seeds must be >= 0, got {a.seeds}")
    if any(b < 1 for b in a.budgets):
        raise ConfigError(f"params: acoustic_sweep.budgets: every budget must be >= 1 training step, got {a.budgets}")
    return a


def trial_config(params: Params) -> Any:
    """The acoustic trainer's config of a trial's params, holding only the trial's own size (its checkpoint
    then carries nothing that another size's edit could make it refuse to resume)."""
    from priorgrad.acoustic.model_config import AcousticConfig

    d = params.to_dict()
    size = d["acoustic"]["model"]["size"]
    d["acoustic_sizes"] = {size: d["acoustic_sizes"][size]}
    return AcousticConfig.from_dict(d, source="acoustic trial params")


def acoustic_training_hash(params: Params) -> str:
    """Identity of an acoustic trial's result: corpus, audio, the acoustic sections that shape the data and
    the training (not acoustic.infer, not speed-only keys), the numbers of its size, and the trainer's code."""
    from priorgrad.core.fingerprint import acoustic_training_fingerprint

    d = params.to_dict()
    ac = copy.deepcopy(d["acoustic"])
    ac.pop("infer", None)
    ac["train"] = {k: v for k, v in ac["train"].items() if k not in SPEED_ONLY_TRAIN}
    ac["features"]["mas"] = {k: v for k, v in ac["features"]["mas"].items() if k not in SPEED_ONLY_MAS}
    size = ac["model"]["size"]
    return params_hash({"corpus": d["corpus"], "audio": d["audio"], "acoustic": ac,
                        "size": d["acoustic_sizes"][size], "code": acoustic_training_fingerprint()})


def expand_acoustic_trials(params: Params) -> list[Trial]:
    """prior x size x seed (sizes outermost, priors innermost), each one run to the top budget."""
    a = acoustic_sweep_config(params)
    budgets = sorted(a.budgets)
    trials = []
    for size, seed, prior in itertools.product(a.sizes, a.seeds, a.priors):
        overrides: dict[str, Any] = {"acoustic.model.prior": prior, "acoustic.model.size": size,
                                     "acoustic.train.seed": seed, "acoustic.train.max_steps": budgets[-1],
                                     "acoustic.train.keep_steps": budgets}
        assert set(overrides) == set(ACOUSTIC_TRIAL_KEYS), "ACOUSTIC_TRIAL_KEYS must list every per-trial key"
        tp = trial_params(params, overrides)
        trial_config(tp)  # the acoustic validation of every trial's settings, before anything trains
        name = f"{registry.system_of(prior, FAMILY)}-{size}-s{seed}"
        trials.append(Trial(name, prior, size, seed, budgets, overrides, acoustic_training_hash(tp), FAMILY))
    return trials
