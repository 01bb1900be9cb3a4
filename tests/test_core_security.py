"""Hardening (issue 18): a checkpoint never runs code when loaded, and a truncated wav is an error everywhere.

Checkpoints are read with torch.load(weights_only=True); the tests below craft files whose pickle would
create a marker file when unpickled in full and check that no loading path of the project creates it.
"""
from __future__ import annotations

import os
import pickle
import shlex
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from priorgrad.core import checkpoint as ckpt_io
from priorgrad.acoustic.model_config import load_acoustic_config
from priorgrad.acoustic.synthesize import load_acoustic_checkpoint, table_from_ckpt
from priorgrad.acoustic.toydata import make_toy_features
from priorgrad.acoustic.train import train_acoustic
from priorgrad.core.audio import TruncatedAudioError, read_wav

from support.core import ROOT, run_cli

SR = 22050


class _RunsCode:
    """Unpickled in full, this calls os.system (as the issue's probe did); pickled by torch.save as is."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def _evil_checkpoint(path: Path, marker: Path) -> Path:
    # a dict with every key the loader asks for, so only the code inside can make it fail
    torch.save({"model": {}, "params": {}, "step": 0, "payload": _RunsCode(marker)}, path)
    return path


def test_a_crafted_checkpoint_does_not_run_its_code(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil = _evil_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(ckpt_io.UnsafeCheckpointError) as e:
        ckpt_io.load(evil)
    msg = str(e.value)
    assert str(evil) in msg and "system" in msg and f"priorgrad checkpoint convert {evil}" in msg
    # the old zip-less pickle format takes another path through torch.load: refused as well
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps({"model": {}, "params": {}, "step": 0, "payload": _RunsCode(marker)}, protocol=2))
    with pytest.raises(ValueError, match=str(legacy)):
        ckpt_io.load(legacy)
    assert not marker.exists()


def test_synthesize_with_a_crafted_checkpoint_is_an_error_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil = _evil_checkpoint(tmp_path / "evil.pt", marker)
    mels = tmp_path / "mels"
    mels.mkdir()
    np.save(mels / "u.npy", np.zeros((80, 4), np.float32))
    for cmd in (["synthesize", "--checkpoint", str(evil), "--input", str(mels), "--out", str(tmp_path / "gen")],
                ["acoustic", "synthesize", "--checkpoint", str(evil), "--out", str(tmp_path / "gen2"),
                 "--text", "hello"]):
        proc = run_cli(*cmd, check=False)
        assert proc.returncode == 2, proc.stderr
        assert f"{evil}: refused" in proc.stderr and "priorgrad checkpoint convert" in proc.stderr
        assert not marker.exists(), cmd
    assert not (tmp_path / "gen").exists() or not any((tmp_path / "gen").iterdir())


def test_checkpoint_writer_stores_plain_types_and_refuses_others(tmp_path: Path) -> None:
    state = {"model": {"w": torch.ones(2)}, "params": {"path": Path("a/b"), "x": np.float64(0.5)}, "step": 3,
             "table": np.arange(6, dtype=np.float32).reshape(2, 3)}
    path = ckpt_io.save(tmp_path / "c.pt", state)
    raw = torch.load(path, weights_only=True)  # what any reader does: no code runs, no numpy needed
    assert raw["params"] == {"path": "a/b", "x": 0.5} and type(raw["params"]["x"]) is float
    assert isinstance(raw["table"], torch.Tensor) and raw["table"].tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(TypeError, match=r"checkpoint\.params\.obj: a .*_RunsCode cannot be stored"):
        ckpt_io.save(tmp_path / "d.pt", {**state, "params": {"obj": _RunsCode(tmp_path / "m")}})
    assert not (tmp_path / "d.pt").exists() and not list(tmp_path.glob(".d.pt.tmp*"))


def test_a_plain_checkpoint_is_written_byte_for_byte_as_before(tmp_path: Path) -> None:
    """Resume, trial identities and the synthesis cache hash checkpoint bytes: a state that was already
    plain (model, optimiser, scaler, params) is written exactly as torch.save wrote it before."""
    import io

    net = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3), torch.nn.LayerNorm(1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(1, 2, 3)).sum().backward()
    opt.step()
    state = {"model": net.state_dict(), "optimizer": opt.state_dict(), "scaler": {}, "step": 1,
             "params": {"train": {"lr": 1e-3, "betas": [0.9, 0.99]}}, "prior_stats": None}
    buf = io.BytesIO()
    torch.save({"format_version": ckpt_io.FORMAT_VERSION, **state}, buf)
    assert ckpt_io.save(tmp_path / "c.pt", state).read_bytes() == buf.getvalue()
    loaded = ckpt_io.load(tmp_path / "c.pt")
    assert loaded["model"]._metadata == net.state_dict()._metadata  # module versions for load_state_dict


@pytest.fixture(scope="module")
def acoustic_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step acoustic checkpoint (it carries the phoneme prior's tables) through the real trainer."""
    d = tmp_path_factory.mktemp("ac")
    toy = make_toy_features(d / "feats", n_train=8, n_valid=2, n_test=2)
    cfg = load_acoustic_config(ROOT / "params.yaml", [
        "acoustic.model.size=tiny", "acoustic.train.batch_size=4", "acoustic.train.window_frames=32",
        "acoustic.train.threads=1", "acoustic.train.valid_utterances=2", "acoustic.train.valid_steps=2",
        "acoustic.train.device=cpu", "acoustic.infer.device=cpu", "acoustic.train.max_steps=2",
        "acoustic.train.validate_every=2", "acoustic.train.checkpoint_every=2"])
    return Path(train_acoustic(cfg, toy, d / "run", prior=toy / "phoneme_stats.npz")["checkpoint"])


def test_acoustic_checkpoint_loads_safely_and_an_old_one_converts(acoustic_ckpt: Path, tmp_path: Path) -> None:
    torch.load(acoustic_ckpt, weights_only=True)  # the prior tables are tensors now, not numpy arrays
    _, _, ck = load_acoustic_checkpoint(acoustic_ckpt)
    table = table_from_ckpt(ck)
    assert table is not None and table.mu.dtype == np.float32 and table.mu.shape == (len(ck["vocab"]), 80)

    # a checkpoint as this project wrote it before: the prior tables as numpy arrays
    old = tmp_path / "old.pt"
    state = torch.load(acoustic_ckpt, weights_only=True)
    state["prior_table"] = {**state["prior_table"], "mu": state["prior_table"]["mu"].numpy(),
                            "std": state["prior_table"]["std"].numpy()}
    torch.save(state, old)
    with pytest.raises(ckpt_io.UnsafeCheckpointError, match="numpy"):
        ckpt_io.load(old)
    proc = run_cli("checkpoint", "convert", str(old), "--out", str(tmp_path / "new.pt"))
    assert "converted" in proc.stdout
    new = ckpt_io.load(tmp_path / "new.pt")
    for k, v in ck["model"].items():
        assert torch.equal(new["model"][k], v), k
    assert np.array_equal(table_from_ckpt(new).mu, table.mu) and new["vocab"] == ck["vocab"]
    run_cli("checkpoint", "convert", str(old))  # in place
    ckpt_io.load(old)


def _speech(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.4 * np.sin(2 * np.pi * 150 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def _truncate(path: Path, keep: float = 0.5) -> tuple[int, int]:
    """Cut a 44-byte-header PCM wav to a fraction of its bytes; returns (declared, present) data bytes."""
    data = path.read_bytes()
    declared = int.from_bytes(data[40:44], "little")
    cut = int(len(data) * keep)
    path.write_bytes(data[:cut])
    return declared, cut - 44


def test_a_truncated_wav_is_named_with_both_sizes_by_every_reader(tmp_path: Path) -> None:
    from eval.pair import PairError, read_mono

    wav = tmp_path / "cut.wav"
    sf.write(wav, _speech(1.0), SR, subtype="PCM_16")
    assert len(read_wav(wav)[0]) == SR
    declared, present = _truncate(wav)
    want = f"{wav}: truncated: its header declares {declared} data bytes, {present} are present"
    with pytest.raises(TruncatedAudioError) as e:
        read_wav(wav)
    assert str(e.value) == want
    with pytest.raises(PairError, match="truncated"):
        read_mono(wav)  # eval's reader



def test_preprocess_names_a_truncated_wav(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    run_cli("corpus", "make", "--out", str(corpus), "--n", "6", "--seed", "1")
    victim = sorted((corpus / "wavs").glob("*.wav"))[2]
    declared, present = _truncate(victim)
    proc = run_cli("preprocess", "--corpus", str(corpus), "--out", str(tmp_path / "feats"),
                   "--set", "corpus.n_valid=1", "--set", "corpus.n_test=1", check=False)
    assert proc.returncode != 0
    assert f"{victim}: truncated: its header declares {declared} data bytes, {present} are present" in proc.stderr
