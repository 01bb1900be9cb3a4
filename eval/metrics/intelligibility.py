"""STOI and extended STOI through `pystoi`, at the files' own rate (pystoi resamples to 10 kHz itself)."""
from __future__ import annotations

import warnings

from eval.pair import Pair


def _stoi(pair: Pair, extended: bool) -> float:
    from pystoi import stoi as pystoi_stoi

    ref = pair.require_reference()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = pystoi_stoi(ref, pair.gen, pair.sample_rate, extended=extended)
    # pystoi returns 1e-5 with a warning when too few non-silent frames remain; that is not a score
    for w in caught:
        if "Not enough STFT frames" in str(w.message):
            raise ValueError(f"{pair.gen_name}: too short or silent for STOI "
                             f"(fewer than 30 non-silent frames after pystoi's silence removal)")
    return float(value)


def stoi(pair: Pair) -> float:
    return _stoi(pair, extended=False)


def estoi(pair: Pair) -> float:
    return _stoi(pair, extended=True)
