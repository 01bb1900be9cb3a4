"""The shared training runtime (priorgrad/core/runtime.py): family-neutral, in both families' code fingerprints,
and its loop (cadence, budget ladder, rotation, resume, NaN stop) on a toy family with no data."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from priorgrad.core import runtime
from priorgrad.core.checkpoint import load
from priorgrad.core.fingerprint import direct_imports
from priorgrad.core.runtime import FamilyTrainer, TrainingDiverged, kept_checkpoint, step_generator

from support.core import ROOT

# The core modules the runtime builds on (tests/test_core_layout.py holds every package to its floor).
CORE = {"priorgrad", "priorgrad.core", "priorgrad.core.checkpoint", "priorgrad.core.fileio", "priorgrad.core.logs",
        "priorgrad.core.schema", "priorgrad.core.tracking"}
FAMILY = ("priorgrad.acoustic", "priorgrad.vocoder")


def test_runtime_imports_no_family_module() -> None:
    # statically: every project module priorgrad/core/runtime.py names (function-level imports included)
    assert direct_imports("priorgrad.core.runtime") <= CORE, sorted(direct_imports("priorgrad.core.runtime") - CORE)
    # and at run time: importing it loads no family module
    code = ("import sys, priorgrad.core.runtime; print('\\n'.join(m for m in sys.modules if m.startswith('priorgrad')))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert not [m for m in loaded.stdout.split() if m.startswith(FAMILY)], loaded.stdout


def test_a_runtime_edit_changes_both_families_training_fingerprints(tmp_path: Path) -> None:
    from priorgrad.core.fingerprint import acoustic_training_fingerprint, training_fingerprint

    for pkg in ("priorgrad", "eval", "experiments"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    v0, a0 = training_fingerprint(tmp_path), acoustic_training_fingerprint(tmp_path)
    with open(tmp_path / "priorgrad" / "core" / "runtime.py", "a") as f:
        f.write("\n# edited\n")
    assert training_fingerprint(tmp_path) != v0 and acoustic_training_fingerprint(tmp_path) != a0


class _Settings:
    max_steps, seed, device, threads, precision, compile, deterministic = 6, 0, "cpu", 0, "fp32", False, False
    log_every, validate_every, checkpoint_every, keep_checkpoints, keep_steps = 2, 3, 4, 1, [5]

    def __init__(self, **over: Any):
        self.__dict__.update(over)


class _Toy(FamilyTrainer):
    """A linear regression family: the smallest thing the runtime can train."""

    resumable = frozenset({"max_steps"})
    headline = "valid/mse"

    def __init__(self, settings: _Settings, run_dir: Path, lr: float = 0.1):
        super().__init__(settings, run_dir, progress=False)
        self.lr = lr
        torch.manual_seed(settings.seed)
        self.model = torch.nn.Linear(3, 1)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)

    def config(self) -> dict[str, Any]:
        return {"max_steps": self.settings.max_steps, "lr": self.lr}

    def params_hash(self) -> str:
        return "toy"

    def train_step(self) -> float:
        x = torch.randn(8, 3, generator=step_generator(self.settings.seed, self.step))
        loss = ((self.model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        value = float(loss.detach())
        self.check_finite(value)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return value

    def validate(self) -> dict[str, float]:
        return {"valid/mse": float(self.model.weight.detach().sub(1).pow(2).mean())}

    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])


def test_fit_logs_validates_and_checkpoints_on_its_cadence(tmp_path: Path) -> None:
    r = _Toy(_Settings(), tmp_path / "run").fit()
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in recs if "train/loss" in x] == [2, 4, 6]
    assert [x["step"] for x in recs if "valid/mse" in x] == [0, 3, 5, 6]   # every 3, the rung 5, the end
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts == ["kept-00000005.pt", "last.pt", "step-00000006.pt"]  # keep_checkpoints=1 rotates step-4 out
    assert r["step"] == 6 and r["kept_checkpoints"] == {"5": str(kept_checkpoint(tmp_path / "run" / "checkpoints", 5))}
    assert load(tmp_path / "run" / "checkpoints" / "last.pt")["params"] == {"max_steps": 6, "lr": 0.1}


def test_resume_continues_exactly_and_refuses_other_settings(tmp_path: Path) -> None:
    straight = _Toy(_Settings(), tmp_path / "a")
    straight.fit()
    _Toy(_Settings(max_steps=4), tmp_path / "b").fit()      # max_steps is resumable: a longer budget continues
    with pytest.raises(ValueError, match="differs in lr"):
        _Toy(_Settings(), tmp_path / "b", lr=0.2).fit()
    resumed = _Toy(_Settings(), tmp_path / "b")
    assert resumed.fit()["step"] == 6
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_a_diverging_loss_stops_naming_the_step_and_the_run(tmp_path: Path) -> None:
    with pytest.raises(TrainingDiverged, match=r"at step \d+ \(run .*run\); lower the learning rate"):
        _Toy(_Settings(max_steps=200), tmp_path / "run", lr=10.0).fit()


def test_autocast_is_untouched_for_fp32_and_the_scaler_only_scales_fp16() -> None:
    cpu = torch.device("cpu")
    assert not torch.is_autocast_enabled("cpu")
    with runtime.autocast(cpu, "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with runtime.autocast(cpu, "bf16"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert not runtime.make_scaler(cpu, "bf16").is_enabled() and not runtime.make_scaler(cpu, "fp32").is_enabled()
