"""The pipeline's own params sections (sweep, acoustic_sweep, tracking, evaluate, sizes) and the one sweep spec.

`priorgrad.core.config` keeps these sections as raw dicts (``Params.extra``); they are checked here, with
errors that name the key, so a typo never falls back silently to a default.

Both model families sweep the same way: prior x size x seed, each cell one run to the largest budget
with a checkpoint kept at every budget. What differs is data, held by a ``Family`` descriptor (its
params sections, its per-trial keys, its hash inputs, its trainer): ``VOCODER`` (``sweep:``, ``sizes:``)
and ``ACOUSTIC`` (``acoustic_sweep:``, ``acoustic_sizes:``; backend, resources, Ray address and retries
come from ``sweep:``, one place for them). The expansion, the naming and the hashing are written once.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from priorgrad.core import registry
from priorgrad.core.config import Params, params_hash
from priorgrad.core.schema import ConfigError, build_section

if TYPE_CHECKING:
    from priorgrad.core.tracking import Tracker

# Core sections that decide what a trial trains: a change in any of them gives a new trial directory,
# so a stale checkpoint is never resumed under new settings. Thread count and device are left out:
# they change speed, not the result.
TRAINING_SECTIONS = ("audio", "corpus", "prior", "model", "diffusion", "train")
SIZE_KEYS = ("residual_layers", "residual_channels", "dilation_cycle")
# The keys each trial sets from sweep: and sizes: (params.yaml marks them "(per trial)").
TRIAL_KEYS = ("prior.type", "train.seed", "train.max_steps", "train.keep_steps",
              *(f"model.{k}" for k in SIZE_KEYS))
# Speed-only options (priorgrad.vocoder.fast_train, model.fused_gate): same maths up to rounding, so, like the
# thread count and device, they do not make a new trial (and a trial may resume with them switched).
SPEED_ONLY_TRAIN = ("features_on_device", "compile", "cuda_graphs")
SPEED_ONLY_MODEL = ("fused_gate",)
# The keys each acoustic trial sets from acoustic_sweep: (params.yaml marks them "(per trial)").
ACOUSTIC_TRIAL_KEYS = ("acoustic.model.prior", "acoustic.model.size", "acoustic.train.seed",
                       "acoustic.train.max_steps", "acoustic.train.keep_steps")
# The acoustic side's speed-only keys: they change how fast a result is made, not the result.
# compile as the vocoder's train.compile (same maths up to rounding); precision and deterministic are kept in
# the identity, as the vocoder's are.
SPEED_ONLY_ACOUSTIC_TRAIN = ("threads", "device", "compile")   # acoustic.train
SPEED_ONLY_MAS = ("threads",)                       # acoustic.features.mas


@dataclass
class SweepConfig:
    name: str
    backend: str
    priors: list[str]
    sizes: list[str]
    seeds: list[int]
    budgets: list[int]
    validation_metrics: list[str]
    cpus_per_trial: float
    gpus_per_trial: float
    max_concurrent_trials: int
    max_failures: int
    num_cpus: int
    ray_address: str | None


@dataclass
class AcousticSweepConfig:
    name: str           # MLflow experiment <tracking.experiment_prefix>-<name>-<sweep id>
    priors: list[str]   # acoustic prior names (registry family "acoustic")
    sizes: list[str]    # names from acoustic_sizes
    seeds: list[int]    # acoustic.train.seed of each run
    budgets: list[int]  # the ladder: one run to the largest, a checkpoint kept at each


@dataclass
class TrackingConfig:
    enabled: bool
    uri: str | None
    experiment_prefix: str
    n_audio_samples: int
    timeout_s: float


@dataclass
class EvaluateConfig:
    t_infer: list[int]
    metrics: list[str]
    n_utterances: int
    max_frames: int
    n_audio_examples: int
    workers: int
    bootstrap_seed: int
    n_boot: int


def _section(cls: type, raw: Any, name: str) -> Any:
    cfg = build_section(cls, raw, f"params: {name}")
    for f in dataclasses.fields(cls):
        value = getattr(cfg, f.name)
        if isinstance(value, list):
            if not value:
                raise ConfigError(f"params: {name}.{f.name}: expected a non-empty list")
            if len(set(value)) != len(value):
                raise ConfigError(f"params: {name}.{f.name}: duplicate entries in {value!r}")
    return cfg


def sizes_of(params: Params) -> dict[str, dict[str, int]]:
    raw = params.extra.get("sizes")
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("params: sizes: must be a mapping of size name -> {residual_layers, residual_channels, "
                          "dilation_cycle}")
    out: dict[str, dict[str, int]] = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"params: sizes.{name}: must be a mapping, got {spec!r}")
        unknown = sorted(set(spec) - set(SIZE_KEYS))
        missing = sorted(set(SIZE_KEYS) - set(spec))
        if unknown or missing:
            raise ConfigError(f"params: sizes.{name}: unknown {unknown} / missing {missing} keys (need {list(SIZE_KEYS)})")
        for k, v in spec.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"params: sizes.{name}.{k}: expected a positive integer, got {v!r}")
        out[str(name)] = dict(spec)
    return out


def acoustic_sizes_of(params: Params) -> dict[str, dict[str, Any]]:
    # only its shape here: the numbers are checked by the acoustic config, trial by trial, at expansion
    raw = params.extra.get("acoustic_sizes")
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("params: acoustic_sizes: must be a mapping of size name -> {hidden, predictor, "
                          "encoder_layers, decoder_channels, decoder_layers}")
    return raw


def _check_design(d: Any, family: Family, params: Params) -> None:
    """The checks every family's sweep design gets: its name, priors, sizes, seeds and budgets."""
    section = family.design_section
    if not d.name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"params: {section}.name: {d.name!r} may hold letters, digits, - and _ only")
    known = registry.prior_names(family.name)
    bad = [p for p in d.priors if p not in known]
    if bad:
        raise ConfigError(f"params: {section}.priors: {bad} not registered {family.name} priors ({known})")
    sizes = family.sizes(params)
    bad = [z for z in d.sizes if z not in sizes]
    if bad:
        raise ConfigError(f"params: {section}.sizes: {bad} not defined under {family.sizes_section}: "
                          f"(known: {sorted(sizes)})")
    if any(s < 0 for s in d.seeds):
        raise ConfigError(f"params: {section}.seeds: seeds must be >= 0, got {d.seeds}")
    if any(b < 1 for b in d.budgets):
        raise ConfigError(f"params: {section}.budgets: every budget must be >= 1 training step, got {d.budgets}")


def sweep_config(params: Params) -> SweepConfig:
    s = _section(SweepConfig, params.extra.get("sweep"), "sweep")
    if s.backend not in ("ray", "sequential"):
        raise ConfigError(f"params: sweep.backend: {s.backend!r} must be 'ray' or 'sequential'")
    _check_design(s, VOCODER, params)
    if s.cpus_per_trial <= 0:
        raise ConfigError(f"params: sweep.cpus_per_trial: must be > 0, got {s.cpus_per_trial}")
    if s.gpus_per_trial < 0:
        raise ConfigError(f"params: sweep.gpus_per_trial: must be >= 0, got {s.gpus_per_trial}")
    if s.max_concurrent_trials < 1:
        raise ConfigError(f"params: sweep.max_concurrent_trials: must be >= 1, got {s.max_concurrent_trials}")
    if s.max_failures < -1:
        raise ConfigError(f"params: sweep.max_failures: must be >= -1 (-1 = retry forever), got {s.max_failures}")
    if s.num_cpus < 0:
        raise ConfigError(f"params: sweep.num_cpus: must be >= 0 (0 = all cores), got {s.num_cpus}")
    _check_metric_names(s.validation_metrics, "sweep.validation_metrics")
    return s


def acoustic_sweep_config(params: Params) -> AcousticSweepConfig:
    a = _section(AcousticSweepConfig, params.extra.get("acoustic_sweep"), "acoustic_sweep")
    _check_design(a, ACOUSTIC, params)
    return a


def tracking_config(params: Params) -> TrackingConfig:
    t = _section(TrackingConfig, params.extra.get("tracking"), "tracking")
    if t.n_audio_samples < 0:
        raise ConfigError(f"params: tracking.n_audio_samples: must be >= 0, got {t.n_audio_samples}")
    if t.timeout_s <= 0:
        raise ConfigError(f"params: tracking.timeout_s: must be > 0, got {t.timeout_s}")
    return t


def evaluate_config(params: Params) -> EvaluateConfig:
    e = _section(EvaluateConfig, params.extra.get("evaluate"), "evaluate")
    if any(t < 1 for t in e.t_infer):
        raise ConfigError(f"params: evaluate.t_infer: every schedule length must be >= 1, got {e.t_infer}")
    for key in ("n_utterances", "max_frames", "n_audio_examples", "bootstrap_seed"):
        if getattr(e, key) < 0:
            raise ConfigError(f"params: evaluate.{key}: must be >= 0, got {getattr(e, key)}")
    if e.workers < 1:
        raise ConfigError(f"params: evaluate.workers: must be >= 1, got {e.workers}")
    if e.n_boot < 100:
        raise ConfigError(f"params: evaluate.n_boot: must be >= 100 bootstrap resamples, got {e.n_boot}")
    _check_metric_names(e.metrics, "evaluate.metrics")
    return e


def _check_metric_names(names: list[str], key: str) -> None:
    try:
        from eval.registry import METRICS
    except ImportError:  # eval not installed: the stage that scores will say so
        return
    bad = [m for m in names if m not in METRICS]
    if bad:
        raise ConfigError(f"params: {key}: unknown metric(s) {bad} (known: {sorted(METRICS)})")


@dataclass
class Trial:
    """One training run of a sweep: a prior, a named size and a seed, trained to the largest budget.

    The budgets of the design are checkpoints of this one run (its keep_steps), not separate runs:
    a shorter budget's model is a prefix of the longer run, so retraining it would only cost time.
    """

    name: str
    prior: str
    size: str
    seed: int
    budgets: list[int]
    overrides: dict[str, Any]
    params_hash: str
    family: str  # "vocoder" or "acoustic" (priorgrad.core.registry.FAMILIES): which trainer runs it

    @property
    def budget(self) -> int:
        return max(self.budgets)

    @property
    def system(self) -> str:
        return registry.system_of(self.prior, self.family)

    @property
    def dirname(self) -> str:
        # The hash keeps trials of different settings (and code) apart, so a resumed run never mixes them.
        return f"{self.name}-{self.params_hash}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Trial":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


@dataclass
class TrialContext:
    """What every trial of one sweep shares (plain data: it is shipped to Ray workers)."""

    base_params: dict[str, Any]
    features: str
    stats: str
    trials_dir: str
    sweep_id: str
    sweep_name: str
    git_commit: str
    tracking_uri: str | None  # None = tracking off
    experiment: str
    artifact_root: str
    tracking_timeout_s: float
    n_audio_samples: int
    validation_metrics: list[str]
    cpus_per_trial: float
    lock_timeout_s: float = 60.0


@dataclass(frozen=True)
class FamilyTrainer:
    """A family's side of the one trial function (experiments.trial.train_trial): what only it knows.

    Each lives in the family's trial module (experiments/vocoder_trial.py, acoustic_trial.py), which the
    descriptor names as a string: those import the deep-learning stack, this module must not."""

    # (trainer config, ctx, run_dir, tracker, use_ray) -> the trainer's result (checkpoint, kept_checkpoints)
    train: Callable[[Any, TrialContext, Path, Tracker, bool], dict[str, Any]]
    # (ctx, trial, params) -> the MLflow run's description, in words
    describe: Callable[[TrialContext, Trial, Params], str]
    # (ctx, params) -> (dataset name, one row per utterance): the run's training input
    training_input: Callable[[TrialContext, Params], tuple[str, list[dict[str, Any]]]]
    # (checkpoint, ctx, run_dir, tracker, MLflow active) -> None: the final model's listening samples
    samples: Callable[[str, TrialContext, Path, Tracker, bool], None]


@dataclass(frozen=True)
class Family:
    """A model family as the sweep sees it: everything the one expansion, hash and trial function ask of it."""

    name: str                       # its registry family: its priors and system names
    design_section: str             # its design: prior x size x seed x budgets
    design: Callable[[Params], Any]                       # that section, validated
    sizes_section: str              # its named sizes
    sizes: Callable[[Params], dict[str, dict[str, Any]]]  # that section
    trial_keys: tuple[str, ...]     # the dotted keys each trial sets (params.yaml marks them "(per trial)")
    # (prior, size, seed, sorted budgets, sizes) -> the trial's overrides, exactly trial_keys
    overrides: Callable[[str, str, int, list[int], dict[str, dict[str, Any]]], dict[str, Any]]
    identity: Callable[[Params], dict[str, Any]]  # the hash inputs of a trial's settings (code aside)
    fingerprint: str                # the priorgrad.core.fingerprint function naming its training code
    config: Callable[[Params], Any]  # its trainer's config of a trial's params (validates them)
    threads_key: str                # its trainer's thread count (0 = the trial's share of the cores)
    trainer: str                    # "module:attribute" of its FamilyTrainer (imported on use: torch)
    inputs: tuple[tuple[str, str], ...]  # (file under --features or "" for --stats itself, what it is)
    validation_metrics: Callable[[Any], list[str]]  # the eval metrics its trainer's validation adds
    summary: Callable[[Any, int], str]  # (design, number of trials) -> the MLflow experiment's description


def trial_params(params: Params, overrides: dict[str, Any]) -> Params:
    """The base params with a trial's dotted overrides applied (validated again by the core).

    Keys may be nested ("acoustic.model.prior"); each must already exist, so a typo cannot add one."""
    d = params.to_dict()
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        cur = d
        for k in parents:
            cur = cur[k]
        if key not in cur:
            raise ConfigError(f"trial override {dotted}: not a key of params.yaml")
        cur[key] = copy.deepcopy(value)
    return Params.from_dict(d, source=f"trial overrides {overrides}")


def prior_section_for_hash(prior: dict[str, Any]) -> dict[str, Any]:
    """The ``prior`` section as the trial's training identity sees it: a prior's own options subsection
    (``prior.<name>``, e.g. ``prior.specgrad``) counts only for that prior, and the keys its registry entry
    ``ignores`` (SpecGrad: std_min, max_energy) not at all, so changing one prior's options retrains only
    the trials that read them (DiffWave's and PriorGrad's hashes stay what they were before SpecGrad)."""
    name = prior["type"]
    ignores = set(registry.prior(name, "vocoder").ignores)
    return {k: v for k, v in prior.items()
            if k not in ignores and not (isinstance(v, dict) and k != name and k in registry.prior_names("vocoder"))}


def vocoder_identity(params: Params) -> dict[str, Any]:
    """A vocoder trial's training sections, without the speed-only keys and other priors' options."""
    d = params.to_dict()
    d["train"] = {k: v for k, v in d["train"].items() if k not in ("threads", "device") + SPEED_ONLY_TRAIN}
    d["model"] = {k: v for k, v in d["model"].items() if k not in SPEED_ONLY_MODEL}
    d["prior"] = prior_section_for_hash(d["prior"])
    return {k: d.get(k) for k in TRAINING_SECTIONS}


def acoustic_identity(params: Params) -> dict[str, Any]:
    """An acoustic trial's: corpus, audio, the acoustic sections that shape the data and the training (not
    acoustic.infer, not speed-only keys), and the numbers of its size."""
    d = params.to_dict()
    ac = copy.deepcopy(d["acoustic"])
    ac.pop("infer", None)
    ac["train"] = {k: v for k, v in ac["train"].items() if k not in SPEED_ONLY_ACOUSTIC_TRAIN}
    ac["features"]["mas"] = {k: v for k, v in ac["features"]["mas"].items() if k not in SPEED_ONLY_MAS}
    return {"corpus": d["corpus"], "audio": d["audio"], "acoustic": ac,
            "size": d["acoustic_sizes"][ac["model"]["size"]]}


def acoustic_trial_config(params: Params) -> Any:
    """The acoustic trainer's config of a trial's params, holding only the trial's own size (its checkpoint
    then carries nothing that another size's edit could make it refuse to resume)."""
    from priorgrad.acoustic.model_config import AcousticConfig

    d = params.to_dict()
    size = d["acoustic"]["model"]["size"]
    d["acoustic_sizes"] = {size: d["acoustic_sizes"][size]}
    return AcousticConfig.from_dict(d, source="acoustic trial params")


def _vocoder_overrides(prior: str, size: str, seed: int, budgets: list[int],
                       sizes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"prior.type": prior, "train.seed": seed, "train.max_steps": budgets[-1], "train.keep_steps": budgets,
            **{f"model.{k}": v for k, v in sizes[size].items()}}


def _acoustic_overrides(prior: str, size: str, seed: int, budgets: list[int],
                        sizes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"acoustic.model.prior": prior, "acoustic.model.size": size, "acoustic.train.seed": seed,
            "acoustic.train.max_steps": budgets[-1], "acoustic.train.keep_steps": budgets}


def _vocoder_summary(s: SweepConfig, n: int) -> str:
    return (f"PriorGrad vs DiffWave sweep {s.name}: {n} trials (prior x size x seed x budget), one run each; "
            f"curves valid/* and train/loss, test scores test/T<T>/<metric>.")


def _acoustic_summary(a: AcousticSweepConfig, n: int) -> str:
    return (f"PriorGrad acoustic model sweep {a.name}: {n} trials (prior {'/'.join(a.priors)} x decoder "
            f"size x seed), one run each to {max(a.budgets)} steps with a checkpoint kept at every budget "
            f"({', '.join(map(str, sorted(a.budgets)))}); curves valid/mel_l1 (E1), valid/prior_draw_mel_l1 (each "
            f"system's floor) and valid/floor_mel_l1 (mu alone, the mean reference), train/*; test scores added by "
            f"the acoustic evaluate stage.")


VOCODER = Family(
    name="vocoder", design_section="sweep", design=sweep_config, sizes_section="sizes", sizes=sizes_of,
    trial_keys=TRIAL_KEYS, overrides=_vocoder_overrides, identity=vocoder_identity, fingerprint="training_fingerprint",
    config=lambda p: p,  # the vocoder trainer takes the params themselves
    threads_key="train.threads", trainer="experiments.vocoder_trial:TRAINER",
    inputs=(("manifest.jsonl", "feature manifest"), ("", "prior statistics")),
    validation_metrics=lambda s: list(s.validation_metrics), summary=_vocoder_summary)
ACOUSTIC = Family(
    name="acoustic", design_section="acoustic_sweep", design=acoustic_sweep_config,
    sizes_section="acoustic_sizes", sizes=acoustic_sizes_of,
    trial_keys=ACOUSTIC_TRIAL_KEYS, overrides=_acoustic_overrides, identity=acoustic_identity,
    fingerprint="acoustic_training_fingerprint", config=acoustic_trial_config,
    threads_key="acoustic.train.threads", trainer="experiments.acoustic_trial:TRAINER",
    inputs=(("manifest.jsonl", "acoustic feature manifest"), ("", "phoneme statistics")),
    validation_metrics=lambda a: [],  # its trainer computes its E1 curves itself
    summary=_acoustic_summary)
FAMILIES = {f.name: f for f in (VOCODER, ACOUSTIC)}


def family_of(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"family {name!r} is not one of {list(FAMILIES)}")
    return FAMILIES[name]


def training_hash(params: Params, family: str = "vocoder") -> str:
    """Identity of a trial's result: its family's training settings and the code that trains it."""
    import priorgrad.core.fingerprint as fp  # looked up on call: tests patch the fingerprint functions

    fam = family_of(family)
    return params_hash({**fam.identity(params), "code": getattr(fp, fam.fingerprint)()})


def expand_trials(params: Params, family: str = "vocoder") -> list[Trial]:
    """prior x size x seed, in a stable order (sizes outermost, priors innermost); each to the top budget."""
    fam = family_of(family)
    d = fam.design(params)
    sizes = fam.sizes(params)
    budgets = sorted(d.budgets)
    trials = []
    for size, seed, prior in itertools.product(d.sizes, d.seeds, d.priors):
        overrides = fam.overrides(prior, size, seed, budgets, sizes)
        assert set(overrides) == set(fam.trial_keys), "trial_keys must list every per-trial key"
        tp = trial_params(params, overrides)
        fam.config(tp)  # the trainer's own validation of every trial's settings, before anything trains
        name = f"{registry.system_of(prior, fam.name)}-{size}-s{seed}"
        trials.append(Trial(name, prior, size, seed, budgets, overrides, training_hash(tp, fam.name), fam.name))
    return trials


def sweep_id(name: str, trials: list[Trial]) -> str:
    """Identifies one sweep: its name and its trials' settings. Names the MLflow and the Tune experiments."""
    return params_hash({"name": name, "trials": sorted(t.dirname for t in trials)})


def project_root(start: Path | None = None) -> Path:
    """The directory holding dvc.yaml / params.yaml (DVC runs stages there)."""
    p = (start or Path.cwd()).resolve()
    for cand in (p, *p.parents):
        if (cand / "dvc.yaml").exists() or (cand / "params.yaml").exists():
            return cand
    return p
