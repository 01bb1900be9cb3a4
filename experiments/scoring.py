"""The evaluate stage's scoring: every synthesised set against the references, in one eval run."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from experiments.spec import EvaluateConfig

if TYPE_CHECKING:  # the stage imports eval lazily (its worker pool and metric libraries are heavy)
    from eval.pair import Alignment

SEP = "__"  # <generation dir>__<utt> names one scored pair in the combined directories


def score_all(gen_dirs: list[Path], ref_dir: Path, utts: list[str], cfg: EvaluateConfig, work: Path
              ) -> dict[str, list[dict[str, Any]]]:
    """Scores every generated set in ONE eval run, so its worker pool starts once, not per system.

    Returns, per generation directory name, its records (one per utterance: {"utt": ..., metric: value
    or None})."""
    return score_sets([(d.name, d, ref_dir) for d in gen_dirs], utts, cfg, work)


def score_sets(sets: list[tuple[str, Path, Path]], utts: list[str], cfg: Any, work: Path, *,
               alignment: "Alignment | None" = None, texts: Mapping[str, str] | None = None
               ) -> dict[str, list[dict[str, Any]]]:
    """Scores (label, generated dir, reference dir) sets in ONE eval run (the acoustic side scores the same
    audio against two references); ``cfg`` has metrics, workers, bootstrap_seed and n_boot.

    The pairs are presented as two directories of symlinks, <label>__<utt>.wav; eval's score cache is
    keyed by file content, so a re-run rescoring unchanged audio is free. ``alignment``
    (``eval.pair.parse_alignment("dtw")`` for audio of another length than its reference, e.g. predicted
    durations) and ``texts`` ({utt: text}, for wer/cer) are passed to eval's ``score_dirs``. Returns, per
    label, its records.
    """
    from eval.runner import score_dirs

    combined = work / "combined"
    if combined.exists():
        shutil.rmtree(combined)
    (combined / "ref").mkdir(parents=True)
    (combined / "gen").mkdir(parents=True)
    for label, gen_dir, ref_dir in sets:
        if SEP in label:
            raise ValueError(f"set label {label!r} may not contain {SEP!r}")
        for u in utts:
            name = f"{label}{SEP}{u}.wav"
            os.symlink((ref_dir / f"{u}.wav").resolve(), combined / "ref" / name)
            if (gen_dir / f"{u}.wav").exists():  # a missing file is scored as a recorded failure
                os.symlink((gen_dir / f"{u}.wav").resolve(), combined / "gen" / name)
    combined_texts = None if texts is None else {
        f"{label}{SEP}{u}": texts[u] for label, _, _ in sets for u in utts if u in texts}
    records, _ = score_dirs(combined / "ref", combined / "gen", cfg.metrics, work / "scores",
                            workers=cfg.workers, cache_path=work / "score_cache.sqlite",
                            seed=cfg.bootstrap_seed, n_boot=cfg.n_boot, alignment=alignment, texts=combined_texts)
    out: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in sets}
    for r in records:
        gen, utt = r["utt"].split(SEP, 1)
        out[gen].append({**r, "utt": utt})
    return out
