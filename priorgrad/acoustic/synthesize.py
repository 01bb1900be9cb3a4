"""Mel synthesis under the spec's conditions (section 11): checkpoints and features in, mels out.

E1 = ground-truth durations, f0 and energy; E2 = ground-truth durations, predicted f0 / energy;
E3 = everything predicted (also the only condition for raw text). The sampling itself is
``priorgrad.acoustic.sampler.sample_mels``, the one routine validation, synthesis, the schedule search and
the benchmark all call.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from priorgrad.acoustic.dataset import FeatureSet, Utterance
from priorgrad.acoustic.model import AcousticModel, TablePrior, build_acoustic_model
from priorgrad.acoustic.model_config import AcousticConfig
# the sampler's names stay importable from here (this module's public API before the sampler got its own)
from priorgrad.acoustic.sampler import CONDITIONS, make_schedule, sample_mels, x0_range_of  # noqa: F401
from priorgrad.acoustic.schedule_search import search_schedule
from priorgrad.core.diffusion import Diffusion, StepSchedule, strided_schedule
from priorgrad.core.fileio import save_npy_atomic, write_json_atomic
from priorgrad.core.logs import show_progress
from priorgrad.core.seeds import utterance_seed
from priorgrad.core.runtime import resolve_device

log = logging.getLogger(__name__)


def load_frame_prior(path: str | Path) -> Any:
    """The phoneme prior of a stats file (phoneme_stats.npz: mu, std (V, 80), already backed off and clipped),
    in mode mean_std: the ablation mode is applied by the caller."""
    from priorgrad.acoustic.phoneme_prior import PhonemePrior

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: phoneme statistics not found (run `priorgrad acoustic prior-stats` first)")
    return PhonemePrior.load(path, mode="mean_std")


def searched_schedule(model: AcousticModel, diffusion: Diffusion, model_cfg, table: TablePrior | None,
                      utterance: Utterance, f0_stats: tuple[float, float], device: torch.device, steps: int,
                      max_candidates: int, seed: int, clip_x0: str = "none") -> tuple[StepSchedule, dict[str, Any]]:
    """The official grid search for ``steps`` (2, 6, 12; T = the training schedule) on one HELD-OUT
    utterance (the caller passes a validation utterance, never a test one); (schedule, search record)."""
    if steps == diffusion.num_steps:
        return strided_schedule(diffusion.betas, steps), {"n_steps": steps, "searched": False}
    rec = search_schedule(model, diffusion, model_cfg, table, utterance, f0_stats, device, steps, max_candidates,
                          seed, clip_x0=clip_x0)
    return StepSchedule(np.asarray(rec["eta"]), np.asarray(rec["t"]), f"searched{steps}"), rec


def load_acoustic_checkpoint(path: str | Path, device: torch.device | str = "cpu"
                             ) -> tuple[AcousticModel, AcousticConfig, dict[str, Any]]:
    """(model in eval mode, its config, the checkpoint) rebuilt from the checkpoint alone."""
    from priorgrad.core import checkpoint as ckpt_io

    ckpt = ckpt_io.load(path, map_location="cpu")
    for key in ("vocab", "f0_stats"):
        if key not in ckpt:
            raise ValueError(f"{path}: lacks {key!r} (not an acoustic model checkpoint?)")
    cfg = AcousticConfig.from_dict(ckpt["params"], source=f"{path} params")
    model = build_acoustic_model(cfg, len(ckpt["vocab"]))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), cfg, ckpt


def table_from_ckpt(ckpt: dict[str, Any]) -> TablePrior | None:
    st = ckpt.get("prior_table")
    if not st:
        return None
    rng = (st["mel_min"], st["mel_max"]) if "mel_min" in st else None
    return TablePrior(st["mu"], st["std"], st["name"], rng)


def synthesize(checkpoint: str | Path, out_dir: str | Path, features: str | Path | None = None,
               split: str = "test", conditions: Sequence[str] = ("E1",), texts: Sequence[str] = (),
               schedule: StepSchedule | None = None, seed: int | None = None, batch_size: int | None = None,
               device: str | None = None, max_utterances: int = 0, vocoder: str | None = None,
               vocoder_checkpoint: str | Path | None = None, progress: bool | None = None,
               clip_x0: str | None = None, prior_draw: int | None = None) -> dict[str, Any]:
    """Write out_dir/<condition>/<utt>.npy (and .wav with a vocoder) for a split and/or raw texts (E3).

    Returns timing (mel RTF, audio RTF) and the settings used (written to out_dir/synthesis.json).
    ``clip_x0``: overrides the checkpoint's acoustic.infer.clip_x0. ``prior_draw`` = k: instead of sampling,
    write the system's prior draw k (the sampler's start x_S + mu for seed + k: the acoustic floor; draw 0
    is exactly what sampling with ``seed`` starts from).
    """
    from priorgrad.acoustic.metrics_mel import mel_metrics

    dev = resolve_device(device or "auto")
    model, cfg, ckpt = load_acoustic_checkpoint(checkpoint, dev)
    inf = cfg.infer
    dev = resolve_device(device or inf.device)
    model = model.to(dev)
    diffusion = Diffusion(cfg.diffusion.num_steps, cfg.diffusion.beta_start, cfg.diffusion.beta_end)
    seed = inf.seed if seed is None else seed
    clip_x0 = inf.clip_x0 if clip_x0 is None else clip_x0
    batch_size = batch_size or inf.batch_size
    table = table_from_ckpt(ckpt)
    f0_stats = (float(ckpt["f0_stats"]["mean"]), float(ckpt["f0_stats"]["std"]))
    search_rec = None
    if schedule is None and inf.schedule == "searched":
        if features is None:
            raise ValueError("acoustic.infer.schedule 'searched' needs --features (the search runs on the first "
                             "validation utterance)")
        valid = FeatureSet(features).utterances("valid")
        if not valid:
            raise ValueError(f"{features}: no validation utterance for the schedule search (split 'valid')")
        schedule, search_rec = searched_schedule(model, diffusion, cfg.model, table, valid[0], f0_stats, dev,
                                                 inf.steps, inf.search_max_candidates, seed, clip_x0)
    schedule = schedule or make_schedule(diffusion, inf.schedule, inf.steps, inf.betas)
    out_dir = Path(out_dir)
    jobs: list[tuple[str, list[Utterance] | None, list[str], torch.Tensor | None]] = []
    if features is not None:
        fs = FeatureSet(features)
        if fs.vocab != list(ckpt["vocab"]):
            raise ValueError(f"{features}: vocabulary differs from the checkpoint's ({checkpoint})")
        utts = fs.utterances(split)
        if max_utterances:
            utts = utts[:max_utterances]
        if not utts:
            raise ValueError(f"{features}: no utterances in split {split!r}")
        for c in conditions:
            for i in range(0, len(utts), batch_size):
                chunk = utts[i:i + batch_size]
                jobs.append((c, chunk, [u.utt for u in chunk], None))
    if texts:
        tok = text_to_tokens(texts, list(ckpt["vocab"]))
        names = [f"text{i:03d}" for i in range(len(texts))]
        for i in range(0, len(texts), batch_size):
            jobs.append(("E3", None, names[i:i + batch_size], tok[i:i + batch_size]))
    voc = None
    if vocoder or inf.vocoder == "priorgrad" and vocoder_checkpoint:
        from priorgrad.acoustic.vocode import make_vocoder

        voc = make_vocoder(vocoder or inf.vocoder, vocoder_checkpoint, inf, seed, dev)
    mel_wall, voc_wall, frames = 0.0, 0.0, 0
    clipped_runs: list[list[float]] = []
    metrics: dict[str, list[dict[str, float]]] = {}
    show = show_progress(progress)
    for c, chunk, names, toks in tqdm(jobs, desc="acoustic synthesize", unit="batch", disable=not show):
        t0 = time.perf_counter()
        clipped: list[float] = []
        noise_seed = seed + (prior_draw or 0)
        res = sample_mels(model, diffusion, cfg.model, table, chunk, schedule,
                          [utterance_seed(noise_seed, f"{c}:{n}") for n in names], c, f0_stats, dev, tokens=toks,
                          clip_x0=clip_x0, clipped=clipped, start_only=prior_draw is not None)
        if clipped:
            clipped_runs.append(clipped)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        mel_wall += time.perf_counter() - t0
        for j, (name, r) in enumerate(zip(names, res)):
            frames += r["mel"].shape[1]
            save_npy_atomic(out_dir / c / f"{name}.npy", r["mel"])
            if c == "E3":  # the predicted durations per token (frames), for duration error; beside, not among, the mels
                n_tok = len(chunk[j].tokens) if chunk is not None else int(r["mel2ph"].max(initial=0))
                save_npy_atomic(out_dir / f"{c}-durations" / f"{name}.npy",
                                np.bincount(r["mel2ph"], minlength=n_tok + 1)[1:n_tok + 1].astype(np.int64))
            if chunk is not None and c in ("E1", "E2"):
                floor = r["mu"] if table is None else _floor_mu(table, chunk[j])
                metrics.setdefault(c, []).append(mel_metrics(r["mel"], chunk[j].mel, floor))
            if voc is not None and r["mel"].shape[1] == 0:
                log.warning("%s/%s: predicted durations are all 0 frames; no audio rendered", c, name)
            elif voc is not None:
                t1 = time.perf_counter()
                wav = voc(r["mel"], f"{c}:{name}")
                voc_wall += time.perf_counter() - t1
                from priorgrad.core.audio import write_wav
                write_wav(out_dir / c / f"{name}.wav", wav, 22050)
    audio_s = frames * 256 / 22050
    summary = {
        "checkpoint": str(checkpoint), "checkpoint_step": int(ckpt["step"]), "prior": cfg.model.prior,
        "schedule": {"name": schedule.name, "eta": schedule.eta.tolist(), "t": schedule.t.tolist()},
        "schedule_search": search_rec, "clip_x0": clip_x0, "prior_draw": prior_draw,
        # fraction of the real mel elements whose predicted x0 was clipped, per step (first step first)
        "clipped_fraction_per_step": np.mean(clipped_runs, axis=0).tolist() if clipped_runs else None,
        "seed": seed, "device": str(dev), "n_jobs": len(jobs), "audio_seconds": audio_s,
        "mel_wall_seconds": mel_wall, "mel_rtf": mel_wall / audio_s if audio_s else None,
        "vocoder": None if voc is None else voc.name,
        "vocoder_rtf": voc_wall / audio_s if (voc is not None and audio_s) else None,
        "metrics": {c: {k: float(np.mean([m[k] for m in ms])) for k in ms[0]} for c, ms in metrics.items()},
    }
    write_json_atomic(out_dir / "synthesis.json", summary)
    return summary


def _floor_mu(table: TablePrior, u: Utterance) -> np.ndarray:
    return table.frame_stats(u.frame_ids())[0]


def text_to_tokens(texts: Sequence[str], vocab: list[str]) -> torch.Tensor:
    """Raw text -> padded token ids through the data side's tokenizer (priorgrad.acoustic.text)."""
    try:
        from priorgrad.acoustic import text as text_mod  # the data side's module
    except ImportError as e:
        raise NotImplementedError("synthesis from raw text needs the text front-end priorgrad/acoustic/text.py "
                                  "(the data side of issue 10), which is not in this checkout") from e
    tokenize = getattr(text_mod, "tokenize", None)
    if tokenize is None:
        raise NotImplementedError("priorgrad/acoustic/text.py has no tokenize(text) -> list[str]; "
                                  "adapt text_to_tokens in priorgrad/acoustic/synthesize.py to its API")
    seqs = []
    index = {t: i for i, t in enumerate(vocab)}
    for i, txt in enumerate(texts):
        toks = list(tokenize(txt))
        unknown = [t for t in toks if t not in index]
        if unknown:
            raise ValueError(f"text {i} ({txt[:40]!r}): tokens {unknown} are not in the checkpoint's vocabulary")
        seqs.append([index[t] for t in toks])
    out = torch.zeros(len(seqs), max(len(s) for s in seqs), dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s)
    return out
