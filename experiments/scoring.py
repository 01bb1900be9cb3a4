"""The evaluate stage's scoring: every synthesised set against the references, in one eval run."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from experiments.spec import EvaluateConfig

SEP = "__"  # <generation dir>__<utt> names one scored pair in the combined directories


def score_all(gen_dirs: list[Path], ref_dir: Path, utts: list[str], cfg: EvaluateConfig, work: Path
              ) -> dict[str, list[dict[str, Any]]]:
    """Scores every generated set in ONE eval run, so its worker pool starts once, not per system.

    The pairs are presented as two directories of symlinks, <generation dir>__<utt>.wav; eval's score
    cache is keyed by file content, so a re-run rescoring unchanged audio is free. Returns, per
    generation directory name, its records (one per utterance: {"utt": ..., metric: value or None}).
    """
    from eval.runner import score_dirs

    combined = work / "combined"
    if combined.exists():
        shutil.rmtree(combined)
    (combined / "ref").mkdir(parents=True)
    (combined / "gen").mkdir(parents=True)
    for gen_dir in gen_dirs:
        for u in utts:
            name = f"{gen_dir.name}{SEP}{u}.wav"
            os.symlink((ref_dir / f"{u}.wav").resolve(), combined / "ref" / name)
            if (gen_dir / f"{u}.wav").exists():  # a missing file is scored as a recorded failure
                os.symlink((gen_dir / f"{u}.wav").resolve(), combined / "gen" / name)
    records, _ = score_dirs(combined / "ref", combined / "gen", cfg.metrics, work / "scores",
                            workers=cfg.workers, cache_path=work / "score_cache.sqlite",
                            seed=cfg.bootstrap_seed, n_boot=cfg.n_boot)
    out: dict[str, list[dict[str, Any]]] = {d.name: [] for d in gen_dirs}
    for r in records:
        gen, utt = r["utt"].split(SEP, 1)
        out[gen].append({**r, "utt": utt})
    return out
