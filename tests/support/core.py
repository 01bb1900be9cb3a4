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


def kill_at_checkpoint(cmd: list[str], run_dir: Path, min_step: int, timeout: float,
                       env: dict[str, str] | None = None) -> int | None:
    """Start a training command, SIGKILL it once its last.pt holds step >= min_step; returns that step
    (None when it finished or timed out first). The kill-and-resume tests of both trainers use it."""
    import signal
    import time

    import torch

    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            ck = Path(run_dir) / "checkpoints" / "last.pt"
            if ck.exists():
                try:
                    step = int(torch.load(ck, weights_only=True)["step"])
                except Exception:  # being replaced right now
                    step = 0
                if step >= min_step:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return step
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return None


def vocoder_prior_overrides(prior: str) -> list[str]:
    """TINY for a given vocoder prior.type, with a 6-step validation sampler."""
    return TINY + ["train.valid_infer_steps=6", f"prior.type={prior}"]


def train_registered_vocoder_prior(tmp_path: Path, prior: str, prior_cls: type):
    """A registered vocoder prior through the real trainer on a 6-utterance corpus: two finite steps on the
    host path and with resident crops (conditioned per crop); returns the last Trainer, for validation."""
    import numpy as np

    from priorgrad.core.config import load_params
    from priorgrad.corpus.synth import make_corpus
    from priorgrad.vocoder.preprocess import preprocess
    from priorgrad.vocoder.train import Trainer

    overrides = vocoder_prior_overrides(prior)
    make_corpus(tmp_path / "corpus", n_utterances=6, seed=0)
    preprocess(tmp_path / "corpus", tmp_path / "feats", load_params(ROOT / "params.yaml", overrides), progress=False)
    for resident in ("false", "true"):
        p = load_params(ROOT / "params.yaml", overrides + [f"train.features_on_device={resident}"])
        tr = Trainer(p, tmp_path / "feats", None, tmp_path / f"run-{resident}", progress=False)
        assert isinstance(tr.prior, prior_cls)
        assert all(np.isfinite([tr.train_step() for _ in range(2)]))
    return tr
