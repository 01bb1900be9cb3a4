"""provenance.json of the evaluate stage: code, params, corpus, machine and metric versions."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from priorgrad.core.config import Params, params_hash


def provenance(params: Params, root: Path, features: Path, metrics: list[str], devices: set[str]) -> dict[str, Any]:
    import torch

    from eval.registry import METRICS
    from experiments.trial import git_commit
    from priorgrad.core.fingerprint import synthesis_fingerprint, training_fingerprint

    pre = features / "preprocess.json"
    corpus = {"source": params.corpus.source, "n_utterances": params.corpus.n_utterances, "seed": params.corpus.seed,
              "features": json.loads(pre.read_text()) if pre.exists() else None}
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
               "devices": sorted(devices)}
    if torch.cuda.is_available():
        machine["gpu"] = torch.cuda.get_device_name(0)
    return {"git_commit": git_commit(root), "params_hash": params_hash(params), "profile": params.profile,
            "code": {"training": training_fingerprint(), "synthesis": synthesis_fingerprint()},
            "corpus": corpus, "machine": machine, "metric_versions": {m: METRICS[m].info() for m in metrics}}
