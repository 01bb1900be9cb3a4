"""DNSMOS (P.835 sig/bak/ovrl and P.808) with the ONNX models shipped inside the `speechmos` package.

speechmos' own ``run`` builds its sessions from the model files in its package directory (nothing is
downloaded); we reuse its ``DNSMOS`` class (feature extraction, windows, polynomial mapping) and only
build the onnxruntime sessions ourselves, to pin them to the CPU provider and to a thread count that
suits the runner's worker processes.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from eval.pair import Pair

SAMPLE_RATE = 16000
# onnxruntime intra-op threads; the runner's workers set 1 so that N workers use N cores
_threads: int = 0  # 0 = onnxruntime's default


def set_threads(n: int) -> None:
    global _threads
    _threads = int(n)
    _model.cache_clear()


def model_paths() -> tuple[Path, Path]:
    import importlib.util

    spec = importlib.util.find_spec("speechmos")
    if spec is None or spec.origin is None:
        raise RuntimeError("the speechmos package is not installed (pip install speechmos)")
    base = Path(spec.origin).parent / "dnsmos_models"
    primary, p808 = base / "sig_bak_ovr.onnx", base / "model_v8.onnx"
    for p in (primary, p808):
        if not p.is_file():
            raise RuntimeError(f"DNSMOS model file missing from the speechmos package: {p}")
    return primary, p808


@functools.lru_cache(maxsize=1)
def _model():
    import onnxruntime as ort
    from speechmos.dnsmos import DNSMOS

    primary, p808 = model_paths()
    opts = ort.SessionOptions()
    if _threads > 0:
        opts.intra_op_num_threads = _threads
        opts.inter_op_num_threads = 1
    model = DNSMOS.__new__(DNSMOS)  # skip DNSMOS.__init__, which builds sessions with default options
    model.primary_model_path = str(primary)
    model.onnx_sess = ort.InferenceSession(os.fspath(primary), opts, providers=["CPUExecutionProvider"])
    model.p808_onnx_sess = ort.InferenceSession(os.fspath(p808), opts, providers=["CPUExecutionProvider"])
    return model


def predict(wav_16k: np.ndarray) -> dict[str, float]:
    """DNSMOS of a 16 kHz waveform in [-1, 1]: {"ovrl", "sig", "bak", "p808"}."""
    out = _model()(np.asarray(wav_16k, dtype=np.float32), SAMPLE_RATE, False)
    return {"ovrl": float(out["ovrl_mos"]), "sig": float(out["sig_mos"]),
            "bak": float(out["bak_mos"]), "p808": float(out["p808_mos"])}


def _scores(pair: Pair) -> dict[str, float]:
    # The generated audio as given (gen_full), never trimmed to a reference: DNSMOS is reference-free,
    # so its score must not depend on which reference (if any) the file was paired with.
    def run() -> dict[str, float]:
        peak = float(np.max(np.abs(pair.gen_full))) if pair.gen_full.size else 0.0
        if peak > 1.0:
            raise ValueError(f"{pair.gen_name}: samples outside [-1, 1] (peak {peak:.3f}); DNSMOS needs "
                             f"audio in [-1, 1]")
        # soxr's band-limited resampling can overshoot full scale by a hair; clip only that
        wav = np.clip(pair.signal("gen_full", SAMPLE_RATE), -1.0, 1.0)
        return predict(wav)

    return pair.memo("dnsmos", run)


def ovrl(pair: Pair) -> float:
    return _scores(pair)["ovrl"]


def sig(pair: Pair) -> float:
    return _scores(pair)["sig"]


def bak(pair: Pair) -> float:
    return _scores(pair)["bak"]


def p808(pair: Pair) -> float:
    return _scores(pair)["p808"]
