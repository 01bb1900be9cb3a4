"""The one registry of priors and the systems they make (torch-free).

A *prior* is what ``prior.type`` names; a *system* is the trained model family a report shows (DiffWave
is the vocoder with the standard prior, PriorGrad the vocoder with the energy prior). Config validation,
the sweep, the evaluate stage and the reports all read this table, so adding a prior means adding one
entry here and its own module (which provides the builder named by ``builder``); nothing else lists
prior or system names.

``builder`` is a ``"module:function"`` path imported lazily, so this module (and everything that only
needs names, labels and colours: config validation, reports) never imports torch.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class PriorEntry:
    name: str        # the value of prior.type (and sweep.priors entries)
    system: str      # the system a model trained with this prior is reported as
    label: str       # human-readable name in tables, figures and MLflow run descriptions
    short: str       # short label for table rows
    colour: str      # one colour per system in every figure
    family: str      # "vocoder" (mel -> waveform) or "acoustic" (text -> mel)
    role: str        # "proposed" (the paper's method), "baseline", or "alternative" (another data-dependent
                     # prior compared with both, e.g. SpecGrad; never the headline pair)
    builder: str     # "module:function" building the family's prior object; imported lazily
    needs_stats: bool  # whether the prior needs training-set statistics (prior_stats stage)
    doc: str         # one line: what the prior is, for docs and the report's legend
    floor: str       # the prior's own sample without denoising (the floor every system is shown beside)
    learns_mean: bool = False  # acoustic: the mean is learned by the network (a mu head and a prior loss term)
    ignores: tuple[str, ...] = ()  # prior.* keys this prior never reads: left out of its trials' training hash
                                   # (experiments.spec.training_hash), so changing them does not retrain it
    abbrev: str = ""  # the shortest name, in the claims' "PG - DW"-style differences ("" = the system name)


ENTRIES: tuple[PriorEntry, ...] = (
    # vocoder (mel -> waveform); builder(prior_cfg, stats, preset) -> priorgrad.vocoder.prior.Prior, whose
    # condition(mels, hop_length, n_samples, device) gives the batch's PriorDraw (priorgrad/core/prior_contract.py)
    PriorEntry(name="standard", system="diffwave", abbrev="DW", label="DiffWave (N(0, I))", short="DiffWave",
               colour="#4C72B0", family="vocoder", role="baseline",
               builder="priorgrad.vocoder.prior:build_standard", needs_stats=False,
               doc="DiffWave's isotropic prior N(0, I)", floor="n"),
    PriorEntry(name="energy", system="priorgrad", abbrev="PG", label="PriorGrad (energy prior)", short="PriorGrad",
               colour="#DD8452", family="vocoder", role="proposed",
               builder="priorgrad.vocoder.prior:build_energy", needs_stats=True,
               doc="PriorGrad's N(0, diag(sigma^2)), sigma following the mel frame energy", floor="sigma * n"),
    # SpecGrad (docs/specgrad.md): not in the paper; an alternative data-dependent prior compared with both
    PriorEntry(name="specgrad", system="specgrad", abbrev="SG", label="SpecGrad (filtered noise)", short="SpecGrad",
               colour="#55A868", family="vocoder", role="alternative",
               builder="priorgrad.vocoder.specgrad:build_specgrad", needs_stats=False,
               doc="SpecGrad's N(0, L L^T), L = ISTFT(m * STFT(.)), m a minimum-phase filter per mel frame from "
                   "the mel's cepstral envelope", floor="L n", ignores=("std_min", "max_energy")),
    # acoustic model (text -> mel), spec priorgrad-acoustic.md section 8; the name is acoustic.model.prior;
    # builder(model_cfg, table) -> the acoustic prior object (priorgrad/acoustic/priors.py: frame_prior, moments,
    # condition -> PriorDraw) the trainer and sampler use. Each acoustic system's floor is its own prior draw (the sampler's start x_S,
    # spec section 11, as the vocoder's); mu_ph alone is a separate mean (regression) reference, never a floor.
    PriorEntry(name="standard", system="b1-normal", abbrev="B1", label="B1: N(0, I) decoder", short="B1 N(0, I)",
               colour="#4C72B0", family="acoustic", role="baseline",
               builder="priorgrad.acoustic.priors:build_standard", needs_stats=False,
               doc="the same decoder with the standard prior N(0, I) (PriorGrad's acoustic baseline)",
               floor="n"),
    PriorEntry(name="trainable", system="b2-trainable", abbrev="B2", label="B2: trainable prior (Grad-TTS-style)",
               short="B2 trainable", colour="#8172B3", family="acoustic", role="baseline",
               builder="priorgrad.acoustic.priors:build_trainable", needs_stats=False,
               doc="N(mu_theta, I), mu_theta = Linear(H -> 80) of the encoder output, with the prior loss",
               floor="mu_theta + n", learns_mean=True),
    PriorEntry(name="phoneme", system="priorgrad-am", abbrev="PG-AM", label="PriorGrad (phoneme prior)", short="PriorGrad-AM",
               colour="#DD8452", family="acoustic", role="proposed",
               builder="priorgrad.acoustic.priors:build_phoneme", needs_stats=True,
               doc="PriorGrad's N(mu_ph, diag(s_ph^2)) from phoneme-level statistics of the training mels",
               floor="mu_ph + s_ph n"),
)

FAMILIES = ("vocoder", "acoustic")

# The comparisons each family's verdicts are about, (treatment, baseline): the first is the headline one
# (the paper's claims 1-4); the acoustic family's second is claim 5 (phoneme prior vs trainable prior); the
# vocoder's SpecGrad pairs are compared (and SpecGrad - PriorGrad claimed) only when SpecGrad was run.
COMPARISONS: dict[str, list[tuple[str, str]]] = {
    "vocoder": [("priorgrad", "diffwave"), ("specgrad", "diffwave"), ("specgrad", "priorgrad")],
    "acoustic": [("priorgrad-am", "b1-normal"), ("priorgrad-am", "b2-trainable")],
}

# Prior names are unique within a family (they are that family's config values), system names everywhere.
_BY_FAMILY: dict[str, dict[str, PriorEntry]] = {f: {e.name: e for e in ENTRIES if e.family == f} for f in FAMILIES}
assert sum(map(len, _BY_FAMILY.values())) == len(ENTRIES), "a prior name is registered twice in one family"
assert len({e.system for e in ENTRIES}) == len(ENTRIES), "a system name is registered twice"
assert all(s in {e.system for e in ENTRIES if e.family == f} for f, pairs in COMPARISONS.items()
           for pair in pairs for s in pair), "COMPARISONS names a system outside its family"

# The vocoder priors by name (prior.type); kept as the module's historical table.
PRIORS: dict[str, PriorEntry] = _BY_FAMILY["vocoder"]


class UnknownName(ValueError):
    """A prior or system name that is not registered; the message lists the known ones."""


def _entries() -> list[PriorEntry]:
    """Every registered entry, read from the per-family tables (so a test may add one to a table)."""
    return [e for f in FAMILIES for e in _BY_FAMILY[f].values()]


def _family(family: str) -> dict[str, PriorEntry]:
    if family not in _BY_FAMILY:
        raise UnknownName(f"unknown family {family!r} (registered: {list(FAMILIES)})")
    return _BY_FAMILY[family]


def priors(family: str = "vocoder") -> dict[str, PriorEntry]:
    """A family's priors by name."""
    return dict(_family(family))


def prior(name: str, family: str = "vocoder") -> PriorEntry:
    try:
        return _family(family)[name]
    except KeyError:
        raise UnknownName(f"unknown {family} prior {name!r} (registered: {sorted(_family(family))})") from None


def system(name: str) -> PriorEntry:
    for e in _entries():
        if e.system == name:
            return e
    raise UnknownName(f"unknown system {name!r} (registered: {sorted(e.system for e in _entries())})")


def prior_names(family: str | None = None) -> list[str]:
    return [e.name for e in _entries() if family is None or e.family == family]


def system_names(family: str | None = None) -> list[str]:
    """Systems in registry order (baselines first, then the proposed, then alternatives, as tables show them)."""
    entries = [e for e in _entries() if family is None or e.family == family]
    rank = {"baseline": 0, "proposed": 1}
    return [e.system for e in sorted(entries, key=lambda e: (FAMILIES.index(e.family), rank.get(e.role, 2)))]


def system_of(prior_name: str, family: str = "vocoder") -> str:
    return prior(prior_name, family).system


def comparisons(family: str = "vocoder") -> list[tuple[str, str]]:
    """(treatment system, baseline system) pairs a family's verdicts are about; the headline one first."""
    _family(family)
    return list(COMPARISONS[family])


def baseline_and_proposed(family: str = "vocoder") -> tuple[str, str]:
    """(baseline system, proposed system) of a family's headline comparison."""
    treatment, baseline = comparisons(family)[0]
    return baseline, treatment


def builder(name: str, family: str = "vocoder") -> Callable[..., Any]:
    module, _, func = prior(name, family).builder.partition(":")
    return getattr(importlib.import_module(module), func)


def builder_modules(family: str | None = None) -> list[str]:
    """Modules the registry imports lazily (the code-fingerprint and DVC-deps checks follow them)."""
    return sorted({e.builder.partition(":")[0] for e in _entries() if family is None or e.family == family})


# Mel -> waveform renderers another family may use by name, without importing the family that provides it
# (the acoustic model renders its mels with a trained vocoder): "module:function" imported lazily.
RENDERERS: dict[str, str] = {"priorgrad": "priorgrad.vocoder.infer:mel_renderer"}


def renderer(name: str) -> Callable[..., Any]:
    """renderer(checkpoint, steps, seed, device) -> (mel, key) -> waveform."""
    if name not in RENDERERS:
        raise UnknownName(f"unknown mel renderer {name!r} (registered: {sorted(RENDERERS)})")
    module, _, func = RENDERERS[name].partition(":")
    return getattr(importlib.import_module(module), func)
