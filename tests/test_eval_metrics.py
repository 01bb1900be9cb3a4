"""Golden-value and behaviour tests of the metric implementations on real speech (ljspeech_mini)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eval.pair import Pair, PairError, length_tolerance
from eval.registry import METRICS, resolve
from eval.runner import score_arrays

LJ = Path(__file__).resolve().parents[1].parent / "shared/data/ljspeech_mini"
CLIP = "LJ001-0004"  # 5.1 s


def _load(utt: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    path = LJ / "wavs" / f"{utt}.wav"
    if not path.is_file():
        pytest.skip(f"real-speech corpus not found at {LJ} (../shared/data/ljspeech_mini)")
    x, sr = sf.read(str(path), dtype="float32")
    return x, sr


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, int]:
    return _load(CLIP)


def _with_noise(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(len(x))
    scale = np.sqrt(np.mean(x.astype(np.float64) ** 2) / (np.mean(noise ** 2) * 10 ** (snr_db / 10)))
    return (x + scale * noise).astype(np.float32)


def test_identity_on_real_speech(speech):
    x, sr = speech
    names = ["pesq_wb", "stoi", "mrstft", "ls_mae", "mcd", "f0_rmse", "vuv_error"]
    values, errors = score_arrays(x, x.copy(), sr, names)
    assert errors == {}
    assert round(values["pesq_wb"], 2) == 4.64
    assert values["stoi"] == pytest.approx(1.0, abs=1e-6)
    assert values["mrstft"] == pytest.approx(0.0, abs=1e-7)
    assert values["ls_mae"] == pytest.approx(0.0, abs=1e-7)
    assert values["mcd"] == pytest.approx(0.0, abs=1e-9)
    assert values["f0_rmse"] == pytest.approx(0.0, abs=1e-9)
    assert values["vuv_error"] == 0.0


def test_white_noise_makes_every_metric_worse_in_snr_order(speech):
    x, sr = speech
    names = ["pesq_wb", "stoi", "mrstft", "mcd", "dnsmos_ovrl"]
    rows = []
    for snr in (30, 20, 10, 0):
        y = np.clip(_with_noise(x, snr), -1.0, 1.0)
        values, errors = score_arrays(x, y, sr, names)
        assert errors == {}, f"SNR {snr} dB: {errors}"
        rows.append(values)
    for name in names:
        seq = [r[name] for r in rows]
        ordered = np.diff(seq) < 0 if METRICS[name].higher_is_better else np.diff(seq) > 0
        assert ordered.all(), f"{name} is not monotone in SNR 30, 20, 10, 0 dB: {seq}"


def test_mrstft_agrees_with_auraloss(speech):
    torch = pytest.importorskip("torch")
    auraloss = pytest.importorskip("auraloss")
    from eval.metrics.spectral import mrstft_distance
    from eval.registry import MRSTFT_MAG_FLOOR, MRSTFT_RESOLUTIONS

    x, _ = speech
    x = x[: 3 * 22050]
    loss = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=[r[0] for r in MRSTFT_RESOLUTIONS], hop_sizes=[r[1] for r in MRSTFT_RESOLUTIONS],
        win_lengths=[r[2] for r in MRSTFT_RESOLUTIONS], window="hann_window",
        eps=MRSTFT_MAG_FLOOR ** 2)  # auraloss floors the power at eps; the spec floors the magnitude
    for snr in (30, 10, 0):
        y = _with_noise(x, snr, seed=1)
        ours = mrstft_distance(x, y)
        theirs = float(loss(torch.from_numpy(y)[None, None], torch.from_numpy(x)[None, None]))
        assert ours == pytest.approx(theirs, rel=1e-4), f"SNR {snr}"
        assert ours > 0.1


def test_vectorised_sp2mc_equals_pysptk(speech):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        import pysptk
        import pyworld
    from eval.metrics.world import sp2mc

    x, sr = speech
    x = x[: sr].astype(np.float64)
    f0, t = pyworld.dio(x, sr, frame_period=5.0)
    sp = pyworld.cheaptrick(x, pyworld.stonemask(x, f0, t, sr), t, sr)
    np.testing.assert_allclose(sp2mc(sp, 24, 0.455), pysptk.sp2mc(sp, 24, 0.455), rtol=0, atol=1e-10)


def test_length_policy_trims_within_one_hop_and_rejects_more(speech):
    x, sr = speech
    tol = length_tolerance(sr)
    assert tol == 256
    pair = Pair("u", x, x[: len(x) - tol], sr)
    assert len(pair.ref) == len(pair.gen) == len(x) - tol
    beyond = Pair("u", x, x[: len(x) - tol - 1], sr)  # constructed: reference-free metrics still score it
    with pytest.raises(PairError, match="differs from the reference"):
        beyond.require_reference()
    values, errors = score_arrays(x, x[: len(x) - 1000], sr, ["stoi", "dnsmos_ovrl"])
    # only the metric that compares with the reference fails; DNSMOS scores the generated audio as given
    assert set(errors) == {"stoi"} and "length tolerance 1 hop (256 samples" in errors["stoi"]
    assert set(values) == {"dnsmos_ovrl"} and 1.0 < values["dnsmos_ovrl"] < 5.0


def test_failures_are_errors_not_fallback_scores(speech):
    x, sr = speech
    short = x[:1000]  # too few frames for STOI (pystoi would return 1e-5) and for the 2048-point STFT
    values, errors = score_arrays(short, short, sr, ["stoi", "mrstft"])
    assert values == {}
    assert "too short" in errors["stoi"] and "too short" in errors["mrstft"]
    bad = x[:sr].copy()
    bad[100] = np.nan
    values, errors = score_arrays(x[:sr], bad, sr, ["stoi", "dnsmos_ovrl"])
    assert values == {} and "NaN" in errors["stoi"] and "NaN" in errors["dnsmos_ovrl"]
    silent = np.zeros(sr, dtype=np.float32)
    values, errors = score_arrays(x[:sr], silent, sr, ["pesq_wb", "f0_rmse"])
    assert "pesq_wb" in errors and "f0_rmse" in errors and values == {}


def test_dnsmos_models_come_from_the_installed_package():
    import speechmos

    from eval.metrics.dnsmos import model_paths

    root = Path(speechmos.__file__).parent
    for p in model_paths():
        assert p.is_file() and root in p.parents


def test_registry_metadata_and_resolution():
    assert [m.name for m in resolve("all")] == list(METRICS)
    assert [m.name for m in resolve("mcd, stoi,mcd")] == ["mcd", "stoi"]
    with pytest.raises(ValueError, match="unknown metric"):
        resolve("pesq_wb,nope")
    assert METRICS["pesq_wb"].higher_is_better and not METRICS["mcd"].higher_is_better
    assert not METRICS["dnsmos_ovrl"].needs_reference and METRICS["ls_mae"].needs_reference
    for m in METRICS.values():
        assert m.version and "not-installed" not in m.version, m.name
        assert m.function() is not None


def test_validation_hook_averages_scored_utterances_and_drops_failures(speech, caplog):
    from eval.hooks import make_validation_hook

    x, sr = speech
    x = x[: 2 * sr]
    hook = make_validation_hook(["mrstft", "ls_mae"], sample_rate=sr)
    a, b = _with_noise(x, 20, seed=2), _with_noise(x, 10, seed=3)
    out = hook(100, {"a": a, "b": b, "short": x[:300]}, {"a": x, "b": x, "short": x[:300]})
    expect, _ = score_arrays(x, a, sr, ["mrstft", "ls_mae"])
    expect_b, _ = score_arrays(x, b, sr, ["mrstft", "ls_mae"])
    assert out["mrstft"] == pytest.approx((expect["mrstft"] + expect_b["mrstft"]) / 2)
    assert out["ls_mae"] == pytest.approx((expect["ls_mae"] + expect_b["ls_mae"]) / 2)
    assert "short" in caplog.text and "mrstft failed" in caplog.text
    assert hook(1, {"short": x[:300]}, {"short": x[:300]}) == {}  # all failed: nothing, not 0
