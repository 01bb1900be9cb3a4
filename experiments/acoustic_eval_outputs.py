"""The acoustic evaluate stage's kept audio (audio/ and its index) and provenance.json."""
from __future__ import annotations

import json
from typing import Any

from eval.contract import (KIND_MEAN_REFERENCE, KIND_MODEL, KIND_PRIOR_NOISE, KIND_VOCODED_REFERENCE,
                           VOCODED_REFERENCE_AUDIO, audio_setting_dir)
from experiments.acoustic_eval_config import E3, metric_info
from experiments.acoustic_eval_jobs import MEAN_REFERENCE_SYSTEM, Collected, Context
from experiments.acoustic_eval_scoring import MEAN_REFERENCE_SET
from experiments.eval_family import Examples
from priorgrad.core import registry
from priorgrad.core.fileio import file_digest

MEAN_REFERENCE_DIR = "mean-reference"   # audio/mean-reference/: mu alone, vocoded


def floor_dir(system: str) -> str:
    """Folder of a system's floor examples under audio/ (its prior draw 0, the first audio condition)."""
    return f"{system}-floor"


def setting_dir(system: str, size: str, budget: int, t_infer: int, condition: str) -> str:
    return f"{audio_setting_dir(system, size, budget, t_infer)}-{condition}"


def examples(ctx: Context, acc: Collected) -> Examples:
    """audio/: the recordings, vocoder(GT mel), one set per system and setting (its lowest seed's run),
    each system's floor; index.json says what each folder holds (every set has its condition; '' = the
    same audio under every condition). Without a vocoder: the recordings only."""
    cfg, test = ctx.cfg, ctx.test
    sets: list[dict[str, Any]] = []
    if ctx.vocoder is not None:
        sets_dir = ctx.run.work / "sets"
        sets.append({"dir": VOCODED_REFERENCE_AUDIO, "src": str(sets_dir / VOCODED_REFERENCE_AUDIO),
                     "kind": KIND_VOCODED_REFERENCE, "system": "", "prior": "", "size": "", "budget": 0,
                     "t_infer": 0, "seed": 0, "condition": ""})
        sets += _model_sets(acc)
        c0 = cfg.audio_conditions[0] if cfg.audio_conditions else E3
        for system in acc.systems:
            sets.append({"dir": floor_dir(system), "src": str(sets_dir / f"floor-{system}-d0-{c0}"),
                         "kind": KIND_PRIOR_NOISE, "system": system, "prior": registry.system(system).name,
                         "size": "", "budget": 0, "t_infer": 0, "seed": 0, "condition": c0})
        sets.append({"dir": MEAN_REFERENCE_DIR, "src": str(sets_dir / MEAN_REFERENCE_SET),
                     "kind": KIND_MEAN_REFERENCE, "system": acc.ref_system,
                     "prior": registry.system(acc.ref_system).name,
                     "size": "", "budget": 0, "t_infer": 0, "seed": 0, "condition": ""})
    return Examples(test.recordings, test.utts, cfg.n_audio_examples, sets)


def _model_sets(acc: Collected) -> list[dict[str, Any]]:
    """One kept set per system, setting and audio condition (E3 included): its lowest seed's run."""
    lowest: dict[tuple, tuple[dict[str, Any], Any]] = {}
    for job, c, wav_dir in acc.audio_jobs + [(job, E3, d) for job, d in acc.e3_audio]:
        keys = acc.jobs[job]
        k = (keys["system"], keys["size"], keys["budget"], keys["t_infer"], c)
        if k not in lowest or keys["seed"] < lowest[k][0]["seed"]:
            lowest[k] = (keys, wav_dir)
    return [{"dir": setting_dir(system, size, budget, t, c), "src": str(wav_dir), "kind": KIND_MODEL,
             "system": system, "prior": keys["prior"], "size": size, "budget": budget, "t_infer": t,
             "seed": keys["seed"], "condition": c}
            for (system, size, budget, t, c), (keys, wav_dir) in sorted(lowest.items())]


def provenance(ctx: Context, acc: Collected, names: list[str]) -> dict[str, Any]:
    """The vocoder stage's provenance (experiments.provenance) with the acoustic settings, metrics and vocoder."""
    from experiments.provenance import provenance as common
    from priorgrad.core.fingerprint import acoustic_synthesis_fingerprint

    cfg, infer, src = ctx.cfg, ctx.settings.infer, ctx.sources
    prov = common(ctx.run.params, ctx.run.root, src.recordings, cfg.audio_metrics, acc.devices)
    pre = src.features / "acoustic_preprocess.json"
    prov["acoustic"] = {
        "features": str(src.features), "preprocess": json.loads(pre.read_text()) if pre.exists() else None,
        "phoneme_stats": {"path": str(src.stats), "digest": file_digest(src.stats, 12)},
        "code": {"synthesis": acoustic_synthesis_fingerprint()},
        "conditions": cfg.conditions, "audio_conditions": cfg.audio_conditions, "t_infer": cfg.t_infer,
        "schedule": infer.schedule, "seed": infer.seed, "batch_size": infer.batch_size,
        "n_utterances": cfg.n_utterances, "max_frames": cfg.max_frames,
        "e3": _e3_provenance(ctx),
        "floor": ("each system's own prior draw k = seed index k (mu_ph + s_ph n; learned mean + n; n), noise seeded "
                  "with acoustic.infer.seed + k: draw 0 is the sampler's x_S"),
        "mean_reference": "mu_ph gathered by the ground-truth durations (deterministic; never a floor)",
        "clip_x0": infer.clip_x0, "search_max_candidates": infer.search_max_candidates,
        "metrics": {n: metric_info(n) for n in names},
        "vocoder": None if ctx.vocoder is None else {
            **ctx.vocoder.settings, "kind": infer.vocoder,
            "rtf": acc.voc_wall / acc.voc_audio if acc.voc_audio else None,
            "rtf_note": "wall seconds of the renders behind the scored audio (cached renders with their recorded "
                        "time) per second of audio", "same_seed_for_gt": True,
            "reference": "vocoder(ground-truth mel) is the primary audio reference; '@rec' = the recording"},
    }
    return prov


def _e3_provenance(ctx: Context) -> dict[str, Any] | None:
    cfg = ctx.cfg
    if not cfg.e3_t_infer:
        return None
    return {
        "t_infer": cfg.e3_t_infer, "budgets": "each run's largest", "metrics": cfg.e3_metrics,
        "max_frames": cfg.e3_max_frames, "floor_metrics": cfg.e3_floor_metrics,
        "recording_metrics": cfg.e3_recording_metrics,
        "against_recording": cfg.e3_against_recording,
        "scored": "the utterance's first whole words within e3_max_frames reference frames (the same words in "
                  "every set, at each set's own predicted length), vocoded like E1; DTW metrics vs vocoder(GT mel "
                  "of those words) and, with e3_against_recording, the recording ('@rec'); wer / cer vs the "
                  "corpus text of those words; dnsmos reference-free; duration error over the whole utterance",
        "floor": "each system's prior draw k laid out by its own predicted durations",
        "mean_reference": f"mu_ph by {MEAN_REFERENCE_SYSTEM}'s predicted durations (its floor draw 0's run)",
        "recording": "the whole recordings scored with the same metrics (kind recording; never compared)"}
