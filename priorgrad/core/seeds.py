"""Per-utterance seeds: one utterance's noise is the same whatever the batch, process or machine, in both
families' samplers, validation and evaluation."""
from __future__ import annotations

import hashlib


def utterance_seed(base_seed: int, utt: str) -> int:
    """Seed of one utterance's noise: stable across batch sizes, processes and machines."""
    digest = hashlib.sha256(f"{base_seed}:{utt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
