"""Mel presets: ``diffwave`` is lmnt-com/diffwave's front-end; what depends on the mel scale (the
silent value that pads mels, the energy prior's floor and E_max override) comes from the preset."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from support.core import ROOT, TINY, require_mini

from priorgrad.core.audio import PRESETS, load_audio, log_mel
from priorgrad.core.config import ConfigError, load_params
from priorgrad.core.diffusion import Diffusion
from priorgrad.vocoder.infer import generate
from priorgrad.vocoder.model import DiffWave
from priorgrad.vocoder.prior import MIN_FRAME_ENERGY, frame_energy, make_prior


def lmnt_mel(wav: np.ndarray, sr: int = 22050) -> np.ndarray:
    """lmnt-com/diffwave preprocess.py, written out in numpy: torchaudio MelSpectrogram(sample_rate=sr,
    n_fft=1024, win_length=4*256, hop_length=256, f_min=20, f_max=sr/2, n_mels=80, power=1.0,
    normalized=True), i.e. a centred reflect-padded periodic-Hann STFT magnitude divided by
    sqrt(sum(window^2)), HTK mel filters without area normalisation; then 20*log10(clamp(x, 1e-5)) - 20
    and clamp((x + 100) / 100, 0, 1). Returns all 1 + len // 256 frames of the centred STFT."""
    n_fft, hop = 1024, 256
    x = np.pad(np.asarray(wav, dtype=np.float64), n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    n_frames = 1 + (len(x) - n_fft) // hop
    frames = np.stack([x[i * hop:i * hop + n_fft] * window for i in range(n_frames)], axis=1)
    mag = np.abs(np.fft.rfft(frames, axis=0)) / np.sqrt(np.sum(window ** 2))
    # torchaudio.functional.melscale_fbanks(mel_scale="htk", norm=None): triangles on the HTK mel scale
    freqs = np.linspace(0, sr // 2, n_fft // 2 + 1)
    m = np.linspace(2595 * np.log10(1 + 20.0 / 700), 2595 * np.log10(1 + (sr / 2) / 700), 80 + 2)
    f_pts = 700 * (10 ** (m / 2595) - 1)
    slopes = f_pts[None, :] - freqs[:, None]
    down, up = -slopes[:, :-2] / np.diff(f_pts)[:-1], slopes[:, 2:] / np.diff(f_pts)[1:]
    fb = np.maximum(0.0, np.minimum(down, up)).T  # (80, n_freqs)
    db = 20 * np.log10(np.maximum(fb @ mag, 1e-5)) - 20
    return np.clip((db + 100) / 100, 0.0, 1.0)


def _speechlike(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 22050
    wav = sum(np.sin(2 * np.pi * 130 * h * t) / h for h in range(1, 12)) * np.abs(np.sin(2 * np.pi * 2 * t))
    return (0.3 * wav / np.abs(wav).max() + 0.003 * rng.standard_normal(n)).astype(np.float32)


def test_diffwave_preset_matches_lmnt_formula():
    wav = _speechlike(256 * 50)
    ours, ref = log_mel(wav, "diffwave"), lmnt_mel(wav)
    assert ref.shape == (80, 51) and ours.shape == (80, 50)  # lmnt's extra frame (centred on the end) dropped
    # float32 vs float64: within 0.02 dB (the scale is 100 dB per unit)
    np.testing.assert_allclose(ours, ref[:, :50], atol=2e-4, rtol=0)
    assert 0.3 < ours.mean() < 0.9  # the normalised STFT: a level 25.8 dB too high would sit near the top
    assert 20 * np.log10(np.sqrt(np.sum(np.hanning(1025)[:-1] ** 2))) == pytest.approx(25.84, abs=0.01)


def test_diffwave_preset_on_real_speech_and_preprocess(tmp_path):
    mini = require_mini()
    wav = load_audio(min((mini / "wavs").glob("*.wav")), "diffwave")
    assert len(wav) % 256 == 0
    np.testing.assert_allclose(log_mel(wav, "diffwave"), lmnt_mel(wav)[:, :-1], atol=2e-4, rtol=0)

    from priorgrad.vocoder.preprocess import preprocess, prior_stats

    params = load_params(ROOT / "params.yaml", [*TINY, "audio.preset=diffwave"])
    summary = preprocess(mini, tmp_path / "feats", params, progress=False)
    assert summary["n_utterances"] == 32 and summary["settings"]["preset"] == "diffwave"
    stats = prior_stats(tmp_path / "feats", tmp_path / "stats.json", "diffwave")
    assert stats["preset"] == "diffwave" and stats["e_min"] >= PRESETS["diffwave"].min_frame_energy - 1e-9
    assert stats["e_max"] > stats["e_min"]
    for path in (tmp_path / "feats" / "mel").glob("*.npy"):
        mel = np.load(path)
        assert mel.min() >= 0.0 and mel.max() <= 1.0, path


@pytest.mark.parametrize("name,silence,floor", [("hifigan", np.log(1e-5), np.sqrt(80 * 1e-5)),
                                                ("diffwave", 0.0, np.sqrt(80 * 1e-4))])
def test_silence_and_energy_floor_follow_the_preset(name, silence, floor):
    p = PRESETS[name]
    assert p.silence == pytest.approx(silence, abs=1e-12)
    assert p.min_frame_energy == pytest.approx(floor, rel=1e-12)
    mel = log_mel(np.zeros(256 * 8, dtype=np.float32), name)
    np.testing.assert_allclose(mel, silence, rtol=0, atol=1e-6)  # a silent waveform's mel is the silent value
    np.testing.assert_allclose(frame_energy(mel, name), floor, rtol=1e-5)
    assert round(MIN_FRAME_ENERGY, 4) == 0.0283  # the spec's (check) value is hifigan's


@pytest.mark.parametrize("name", ["hifigan", "diffwave"])
def test_generate_pads_short_mels_with_the_presets_silence(name):
    model = DiffWave(residual_layers=2, residual_channels=4, dilation_cycle=1)
    seen = {}
    condition = model.condition

    def spy(mel, sigma=None):
        seen["mel"] = mel.clone()
        return condition(mel, sigma)

    model.condition = spy
    rng = np.random.default_rng(0)
    mels = [rng.uniform(0.2, 0.8, (80, 3)).astype(np.float32), rng.uniform(0.2, 0.8, (80, 6)).astype(np.float32)]
    wavs = generate(model, Diffusion(), make_prior(SimpleNamespace(type="standard"), None, name), mels, [1, 2], 6, name)
    assert [len(w) for w in wavs] == [3 * 256, 6 * 256]
    padded = seen["mel"][0, :, 3:]
    assert torch.all(padded == torch.tensor(PRESETS[name].silence, dtype=torch.float32))


def test_max_energy_preset_resolves_per_front_end_and_stats_must_match():
    cfg = SimpleNamespace(type="energy", std_min=0.1, max_energy="preset")
    assert make_prior(cfg, {"e_min": 0.1, "e_max": 5.0, "preset": "hifigan"}, "hifigan").max_energy == 4.0
    assert make_prior(cfg, {"e_min": 0.1, "e_max": 5.0, "preset": "diffwave"}, "diffwave").max_energy is None
    fixed = SimpleNamespace(type="energy", std_min=0.1, max_energy=3.0)
    assert make_prior(fixed, {"e_min": 0.1, "e_max": 5.0, "preset": "diffwave"}, "diffwave").max_energy == 3.0
    with pytest.raises(ValueError, match="re-run prior-stats"):
        make_prior(cfg, {"e_min": 0.1, "e_max": 5.0, "preset": "hifigan"}, "diffwave")
    p = load_params(ROOT / "params.yaml")
    assert p.prior.max_energy == "preset"


@pytest.mark.parametrize("over,needle", [("prior.max_energy=huge", "prior.max_energy"),
                                         ("train.crop=aligned", "train.crop"),
                                         ("train.deterministic=1", "train.deterministic")])
def test_new_keys_are_validated_naming_the_key(over, needle):
    with pytest.raises(ConfigError, match=needle):
        load_params(ROOT / "params.yaml", [over])


def test_profiles_set_the_crop_mode():
    train = {name: load_params(ROOT / "params.yaml", {"profile": name}).train for name in ("default", "smoke", "gpu")}
    assert train["gpu"].crop == "official"  # the paper's set-up uses the spec's crops
    assert {t.crop for t in train.values()} <= {"official", "frames"}
