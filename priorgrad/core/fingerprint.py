"""Code fingerprints: a hash of the project sources that determine a result.

A cached result (a finished trial, a synthesised test set, a score) is reused only when its inputs,
its settings AND the code that made it are unchanged. The code is found statically: the project
modules an entry module reaches through its imports (``ast``, so nothing is imported), plus modules
named in ``"package.module:function"`` strings (the lazily imported builders of the prior and metric
registries). The same walk backs the test that dvc.yaml lists every module a stage runs.

Modules that cannot change a result (logging, progress bars, experiment tracking, command-line
parsing) are listed in ``NO_EFFECT``: editing them must not throw away hours of training.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # priorgrad/core/fingerprint.py -> the project root
PACKAGES = ("priorgrad", "eval", "experiments", "reports")
_LAZY = re.compile(r"^((?:%s)(?:\.\w+)+):\w+$" % "|".join(PACKAGES))

# Modules whose code cannot change a trained model, a synthesised waveform or a score. Each is here for
# a reason: tracking/logging only record, the CLI only parses arguments, progress only draws bars.
NO_EFFECT = frozenset({
    "priorgrad.core.tracking",      # the Tracker interface: records metrics, never feeds them back
    "priorgrad.progress",      # progress bars
    "priorgrad.core.logs",          # logging set-up
    "priorgrad.cli",           # argument parsing
    "experiments.trackers",    # MLflow / Ray Tune trackers
    # this module: it names cache keys, never computes a result; without it here, editing its lists would
    # change every fingerprint that reaches it (the training hash, each metric's, through eval.registry)
    "priorgrad.core.fingerprint",
})


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The source file of a project module (package -> its __init__.py), or None when not a project module."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _resolve_from(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    parts = module.split(".")
    keep = len(parts) - node.level + (1 if is_package else 0)
    base = ".".join(parts[:keep])
    return f"{base}.{node.module}" if node.module else base


@functools.lru_cache(maxsize=None)
def direct_imports(name: str, root: Path = ROOT) -> frozenset[str]:
    """Project modules ``name`` imports anywhere in its body (function-level imports included)."""
    path = module_file(name, root)
    if path is None:
        return frozenset()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(name, node, is_package)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            m = _LAZY.match(node.value)
            if m:
                found.add(m.group(1))
    out = set()
    for mod in found:
        # importing a.b.c runs a/__init__ and a/b/__init__ too
        parts = mod.split(".")
        for i in range(1, len(parts) + 1):
            sub = ".".join(parts[:i])
            if module_file(sub, root) is not None:
                out.add(sub)
    out.discard(name)
    return frozenset(out)


def reachable(entries: tuple[str, ...] | list[str], root: Path = ROOT, skip: frozenset[str] = NO_EFFECT
              ) -> set[str]:
    """Every project module the entries reach (entries included), not following modules in ``skip``."""
    seen: set[str] = set()
    todo = [e for e in entries]
    while todo:
        mod = todo.pop()
        if mod in seen or mod in skip:
            continue
        if module_file(mod, root) is None:
            raise ValueError(f"{mod}: not a module of this project (under {root})")
        seen.add(mod)
        todo.extend(direct_imports(mod, root) - seen)
    return seen


def files_of(modules: set[str], root: Path = ROOT) -> list[Path]:
    return sorted({p for m in modules if (p := module_file(m, root)) is not None})


def code_fingerprint(entries: tuple[str, ...] | list[str], root: Path = ROOT,
                     skip: frozenset[str] = NO_EFFECT) -> str:
    """sha256 (16 hex) of the sources reachable from the entries: their paths and bytes."""
    h = hashlib.sha256()
    for path in files_of(reachable(tuple(entries), root, skip), root):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


# What each cached result depends on. Tests patch these functions to simulate a code change.
# The sweep's trial code both families run: the one trial function (experiments.trial) and the one sweep
# spec (experiments.spec: the sections, the family descriptors, the trial expansion and identity). Both belong
# to both families' fingerprints: editing either retrains the trials of both.
SHARED_TRIAL_MODULES = ("experiments.trial", "experiments.spec")
# Each family's own side of a trial (its FamilyTrainer). The spec names both by string, so a plain walk from
# either family reaches both: each family's fingerprint skips the other's.
VOCODER_TRIAL_MODULES = ("experiments.vocoder_trial",)
# The acoustic model's modules under experiments/, by name (a new one must be added here, and
# tests/test_pipeline_deps.py says so): its trial side and its evaluate stage.
ACOUSTIC_EXPERIMENT_MODULES = ("experiments.acoustic_trial", "experiments.acoustic_evaluate",
                               "experiments.acoustic_synthesis", "experiments.acoustic_eval_config",
                               "experiments.acoustic_eval_jobs", "experiments.acoustic_eval_scoring",
                               "experiments.acoustic_eval_outputs")

# A vocoder trial: the trainer (model, diffusion, prior, data, validation sampler), its trial side with its
# validation hook (eval metrics) and the shared trial code. The eval package's aggregation, cache and file
# helpers do not enter a validation score, so editing them keeps the trials.
TRAINING_ENTRIES = ("priorgrad.vocoder.train", *VOCODER_TRIAL_MODULES, *SHARED_TRIAL_MODULES)
TRAINING_SKIP = NO_EFFECT | {"eval.stats", "eval.cache", "eval.files"}
# A synthesised test set: the sampler, the model and the prior, rebuilt from the checkpoint.
SYNTHESIS_ENTRIES = ("priorgrad.vocoder.infer",)


def acoustic_modules(root: Path = ROOT) -> frozenset[str]:
    """The acoustic model's own modules: the priorgrad.acoustic package and ACOUSTIC_EXPERIMENT_MODULES.

    The registry names the builders of both families and the sweep spec names both trainers, so a plain
    walk from the vocoder's entries reaches the acoustic code; no vocoder result depends on it, so the
    vocoder's fingerprints skip it (an acoustic edit must not retrain the vocoder)."""
    return family_package(root, "acoustic") | frozenset(ACOUSTIC_EXPERIMENT_MODULES)


def family_package(root: Path, family: str) -> frozenset[str]:
    """The modules of one family's package, priorgrad/<family>/."""
    return frozenset({f"priorgrad.{family}." + p.stem for p in (root / "priorgrad" / family).glob("*.py")
                      if p.stem != "__init__"} | {f"priorgrad.{family}"})


# An acoustic trial: the acoustic trainer (model, diffusion, prior table, data, validation sampler), its
# trial side and the shared trial code; not the vocoder's trial side (its eval validation hook and audio
# samples enter no acoustic model's weights or curves), nor the eval metrics (the spec only checks the
# vocoder's metric names against eval.registry; the acoustic trainer scores its E1 curves itself). The
# shared modules the acoustic trainer imports (priorgrad.core.runtime, the training runtime both families run on; the diffusion maths) are
# followed: editing them retrains both families.
ACOUSTIC_TRAINING_ENTRIES = ("priorgrad.acoustic.train", "experiments.acoustic_trial", *SHARED_TRIAL_MODULES)
ACOUSTIC_TRAINING_SKIP = TRAINING_SKIP | frozenset(VOCODER_TRIAL_MODULES) | {"eval.registry"}
# The registry names the vocoder's prior builders and its mel renderer, so a plain walk from the acoustic
# entries reaches priorgrad/vocoder/; no acoustic model's weights or mels depend on it (the acoustic family
# imports the core only), so the acoustic fingerprints skip the vocoder package: a vocoder edit must not
# retrain the acoustic model. Rendering a mel with a trained vocoder is keyed by its own fingerprint
# (experiments.acoustic_synthesis follows the renderer).


def training_fingerprint(root: Path = ROOT) -> str:
    return code_fingerprint(TRAINING_ENTRIES, root, skip=TRAINING_SKIP | acoustic_modules(root))


def acoustic_training_fingerprint(root: Path = ROOT) -> str:
    """The acoustic trainer's code (the acoustic sweep's trial identity; no vocoder trial depends on it)."""
    return code_fingerprint(ACOUSTIC_TRAINING_ENTRIES, root, skip=ACOUSTIC_TRAINING_SKIP | family_package(root, "vocoder"))


def synthesis_fingerprint() -> str:
    return code_fingerprint(SYNTHESIS_ENTRIES, skip=NO_EFFECT | acoustic_modules())


# The acoustic side's synthesised mels: the sampler, the model and the priors, rebuilt from the checkpoint.
ACOUSTIC_SYNTHESIS_ENTRIES = ("priorgrad.acoustic.synthesize",)


def acoustic_synthesis_fingerprint() -> str:
    return code_fingerprint(ACOUSTIC_SYNTHESIS_ENTRIES, skip=NO_EFFECT | family_package(ROOT, "vocoder"))
