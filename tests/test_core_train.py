"""Training, resumption, synthesis and the CLI end to end (tiny networks, real components)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from priorgrad.core.checkpoint import load
from priorgrad.core.config import load_params
from priorgrad.core.runtime import TrainingDiverged
from priorgrad.vocoder.train import train

from support.core import ROOT, TINY, kill_at_checkpoint, require_mini, run_cli, sets


@pytest.fixture(scope="module")
def synth_feats(tmp_path_factory):
    """A small eSpeak NG corpus -> features -> prior statistics, through the CLI."""
    d = tmp_path_factory.mktemp("synth")
    run_cli("corpus", "make", "--out", str(d / "corpus"), "--n", "16", "--seed", "3")
    run_cli("corpus", "validate", str(d / "corpus"))
    run_cli("preprocess", "--corpus", str(d / "corpus"), "--out", str(d / "feats"), *sets("corpus.n_valid=2", "corpus.n_test=2"))
    run_cli("prior-stats", "--features", str(d / "feats"), "--out", str(d / "stats.json"))
    return d


def _params(*over: str):
    return load_params(ROOT / "params.yaml", list(TINY) + list(over))


@pytest.mark.slow
def test_tiny_network_lowers_validation_ls_mae(synth_feats, tmp_path):
    p = _params("model.residual_layers=4", "model.residual_channels=16", "model.dilation_cycle=2",
                "train.batch_size=4", "train.crop_frames=16", "train.max_steps=200", "train.validate_every=100",
                "train.checkpoint_every=200", "train.learning_rate=1e-3", "train.valid_utterances=2",
                "train.valid_max_frames=40", "train.threads=2")
    result = train(p, synth_feats / "feats", synth_feats / "stats.json", tmp_path / "run")
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    curve = {r["step"]: r["valid/ls_mae"] for r in recs if "valid/ls_mae" in r}
    assert sorted(curve) == [0, 100, 200]
    assert curve[200] < 0.8 * curve[0], curve  # clearly below the step-0 value
    assert result["step"] == 200 and Path(result["checkpoint"]).exists()


def _train_cmd(feats: Path, stats: Path, run_dir: Path, steps: int, crop: str = "official") -> list[str]:
    return [sys.executable, "-m", "priorgrad", "train", "--features", str(feats), "--stats", str(stats),
            "--run-dir", str(run_dir), *sets(*TINY, f"train.max_steps={steps}", "train.checkpoint_every=5",
                                             "train.validate_every=50", f"train.crop={crop}")]


@pytest.mark.slow
# The spec's crops only: resume depends on the sampler drawing step k's batch from (seed, k) alone, which
# tests/test_core_crops.py checks for both crop modes; the kill-and-resume itself is mode-independent.
@pytest.mark.parametrize("crop", ["official"])
def test_sigkill_and_resume_matches_uninterrupted_run(synth_feats, tmp_path, crop):
    feats, stats, steps = synth_feats / "feats", synth_feats / "stats.json", 80
    subprocess.run(_train_cmd(feats, stats, tmp_path / "straight", steps, crop), cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    run = tmp_path / "killed"
    killed_at = kill_at_checkpoint(_train_cmd(feats, stats, run, steps, crop), run, 10, timeout=240)
    assert killed_at is not None and killed_at < steps, "training finished before it could be killed"
    resumed = subprocess.run(_train_cmd(feats, stats, run, steps, crop), cwd=ROOT, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stderr
    a, b = load(tmp_path / "straight" / "checkpoints" / "last.pt"), load(run / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == steps
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    # no step logged twice after the resume
    logged = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()
              if "train/loss" in json.loads(x)]
    assert logged == sorted(set(logged)) and logged[-1] == steps
    # a finished run re-run does no more training
    again = subprocess.run(_train_cmd(feats, stats, run, steps, crop), cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0 and torch.equal(load(run / "checkpoints" / "last.pt")["model"][k], b["model"][k])


def test_resume_with_other_params_is_refused(synth_feats, tmp_path):
    p = _params("train.max_steps=2", "train.validate_every=2", "train.checkpoint_every=2")
    train(p, synth_feats / "feats", synth_feats / "stats.json", tmp_path / "run")
    other = _params("train.max_steps=4", "model.residual_channels=4")
    with pytest.raises(ValueError, match="model.residual_channels"):
        train(other, synth_feats / "feats", synth_feats / "stats.json", tmp_path / "run")
    longer = _params("train.max_steps=4", "train.validate_every=2", "train.checkpoint_every=2")
    assert train(longer, synth_feats / "feats", synth_feats / "stats.json", tmp_path / "run")["step"] == 4


def test_nan_loss_stops_naming_the_step(synth_feats, tmp_path):
    import shutil

    feats = tmp_path / "feats"
    shutil.copytree(synth_feats / "feats", feats)
    # features corrupted on disk: NaN audio (the official crop mode recomputes each crop's mel from it)
    for path in [*(feats / "mel").glob("*.npy"), *(feats / "audio").glob("*.npy")]:
        x = np.load(path)
        x[...] = np.nan
        np.save(path, x)
    p = _params("prior.type=standard", "train.max_steps=5", "train.validate_every=100")
    with pytest.raises(TrainingDiverged, match=r"at step 1 "):
        train(p, feats, None, tmp_path / "run")


def test_energy_prior_without_stats_is_a_clear_error(synth_feats, tmp_path):
    with pytest.raises(FileNotFoundError, match="prior statistics not found"):
        train(_params("train.max_steps=1"), synth_feats / "feats", tmp_path / "missing.json", tmp_path / "run")


def test_all_clips_shorter_than_crop_is_a_clear_error(synth_feats, tmp_path):
    with pytest.raises(ValueError, match="crop_frames"):
        train(_params("train.crop_frames=100000"), synth_feats / "feats", synth_feats / "stats.json", tmp_path / "r")


def test_synthesize_is_seeded_and_rejects_unalignable_schedules(synth_feats, tmp_path):
    p = _params("train.max_steps=3", "train.validate_every=3", "train.checkpoint_every=3")
    ck = train(p, synth_feats / "feats", synth_feats / "stats.json", tmp_path / "run")["checkpoint"]
    mels = sorted((synth_feats / "feats" / "mel").glob("*.npy"))[:3]
    for out in ("a", "b"):
        r = run_cli("synthesize", "--checkpoint", ck, "--input", *map(str, mels), "--out", str(tmp_path / out),
                    "--steps", "12")
        assert json.loads(r.stdout)["n"] == 3 and json.loads(r.stdout)["rtf"] > 0
    for m in mels:
        a, sr = sf.read(tmp_path / "a" / f"{m.stem}.wav")
        b, _ = sf.read(tmp_path / "b" / f"{m.stem}.wav")
        assert sr == 22050 and len(a) == np.load(m).shape[1] * 256 and np.array_equal(a, b)
    bad = run_cli("synthesize", "--checkpoint", ck, "--input", str(mels[0]), "--out", str(tmp_path / "c"),
                  "--schedule", "0.5,0.5,0.5", check=False)
    assert bad.returncode != 0 and "cannot be aligned" in bad.stderr


@pytest.mark.slow
def test_cli_end_to_end_on_ljspeech_mini(tmp_path):
    mini = require_mini()
    run_cli("corpus", "validate", str(mini))
    run_cli("preprocess", "--corpus", str(mini), "--out", str(tmp_path / "feats"), *sets(*TINY))
    stats = json.loads(run_cli("prior-stats", "--features", str(tmp_path / "feats"), "--out",
                               str(tmp_path / "stats.json")).stdout)
    assert stats["e_min"] >= 0.0283 and stats["e_max"] > stats["e_min"] and stats["n_utterances"] == 28
    run_cli("train", "--features", str(tmp_path / "feats"), "--stats", str(tmp_path / "stats.json"),
            "--run-dir", str(tmp_path / "run"), *sets(*TINY, "train.max_steps=4", "train.validate_every=2"))
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "valid/ls_mae" in m] == [0, 2, 4]
    wav = sorted((mini / "wavs").glob("*.wav"))[0]
    r = json.loads(run_cli("synthesize", "--checkpoint", str(tmp_path / "run/checkpoints/last.pt"), "--input",
                           str(wav), "--out", str(tmp_path / "gen"), "--steps", "6").stdout)
    assert r["n"] == 1 and (tmp_path / "gen" / f"{wav.stem}.wav").exists()


def test_bf16_precision_trains_and_checkpoints_fp32_weights(synth_feats, tmp_path):
    p = _params("train.precision=bf16", "train.max_steps=3", "train.validate_every=3", "train.checkpoint_every=3")
    result = train(p, synth_feats / "feats", synth_feats / "stats.json", tmp_path / "run")
    ck = load(result["checkpoint"])
    assert ck["step"] == 3 and ck["params"]["train"]["precision"] == "bf16"
    assert all(v.dtype == torch.float32 for v in ck["model"].values() if v.is_floating_point())
    assert np.isfinite(result["valid/ls_mae"])
