"""Training-time validation with eval's metrics (the ``validation_hook`` of priorgrad.vocoder.train.train).

    hook = make_validation_hook(["mrstft", "mcd"])
    train(params, feats, stats, run_dir, validation_hook=hook)

The hook scores each validation utterance in-process (the validation subset is small) and returns
the mean per metric over the utterances that scored; a metric that failed on every utterance is
left out (and logged), never reported as 0.
"""
from __future__ import annotations

import logging
from typing import Callable, Mapping, Sequence

import numpy as np

from eval.registry import resolve
from eval.runner import score_arrays

log = logging.getLogger(__name__)

ValidationHook = Callable[[int, Mapping[str, np.ndarray], Mapping[str, np.ndarray]], dict[str, float]]


def make_validation_hook(metrics: str | Sequence[str] = ("mrstft", "mcd"),
                         sample_rate: int = 22050) -> ValidationHook:
    ms = resolve(metrics if isinstance(metrics, str) else list(metrics))

    def hook(step: int, gen: Mapping[str, np.ndarray], ref: Mapping[str, np.ndarray]) -> dict[str, float]:
        scores: dict[str, list[float]] = {m.name: [] for m in ms}
        for utt in sorted(gen):
            values, errors = score_arrays(ref.get(utt), gen[utt], sample_rate, ms, utt=utt)
            for name, v in values.items():
                scores[name].append(v)
            for name, err in errors.items():
                log.warning("step %d, %s, %s failed: %s", step, utt, name, err)
        return {name: float(np.mean(v)) for name, v in scores.items() if v}

    return hook
