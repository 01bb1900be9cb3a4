"""Shared builders for the core tests: tiny corpora and features made with the real CLI code."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT.parent / "shared" / "data" / "ljspeech_mini"

TINY = ["model.residual_layers=2", "model.residual_channels=8", "model.dilation_cycle=1",
        "train.batch_size=2", "train.crop_frames=8", "train.valid_utterances=1", "train.valid_max_frames=8",
        "train.threads=1", "train.log_every=5", "corpus.n_valid=2", "corpus.n_test=2"]


def require_mini() -> Path:
    if not (MINI / "metadata.csv").exists():
        pytest.skip(f"real speech not available: {MINI} is absent (../shared/data/ljspeech_mini)")
    return MINI


def run_cli(*args: str, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "priorgrad", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"priorgrad {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def sets(*items: str) -> list[str]:
    out = []
    for it in items:
        out += ["--set", it]
    return out
