"""The evaluate stage's synthesis, cached: each checkpoint at each T_infer, and each prior's own noise.

A synthesised test set is reused only when everything it depends on is unchanged: the checkpoint's
bytes, T_infer, the inputs, the seed, the batch size (padding changes a batched utterance's tail) and
the code of the sampler, model and prior (``priorgrad.core.fingerprint.synthesis_fingerprint``).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from experiments.testset import EvaluateError
from priorgrad.core.config import Params, params_hash
from priorgrad.core.fileio import file_digest, write_json_atomic

DONE = "synthesis.json"


def _cached(gen_dir: Path) -> dict[str, Any] | None:
    done = gen_dir / DONE
    if done.exists():
        return json.loads(done.read_text())
    if gen_dir.exists():
        shutil.rmtree(gen_dir)  # a killed earlier attempt: redo it whole, so the RTF covers every file
    return None


def synthesis_key(ckpt: Path, t_infer: int, inputs: dict[str, Any], params: Params) -> str:
    from priorgrad.core.fingerprint import synthesis_fingerprint

    return params_hash({"ckpt": file_digest(ckpt, 12), "t": t_infer, "inputs": inputs, "seed": params.infer.seed,
                        "batch_size": params.infer.batch_size, "code": synthesis_fingerprint()})


def synthesize_checkpoint(name: str, ckpt: Path, t_infer: int, mel_dir: Path, inputs: dict[str, Any],
                          params: Params, work: Path) -> tuple[Path, dict[str, Any]]:
    """Synthesises the test inputs from one checkpoint at T_infer (or reuses them); returns (dir, timing)."""
    from priorgrad.vocoder.infer import synthesize

    if not ckpt.exists():
        raise EvaluateError(f"{ckpt}: checkpoint of {name} not found")
    gen_dir = work / "gen" / f"{name}-T{t_infer}-{synthesis_key(ckpt, t_infer, inputs, params)}"
    timing = _cached(gen_dir)
    if timing is None:
        timing = synthesize(ckpt, sorted(str(p) for p in mel_dir.glob("*.npy")), gen_dir, steps=t_infer,
                            batch_size=params.infer.batch_size, seed=params.infer.seed, device=params.infer.device)
        write_json_atomic(gen_dir / DONE, timing)
    return gen_dir, timing


def synthesize_prior_noise(system: str, ckpt: Path, draw: int, mel_dir: Path, inputs: dict[str, Any],
                           params: Params, work: Path) -> Path:
    """The floor: the prior of ``ckpt`` (its type and training statistics) sampled without denoising.

    Draw k uses the base seed infer.seed + k, so draw 0 is exactly the starting noise x_T of every
    trained system's synthesis of the same utterance.
    """
    import numpy as np

    from priorgrad.core.audio import get_preset, write_wav
    from priorgrad.core.checkpoint import load
    from priorgrad.vocoder.infer import prior_noise, utterance_seed
    from priorgrad.vocoder.prior import make_prior

    ck = load(ckpt)
    cp = Params.from_dict(ck["params"], source=f"{ckpt} params")
    key = params_hash({"prior": cp.prior.__dict__, "stats": ck.get("prior_stats"), "preset": cp.audio.preset,
                       "inputs": inputs, "seed": params.infer.seed + draw,
                       "code": _floor_fingerprint()})
    gen_dir = work / "floor" / f"{system}-noise{draw}-{key}"
    if _cached(gen_dir) is None:
        preset = get_preset(cp.audio.preset)
        prior = make_prior(cp.prior, ck.get("prior_stats"), preset.name)
        paths = sorted(mel_dir.glob("*.npy"))
        mels = [np.load(p) for p in paths]
        wavs = prior_noise(prior, mels, [utterance_seed(params.infer.seed + draw, p.stem) for p in paths],
                           preset)
        for p, w in zip(paths, wavs):
            write_wav(gen_dir / f"{p.stem}.wav", w, preset.sample_rate)
        write_json_atomic(gen_dir / DONE, {"n": len(paths), "draw": draw, "prior": cp.prior.type})
    return gen_dir


def _floor_fingerprint() -> str:
    from priorgrad.core.fingerprint import code_fingerprint

    return code_fingerprint(("priorgrad.vocoder.infer", "experiments.synthesis"))
