"""PESQ (ITU-T P.862 / P.862.2) through the `pesq` package, on soxr-HQ-resampled signals."""
from __future__ import annotations

from eval.pair import Pair


def _pesq(pair: Pair, fs: int, mode: str) -> float:
    import pesq

    pair.require_reference()
    ref, gen = pair.signal("ref", fs), pair.signal("gen", fs)
    # pesq raises (NoUtterancesError, BufferTooShortError, ...) rather than returning a fallback value
    return float(pesq.pesq(fs, ref, gen, mode))


def pesq_wb(pair: Pair) -> float:
    return _pesq(pair, 16000, "wb")


def pesq_nb(pair: Pair) -> float:
    return _pesq(pair, 8000, "nb")
