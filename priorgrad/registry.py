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
    role: str        # "proposed" (the paper's method) or "baseline"
    builder: str     # "module:function"(prior_cfg, stats, preset) -> a Prior; imported lazily
    needs_stats: bool  # whether the prior needs training-set statistics (prior_stats stage)
    doc: str         # one line: what the prior is, for docs and the report's legend
    floor: str       # the prior's own sample without denoising (the floor every system is shown beside)


PRIORS: dict[str, PriorEntry] = {e.name: e for e in (
    PriorEntry(name="standard", system="diffwave", label="DiffWave (N(0, I))", short="DiffWave",
               colour="#4C72B0", family="vocoder", role="baseline",
               builder="priorgrad.prior:build_standard", needs_stats=False,
               doc="DiffWave's isotropic prior N(0, I)", floor="n"),
    PriorEntry(name="energy", system="priorgrad", label="PriorGrad (energy prior)", short="PriorGrad",
               colour="#DD8452", family="vocoder", role="proposed",
               builder="priorgrad.prior:build_energy", needs_stats=True,
               doc="PriorGrad's N(0, diag(sigma^2)), sigma following the mel frame energy", floor="sigma * n"),
)}


class UnknownName(ValueError):
    """A prior or system name that is not registered; the message lists the known ones."""


def prior(name: str) -> PriorEntry:
    try:
        return PRIORS[name]
    except KeyError:
        raise UnknownName(f"unknown prior {name!r} (registered: {sorted(PRIORS)})") from None


def system(name: str) -> PriorEntry:
    for e in PRIORS.values():
        if e.system == name:
            return e
    raise UnknownName(f"unknown system {name!r} (registered: {sorted(e.system for e in PRIORS.values())})")


def prior_names(family: str | None = None) -> list[str]:
    return [e.name for e in PRIORS.values() if family is None or e.family == family]


def system_names(family: str | None = None) -> list[str]:
    """Systems in registry order (baselines first within a family, as tables show them)."""
    entries = [e for e in PRIORS.values() if family is None or e.family == family]
    return [e.system for e in sorted(entries, key=lambda e: (e.family, e.role != "baseline"))]


def system_of(prior_name: str) -> str:
    return prior(prior_name).system


def baseline_and_proposed(family: str = "vocoder") -> tuple[str, str]:
    """(baseline system, proposed system) of a family: the pair every headline comparison is about."""
    entries = [e for e in PRIORS.values() if e.family == family]
    base = [e.system for e in entries if e.role == "baseline"]
    prop = [e.system for e in entries if e.role == "proposed"]
    if len(base) != 1 or len(prop) != 1:
        raise UnknownName(f"family {family!r} needs exactly one baseline and one proposed system, "
                          f"has {base} / {prop}")
    return base[0], prop[0]


def builder(name: str) -> Callable[..., Any]:
    module, _, func = prior(name).builder.partition(":")
    return getattr(importlib.import_module(module), func)


def builder_modules() -> list[str]:
    """Modules the registry imports lazily (the code-fingerprint and DVC-deps checks follow them)."""
    return sorted({e.builder.partition(":")[0] for e in PRIORS.values()})
