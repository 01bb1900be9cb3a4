"""Synthesis: mel -> waveform with the ancestral sampler, per-utterance seeding, batched.

``generate`` is shared by training-time validation and ``synthesize`` (the CLI), so both produce the
same waveform for the same checkpoint, mel and seed.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from priorgrad.core.audio import MelPreset, get_preset, load_audio, log_mel, write_wav
from priorgrad.core.diffusion import Diffusion
from priorgrad.core.logs import show_progress
from priorgrad.vocoder.prior import Prior, make_prior
from priorgrad.core.prior_contract import sigma_of
from priorgrad.core.runtime import resolve_device
# the shared sampler inputs stay importable from here (this module's public API before they moved down)
from priorgrad.vocoder.sampling_inputs import batch_mels, utterance_noise, utterance_seed  # noqa: F401

log = logging.getLogger(__name__)


@torch.no_grad()
def generate(model: torch.nn.Module, diffusion: Diffusion, prior: Prior, mels: Sequence[np.ndarray],
             seeds: Sequence[int], steps: int | list[float], preset: str | MelPreset,
             device: torch.device | str = "cpu") -> list[np.ndarray]:
    """Waveforms for a batch of log-mels (each (n_mels, frames)); utterance i's noise comes from seeds[i].

    Shorter mels are padded (``batch_mels``) and their outputs cut back to length.
    """
    device = torch.device(device)
    hop_length = get_preset(preset).hop_length
    mel, lengths, n_samples = batch_mels(mels, preset)
    mel_t = torch.from_numpy(mel).to(device)
    prior_draw = prior.condition(mels, hop_length, n_samples, device)
    draw = utterance_noise(seeds, lengths, hop_length, (len(mels), n_samples))

    cond = model.condition(mel_t, sigma_of(prior_draw))  # once per utterance, not once per step

    def denoise(x: torch.Tensor, _c: Any, t: torch.Tensor) -> torch.Tensor:
        return model.denoise(x, cond, t)

    out = diffusion.sample(denoise, None, prior_draw, steps, noise=lambda k: draw(k).to(device))
    out = out.float().cpu().numpy()
    return [out[i, :lengths[i] * hop_length].copy() for i in range(len(mels))]


def prior_noise(prior: Prior, mels: Sequence[np.ndarray], seeds: Sequence[int], preset: str | MelPreset
                ) -> list[np.ndarray]:
    """The prior's own sample x_T = L n (sigma * n), without denoising: the floor a trained system must beat.

    It is exactly the sampler's starting point for the same seeds, clipped to [-1, 1] as the sampler
    clips its output (so it is scored on the same footing as a generated waveform).
    """
    hop_length = get_preset(preset).hop_length
    _, lengths, n_samples = batch_mels(mels, preset)
    x = prior.condition(mels, hop_length, n_samples).draw(
        utterance_noise(seeds, lengths, hop_length, (len(mels), n_samples))(0))
    out = torch.clamp(x, -1.0, 1.0).numpy()
    return [out[i, :lengths[i] * hop_length].copy() for i in range(len(mels))]


def _load_input(path: Path, preset: str) -> np.ndarray:
    if path.suffix == ".npy":
        mel = np.load(path)
        if mel.ndim != 2 or mel.shape[0] != get_preset(preset).n_mels:
            raise ValueError(f"{path}: expected a log-mel of shape ({get_preset(preset).n_mels}, frames), "
                             f"got {mel.shape}")
        if not np.all(np.isfinite(mel)):
            raise ValueError(f"{path}: mel contains NaN or infinite values")
        return mel.astype(np.float32)
    return log_mel(load_audio(path, preset), preset)


def collect_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Files given directly, or every .npy / .wav inside given directories (sorted)."""
    paths: list[Path] = []
    for p in map(Path, inputs):
        if p.is_dir():
            found = sorted(list(p.glob("*.npy")) + list(p.glob("*.wav")))
            if not found:
                raise FileNotFoundError(f"{p}: no .npy or .wav inputs in this directory")
            paths.extend(found)
        elif p.exists():
            paths.append(p)
        else:
            raise FileNotFoundError(f"{p}: input not found")
    return paths


def synthesize(checkpoint: str | Path, inputs: Sequence[str | Path], out_dir: str | Path,
               steps: int | list[float] = 6, batch_size: int = 8, seed: int = 0, device: str = "auto",
               progress: bool | None = None, skip_existing: bool = False, precision: str = "fp32",
               cuda_graphs: bool = False) -> dict[str, Any]:
    """Checkpoint + mels (.npy) or wavs -> out_dir/<stem>.wav; returns timing (RTF) and settings.

    precision "bf16" (network in bfloat16) and cuda_graphs (one CUDA graph per batch shape, CUDA only)
    take the fast sampler of priorgrad.vocoder.fast_infer; the defaults take ``generate``.
    """
    from priorgrad.vocoder.model import load_model
    from priorgrad.core.config import Params

    dev = resolve_device(device)
    model, ckpt = load_model(checkpoint, dev)
    params = Params.from_dict(ckpt["params"], source=f"{checkpoint} params")
    preset = get_preset(params.audio.preset)
    diffusion = Diffusion.from_config(params.diffusion)
    diffusion.schedule(steps)  # reject an unalignable schedule before any work
    prior = make_prior(params.prior, ckpt.get("prior_stats"), preset.name)
    fast = None
    if precision != "fp32" or cuda_graphs:
        from priorgrad.vocoder.fast_infer import FastSampler

        fast = FastSampler(model, diffusion, steps, dev, precision, cuda_graphs)
    out_dir = Path(out_dir)
    paths = collect_inputs(inputs)
    if skip_existing:
        paths = [p for p in paths if not (out_dir / f"{p.stem}.wav").exists()]
    # Sort by length so batches pad little; output does not depend on the order.
    mels = {p: _load_input(p, preset.name) for p in paths}
    order = sorted(paths, key=lambda p: mels[p].shape[1])
    wall, audio_s = 0.0, 0.0
    show = show_progress(progress)
    for i in tqdm(range(0, len(order), batch_size), desc="synthesize", unit="batch", disable=not show):
        batch = order[i:i + batch_size]
        t0 = time.perf_counter()
        batch_mels, seeds = [mels[p] for p in batch], [utterance_seed(seed, p.stem) for p in batch]
        if fast is None:
            wavs = generate(model, diffusion, prior, batch_mels, seeds, steps, preset, dev)
        else:
            from priorgrad.vocoder.fast_infer import generate_fast

            wavs = generate_fast(fast, prior, batch_mels, seeds, preset)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        wall += time.perf_counter() - t0
        for p, w in zip(batch, wavs):
            audio_s += len(w) / preset.sample_rate
            write_wav(out_dir / f"{p.stem}.wav", w, preset.sample_rate)
    return {"n": len(order), "steps": steps, "batch_size": batch_size, "seed": seed, "device": str(dev),
            "wall_seconds": wall, "audio_seconds": audio_s, "rtf": (wall / audio_s) if audio_s else None,
            "checkpoint_step": int(ckpt["step"]), "precision": precision, "cuda_graphs": cuda_graphs}


def mel_renderer(checkpoint: str | Path, steps: int | list[float], seed: int,
                 device: str | torch.device) -> Callable[[np.ndarray, str], np.ndarray]:
    """A trained vocoder checkpoint as a (hifigan ln-mel, utterance key) -> waveform function, seeded per key.

    The registry's "priorgrad" renderer: the acoustic model's synthesis renders its mels with it.
    """
    from priorgrad.core.config import Params
    from priorgrad.vocoder.model import load_model

    device = resolve_device(device) if isinstance(device, str) else device
    model, ckpt = load_model(checkpoint, device)
    params = Params.from_dict(ckpt["params"], source=f"{checkpoint} params")
    if params.audio.preset != "hifigan":
        raise ValueError(f"{checkpoint}: vocoder uses the {params.audio.preset} mel; the acoustic model makes hifigan mels")
    diffusion = Diffusion.from_config(params.diffusion)
    prior = make_prior(params.prior, ckpt.get("prior_stats"), params.audio.preset)

    def run(mel: np.ndarray, key: str) -> np.ndarray:
        return generate(model, diffusion, prior, [mel.astype(np.float32)], [utterance_seed(seed, key)],
                        steps, params.audio.preset, device)[0]

    return run
