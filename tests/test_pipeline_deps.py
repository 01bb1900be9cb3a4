"""dvc.yaml lists, for every stage, each project module the stage's code reaches (so a code change
re-runs the stage), and the code fingerprints follow the same import walk."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from priorgrad.core.fingerprint import (ACOUSTIC_EXPERIMENT_MODULES, NO_EFFECT, SHARED_TRIAL_MODULES, VOCODER_TRIAL_MODULES,
                                   acoustic_modules, code_fingerprint, files_of, module_file, reachable)
from support.project import ROOT

# The module each stage's command runs (a `priorgrad` subcommand: the module implementing it).
STAGE_ENTRIES = {
    "corpus": ["experiments.corpus"],
    "preprocess": ["priorgrad.vocoder.preprocess"],
    "prior_stats": ["priorgrad.vocoder.preprocess", "priorgrad.vocoder.prior"],
    "sweep": ["experiments.sweep"],
    "evaluate": ["experiments.evaluate"],
    "report": ["reports.__main__"],
    # the acoustic side: these stages run the acoustic package, so they do not skip it
    "acoustic_features": ["priorgrad.acoustic.preprocess", "priorgrad.acoustic.data_config"],
    "acoustic_prior_stats": ["priorgrad.acoustic.phoneme_stats", "priorgrad.acoustic.data_config"],
    "acoustic_sweep": ["experiments.sweep"],
    "acoustic_evaluate": ["experiments.acoustic_evaluate"],
}


# The vocoder's stages reach the acoustic code only through the registry's lazy builder names and the
# sweep spec's family descriptors, never running it (priorgrad.core.fingerprint.acoustic_modules): they skip it.
VOCODER_STAGES = {"corpus", "preprocess", "prior_stats", "sweep", "evaluate"}


def missing_deps(stages: dict, root: Path = ROOT) -> dict[str, list[str]]:
    """stage -> project source files its code reaches that no dep (file or enclosing folder) covers."""
    out = {}
    for stage, entries in STAGE_ENTRIES.items():
        deps = [Path(d) for d in stages[stage].get("deps", [])]
        skip = NO_EFFECT | acoustic_modules(root) if stage in VOCODER_STAGES else NO_EFFECT
        need = [p.relative_to(root) for p in files_of(reachable(entries, root, skip), root)]
        lacking = [str(f) for f in need if not any(f == d or d in f.parents for d in deps)]
        if lacking:
            out[stage] = lacking
    return out


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_every_stage_lists_the_code_it_runs() -> None:
    assert set(STAGE_ENTRIES) == set(_stages()), "a new stage needs its entry module here"
    assert missing_deps(_stages()) == {}


@pytest.mark.parametrize("stage, dep", [("evaluate", "priorgrad/core/diffusion.py"), ("sweep", "eval/registry.py"),
                                        ("evaluate", "experiments/synthesis.py"), ("report", "reports/claims.py"),
                                        ("acoustic_sweep", "experiments/acoustic_trial.py"),
                                        ("acoustic_sweep", "priorgrad/acoustic")])
def test_removing_a_dep_is_caught(stage: str, dep: str) -> None:
    stages = copy.deepcopy(_stages())
    assert dep in stages[stage]["deps"]
    stages[stage]["deps"].remove(dep)
    lacking = missing_deps(stages).get(stage, [])
    assert dep in lacking or any(Path(f).is_relative_to(dep) for f in lacking)


def test_no_effect_modules_exist_and_are_not_followed() -> None:
    for mod in NO_EFFECT - {"priorgrad.progress"}:
        assert module_file(mod) is not None, f"NO_EFFECT names {mod}, which does not exist"
    assert "priorgrad.core.tracking" not in reachable(["priorgrad.vocoder.train"])
    # the fingerprint module names cache keys: editing its lists must not change every metric's fingerprint
    assert "priorgrad.core.fingerprint" not in reachable(["eval.registry", "experiments.spec"])
    # function-level imports and lazy "module:function" registry entries are followed
    assert "priorgrad.vocoder.infer" in reachable(["experiments.synthesis"])
    assert "eval.metrics.perceptual" in reachable(["eval.runner"])
    assert "priorgrad.vocoder.prior" in reachable(["priorgrad.core.registry"])


def test_fingerprint_module_lists_name_existing_modules_and_every_acoustic_one() -> None:
    """The explicit lists of priorgrad.core.fingerprint: each name is a module, and every experiments/acoustic*.py
    is listed, so a new acoustic module cannot silently enter the vocoder's fingerprints."""
    for mod in (*SHARED_TRIAL_MODULES, *VOCODER_TRIAL_MODULES, *ACOUSTIC_EXPERIMENT_MODULES):
        assert module_file(mod) is not None, f"priorgrad.core.fingerprint names {mod}, which does not exist"
    on_disk = {f"experiments.{p.stem}" for p in (ROOT / "experiments").glob("acoustic*.py")}
    assert on_disk <= set(ACOUSTIC_EXPERIMENT_MODULES) and set(ACOUSTIC_EXPERIMENT_MODULES) <= acoustic_modules()


def test_fingerprint_changes_with_a_reached_source_only(tmp_path: Path) -> None:
    """A copy of the project: editing the sampler changes the synthesis fingerprint; editing tracking does not."""
    import shutil

    for pkg in ("priorgrad", "eval", "experiments"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    before = code_fingerprint(("priorgrad.vocoder.infer",), tmp_path)
    with open(tmp_path / "priorgrad" / "core" / "tracking.py", "a") as f:
        f.write("\n# a comment in a module that cannot change outputs\n")
    assert code_fingerprint(("priorgrad.vocoder.infer",), tmp_path) == before
    with open(tmp_path / "priorgrad" / "core" / "diffusion.py", "a") as f:
        f.write("\n# the sampler changed\n")
    assert code_fingerprint(("priorgrad.vocoder.infer",), tmp_path) != before
