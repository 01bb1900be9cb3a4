"""Diffusion priors behind one interface.

``StandardPrior`` is DiffWave's N(0, I); ``EnergyPrior`` is PriorGrad's N(0, diag(sigma^2)) with sigma
following the mel frame energy (spec section 2). A vocoder prior turns a batch's conditioning (its
log-mels and the waveform length) into a ``PriorDraw`` (priorgrad/core/prior_contract.py) with ``condition``;
the trainer, the samplers and the diffusion module only ever call that, so nothing else knows which prior
it is. Both priors here are frame-diagonal (one sigma per mel frame, repeated over its hop of samples):
they share ``frame_sigma_draw`` and also expose ``sigma_frames`` (the resident-crops fast path reads it).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol, Sequence

import numpy as np

from priorgrad.core.audio import PRESETS, MelPreset, get_preset, mel_to_linear_magnitude

if TYPE_CHECKING:  # torch is imported where a draw is made, not by this module's statistics helpers
    import torch

    from priorgrad.core.prior_contract import PriorDraw

# With the 1e-5 log floor the smallest possible frame energy of the hifigan mel is sqrt(80 * 1e-5)
# (each preset has its own: MelPreset.min_frame_energy; diffwave's clamp at -80 dB gives sqrt(80 * 1e-4)).
MIN_FRAME_ENERGY = PRESETS["hifigan"].min_frame_energy


def resolve_max_energy(max_energy: float | str | None, preset: str | MelPreset) -> float | None:
    """``prior.max_energy`` as used: ``"preset"`` = the front-end's tuned override (hifigan 4.0, diffwave
    None = dataset E_max); a number or None as given."""
    if max_energy == "preset":
        return get_preset(preset).max_energy
    if isinstance(max_energy, str):
        raise ValueError(f"prior.max_energy: {max_energy!r} must be a number, null or 'preset'")
    return max_energy


def frame_energy(log_mel: np.ndarray, preset: str | MelPreset = "hifigan") -> np.ndarray:
    """E = sqrt(sum over mel bins of the linear mel magnitude), per frame: shape (frames,).

    Linear magnitudes are summed, not squared (as the official code).
    """
    log_mel = np.asarray(log_mel)
    if log_mel.ndim != 2:
        raise ValueError(f"frame_energy expects (n_mels, frames), got shape {log_mel.shape}")
    return np.sqrt(mel_to_linear_magnitude(log_mel, preset).sum(axis=0))


def energy_sigma(log_mel: np.ndarray, e_min: float, e_max: float, std_min: float = 0.1,
                 max_energy: float | None = 4.0, preset: str = "hifigan") -> np.ndarray:
    """Per-frame sigma in [std_min, 1]: max((E - E_min) / (E_max - E_min), std_min).

    ``max_energy`` (official override, default 4.0) replaces E_max; frame energies are clipped to the
    effective E_max so that sigma never exceeds 1 (also for valid/test frames louder than training).
    ``max_energy=None`` uses the dataset's E_max.
    """
    top = float(e_max if max_energy is None else max_energy)
    if not top > e_min:
        raise ValueError(f"energy prior: E_max ({top}) must exceed E_min ({e_min})")
    energy = np.minimum(frame_energy(log_mel, preset), top)
    sigma = (energy - e_min) / (top - e_min)
    return np.clip(sigma, std_min, 1.0).astype(np.float32)


class Prior(Protocol):
    name: str

    def condition(self, mels: Sequence[np.ndarray], hop_length: int, n_samples: int,
                  device: "torch.device | str" = "cpu") -> "PriorDraw":
        """The prior for a batch of log-mels (each (n_mels, frames), unpadded), as a PriorDraw over
        waveforms (B, n_samples); samples past an utterance's end belong to the prior's padding rule."""


def frame_sigma_draw(sigma_frames: Callable[[np.ndarray], np.ndarray], mels: Sequence[np.ndarray],
                     hop_length: int, n_samples: int, device: "torch.device | str" = "cpu") -> "PriorDraw":
    """N(0, diag(sigma^2)) with sigma per mel frame, repeated over the frame's hop of samples.

    Samples past an utterance's last frame (batch padding) take its smallest sigma: the padded tail stays
    as quiet as the utterance's quietest frame.
    """
    import torch

    from priorgrad.core.prior_contract import DiagonalDraw

    sig = np.ones((len(mels), n_samples), dtype=np.float32)
    for i, m in enumerate(mels):
        s = sigma_frames(np.asarray(m))
        sig[i, :len(s) * hop_length] = np.repeat(s, hop_length)
        sig[i, len(s) * hop_length:] = s.min() if len(s) else 1.0
    return DiagonalDraw(torch.from_numpy(sig).to(device))


@dataclass
class StandardPrior:
    """DiffWave: N(0, I), sigma = 1 everywhere."""

    name: str = "standard"

    def sigma_frames(self, log_mel: np.ndarray) -> np.ndarray:
        """Standard deviation per mel frame, shape (frames,), float32: ones."""
        return np.ones(np.asarray(log_mel).shape[-1], dtype=np.float32)

    def condition(self, mels: Sequence[np.ndarray], hop_length: int, n_samples: int,
                  device: "torch.device | str" = "cpu") -> "PriorDraw":
        # sigma = 1 as a tensor (not the scalar 1.0): the same float ops as the energy prior's path
        return frame_sigma_draw(self.sigma_frames, mels, hop_length, n_samples, device)


@dataclass
class EnergyPrior:
    """PriorGrad: sigma from the frame energy, normalised by training-set statistics."""

    e_min: float
    e_max: float
    std_min: float = 0.1
    max_energy: float | None = 4.0
    preset: str = "hifigan"
    name: str = "energy"

    def sigma_frames(self, log_mel: np.ndarray) -> np.ndarray:
        """Standard deviation per mel frame, shape (frames,), float32, in [std_min, 1]."""
        return energy_sigma(log_mel, self.e_min, self.e_max, self.std_min, self.max_energy, self.preset)

    def condition(self, mels: Sequence[np.ndarray], hop_length: int, n_samples: int,
                  device: "torch.device | str" = "cpu") -> "PriorDraw":
        return frame_sigma_draw(self.sigma_frames, mels, hop_length, n_samples, device)


def build_standard(prior_cfg: Any, stats: dict[str, Any] | None, preset: str) -> Prior:
    return StandardPrior()


def build_energy(prior_cfg: Any, stats: dict[str, Any] | None, preset: str) -> Prior:
    if not stats:
        raise ValueError("prior.type is 'energy' but no prior statistics were given (run prior-stats first)")
    name = get_preset(preset).name
    if stats.get("preset", name) != name:
        # E_min / E_max are in the units of one mel scale; another preset's would be meaningless
        raise ValueError(f"prior statistics were computed with audio.preset {stats['preset']!r}, "
                         f"but audio.preset is {name!r}: re-run prior-stats")
    return EnergyPrior(float(stats["e_min"]), float(stats["e_max"]), prior_cfg.std_min,
                       resolve_max_energy(prior_cfg.max_energy, preset), name)


def make_prior(prior_cfg: Any, stats: dict[str, Any] | None, preset: str) -> Prior:
    """Build the prior named by the config (``prior.type``) through the registry's builder."""
    from priorgrad.core import registry

    try:
        build = registry.builder(prior_cfg.type)
    except registry.UnknownName as e:
        raise ValueError(f"prior.type: {e}") from None
    return build(prior_cfg, stats, preset)


# ----------------------------------------------------------------------------- statistics
def compute_energy_stats(mels: Iterable[tuple[str, np.ndarray]], preset: str = "hifigan") -> dict[str, Any]:
    """E_min / E_max over every frame of every (full-length) training mel."""
    get_preset(preset)
    e_min, e_max, n_frames, n_utts = np.inf, -np.inf, 0, 0
    for utt, mel in mels:
        e = frame_energy(mel, preset)
        if e.size == 0:
            raise ValueError(f"{utt}: mel has no frames")
        if not np.all(np.isfinite(e)):
            raise ValueError(f"{utt}: mel contains NaN or infinite values")
        e_min, e_max = min(e_min, float(e.min())), max(e_max, float(e.max()))
        n_frames += int(e.size)
        n_utts += 1
    if n_utts == 0:
        raise ValueError("no training utterances to compute the prior statistics from")
    return {"e_min": e_min, "e_max": e_max, "n_frames": n_frames, "n_utterances": n_utts,
            "preset": preset, "split": "train"}


def load_stats(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: prior statistics not found (run `priorgrad prior-stats` first)")
    try:
        stats = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    for key in ("e_min", "e_max"):
        if key not in stats or not isinstance(stats[key], (int, float)):
            raise ValueError(f"{path}: missing numeric key {key!r}")
    return stats
