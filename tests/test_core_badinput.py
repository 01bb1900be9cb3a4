"""Each class of bad input gives a clear error naming the file (or key), never a silent skip."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from priorgrad.core.audio import AudioError, load_audio
from priorgrad.core.config import load_params
from priorgrad.vocoder.model import DiffWave
from priorgrad.vocoder.preprocess import preprocess

from support.core import ROOT


def _speechlike(seconds: float = 1.0, sr: int = 22050) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2).astype(np.float32)


def _corpus(tmp_path, files: dict[str, object], lines: list[str]):
    root = tmp_path / "corpus"
    (root / "wavs").mkdir(parents=True)
    for name, content in files.items():
        path = root / "wavs" / f"{name}.wav"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            data, sr = content
            sf.write(path, data, sr, subtype="FLOAT")  # float WAV, so NaN samples survive
    (root / "metadata.csv").write_text("".join(f"{x}|text of {x}|text of {x}\n" for x in lines))
    return root


def _params(**kw):
    return load_params(ROOT / "params.yaml", {"corpus.n_valid": 1, "corpus.n_test": 1, **kw})


def test_each_bad_file_is_named_by_preprocess(tmp_path):
    good = _speechlike()
    root = _corpus(tmp_path, {
        "ok1": (good, 22050), "ok2": (good, 22050), "ok3": (good, 22050),
        "corrupt": b"RIFF\x00\x00\x00\x00WAVEjunkjunk",
        "empty": b"",
        "silent": (np.zeros(22050, dtype=np.float32), 22050),
        "rate": (good, 16000),
        "nan": (np.full(22050, np.nan, dtype=np.float32), 22050),
    }, ["ok1", "ok2", "ok3", "corrupt", "empty", "silent", "rate", "nan", "missing"])
    with pytest.raises(AudioError) as e:
        preprocess(root, tmp_path / "feats", _params())
    msg = str(e.value)
    for name, problem in [("corrupt", "cannot decode"), ("empty", "empty"), ("silent", "silent"),
                          ("rate", "sample rate 16000"), ("nan", "NaN"), ("missing", "not found")]:
        line = next((x for x in msg.splitlines() if f"{name}.wav" in x), None)
        assert line is not None and problem in line, (name, msg)
    assert "ok1.wav" not in msg and "6 of 9 file(s)" in msg
    assert not (tmp_path / "feats" / "manifest.jsonl").exists()  # nothing half-done is published


def test_wrong_rate_is_resampled_only_when_allowed(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, _speechlike(1.0, 16000), 16000)
    with pytest.raises(AudioError, match="x.wav: sample rate 16000 Hz, expected 22050"):
        load_audio(path)
    wav = load_audio(path, allow_resample=True)
    assert abs(len(wav) - 22050) <= 256 and len(wav) % 256 == 0 and np.isclose(np.abs(wav).max(), 0.95)


def test_stereo_is_averaged_and_too_short_is_an_error(tmp_path):
    st = tmp_path / "st.wav"
    sf.write(st, np.stack([_speechlike(), _speechlike()], axis=1), 22050)
    assert load_audio(st).ndim == 1
    with pytest.raises(AudioError, match="st.wav: has 2 channels"):
        load_audio(st, allow_stereo=False)
    short = tmp_path / "short.wav"
    sf.write(short, _speechlike(0.005), 22050)
    with pytest.raises(AudioError, match="short.wav: shorter than one hop"):
        load_audio(short)


def test_missing_transcripts_file_is_named(tmp_path):
    root = tmp_path / "corpus"
    (root / "wavs").mkdir(parents=True)
    with pytest.raises(ValueError, match="metadata.csv"):
        preprocess(root, tmp_path / "feats", _params())


def test_sigma_conditioning_ablation():
    m = DiffWave(residual_layers=2, residual_channels=4, dilation_cycle=1, condition_on_sigma=True)
    assert m.residual_layers[0].conditioner_projection.in_channels == 81
    x, mel, t = torch.randn(1, 512), torch.randn(1, 80, 2), torch.tensor([1])
    assert m(x, mel, t, torch.ones(1, 512)).shape == (1, 512)
    with pytest.raises(ValueError, match="conditions on sigma"):
        m(x, mel, t)
