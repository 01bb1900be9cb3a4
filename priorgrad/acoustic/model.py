"""The acoustic model: FastSpeech 2 encoder + variance adaptor + the dilation-1 diffusion mel decoder.

Spec sections 5, 6, 8, 9 (../shared/spec/priorgrad-acoustic.md). The decoder reuses the vocoder's
residual block and step embedding (priorgrad/core/layers.py): the same layer, a 1x1 conditioner from H
channels instead of an upsampled mel, kernel 3 at dilation 1, and a frame mask. Parameter counts
(asserted in tests): decoder (1+8L)C^2 + (162+L(2H+519))C + 328,784; whole model
VH + L_enc((8+4k)H^2+9H) + 558H + 13HP + 43P^2 + 40P + 6 + decoder; B2's mean head adds 80H+80.

Priors for the decoder's N(mu, diag s^2): ``TablePrior`` (per-token tables, e.g. the data side's
PhonemePrior evaluated on every token id; what checkpoints carry), ``StandardFramePrior`` (B1:
mu = 0, s = 1); B2's mean comes from the network (``mu_head``).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from priorgrad.core import registry
from priorgrad.core.layers import DiffusionEmbedding, ResidualBlock, _conv1d

log = logging.getLogger(__name__)

N_MELS = 80
PITCH_BINS = 300      # Emb(300, H) over coarse f0 (official)
ENERGY_BINS = 256     # Emb(256, H) over clamp(floor(E * 64), 0, 255) (official)
F0_MIN, F0_MAX = 50.0, 1100.0


class FramePrior(Protocol):
    """The contract's prior interface: frame-level token ids (0 = padding) -> (mu, s), each (80, frames)."""

    name: str

    def frame_stats(self, frame_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class StandardFramePrior:
    """B1: N(0, I)."""

    name: str = "standard"

    def frame_stats(self, frame_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(frame_ids)
        return np.zeros((N_MELS, n), np.float32), np.ones((N_MELS, n), np.float32)


def _as_f32(x: Any) -> np.ndarray:
    """A float32 numpy array of a numpy array, list or (any-device) tensor."""
    return np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, np.float32)


class TablePrior:
    """Per-token mean and std tables (V, 80); row lookups by frame token id, padding (id 0 or
    frame_ids < 0) -> mu = 0, s = 1. Built from any FramePrior so that a checkpoint carries its prior."""

    def __init__(self, mu: np.ndarray, std: np.ndarray, name: str = "phoneme",
                 mel_range: tuple[np.ndarray, np.ndarray] | None = None):
        # a checkpoint's tables are tensors (TablePrior.state), possibly on the device it was loaded to
        mu, std = (_as_f32(x) for x in (mu, std))
        if mu.ndim != 2 or mu.shape != std.shape or mu.shape[1] != N_MELS:
            raise ValueError(f"prior tables must both be (V, {N_MELS}), got {mu.shape} and {std.shape}")
        if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError("prior tables must be finite with std > 0")
        self.mu, self.std, self.name = mu, std, name
        # the training mels' per-bin [min, max] (80,) each, carried for the sampler's optional x0 clip
        self.mel_range = None if mel_range is None else (_as_f32(mel_range[0]).reshape(N_MELS),
                                                         _as_f32(mel_range[1]).reshape(N_MELS))

    @classmethod
    def from_prior(cls, prior: Any, vocab_size: int) -> "TablePrior":
        ids = np.arange(vocab_size, dtype=np.int64)
        mu, s = prior.frame_stats(ids)
        mu, s = np.asarray(mu, np.float32).T.copy(), np.asarray(s, np.float32).T.copy()
        mu[0], s[0] = 0.0, 1.0  # <pad>
        return cls(mu, s, getattr(prior, "name", "phoneme"), getattr(prior, "mel_range", None))

    def frame_stats(self, frame_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(frame_ids, np.int64)
        if ids.size and ids.max() >= len(self.mu):
            raise ValueError(f"token id {int(ids.max())} outside the prior's vocabulary of {len(self.mu)}")
        pad = ids <= 0
        mu, s = self.mu[np.maximum(ids, 0)].T.copy(), self.std[np.maximum(ids, 0)].T.copy()
        mu[:, pad], s[:, pad] = 0.0, 1.0
        return mu, s

    def state(self) -> dict[str, Any]:
        # tensors, not numpy arrays: a checkpoint holds only what torch.load(weights_only=True) reads
        st: dict[str, Any] = {"mu": torch.from_numpy(self.mu), "std": torch.from_numpy(self.std), "name": self.name}
        if self.mel_range is not None:
            st["mel_min"], st["mel_max"] = (torch.from_numpy(x) for x in self.mel_range)
        return st


def apply_prior_mode(mu: np.ndarray, s: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Spec section 4 ablations: mean_only (s = 1), std_only (mu = 0)."""
    if mode == "mean_only":
        return mu, np.ones_like(s)
    if mode == "std_only":
        return np.zeros_like(mu), s
    return mu, s


# ----------------------------------------------------------------------------- building blocks
def sinusoid_table(n: int, dim: int) -> torch.Tensor:
    """fairseq's sinusoidal positions: row p for position p (row 0 is padding, all zeros)."""
    half = dim // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / max(half - 1, 1)))
    ang = torch.arange(n, dtype=torch.float32).unsqueeze(1) * freq.unsqueeze(0)
    table = torch.cat([torch.sin(ang), torch.cos(ang)], dim=1)
    if dim % 2:
        table = torch.cat([table, torch.zeros(n, 1)], dim=1)
    table[0] = 0.0
    return table


def positions(mask: torch.Tensor) -> torch.Tensor:
    """1-based positions of the non-padding entries, 0 at padding: mask (B, T) bool -> (B, T) long."""
    return (torch.cumsum(mask.long(), dim=1) * mask.long())


class EncoderLayer(nn.Module):
    """Pre-LN: LN -> MHA (no bias) -> dropout -> residual; LN -> Conv1d(H, 4H, k) * k^-1/2 -> ReLU ->
    dropout -> Linear(4H, H) -> dropout -> residual."""

    def __init__(self, hidden: int, heads: int, kernel: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden)
        self.attn = nn.MultiheadAttention(hidden, heads, dropout=0.0, bias=False, batch_first=True)
        self.ln2 = nn.LayerNorm(hidden)
        self.conv = nn.Conv1d(hidden, 4 * hidden, kernel, padding=kernel // 2)
        self.linear = nn.Linear(4 * hidden, hidden)
        self.kernel = kernel
        self.dropout = dropout

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        keep = (~pad).unsqueeze(-1).to(x.dtype)
        y = self.ln1(x)
        y, _ = self.attn(y, y, y, key_padding_mask=pad, need_weights=False)
        x = (x + F.dropout(y, self.dropout, self.training)) * keep
        y = self.ln2(x)
        y = self.conv(y.transpose(1, 2)).transpose(1, 2) * self.kernel ** -0.5
        y = F.dropout(F.relu(y), self.dropout, self.training)
        y = F.dropout(self.linear(y), self.dropout, self.training)
        return (x + y) * keep


class Encoder(nn.Module):
    def __init__(self, vocab: int, hidden: int, layers: int, heads: int, kernel: int, dropout: float,
                 max_positions: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden, padding_idx=0)
        nn.init.normal_(self.embed.weight, 0.0, hidden ** -0.5)
        with torch.no_grad():
            self.embed.weight[0].zero_()
        self.register_buffer("pos", sinusoid_table(max_positions, hidden), persistent=False)
        self.layers = nn.ModuleList(EncoderLayer(hidden, heads, kernel, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden)
        self.hidden, self.dropout = hidden, dropout

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        pad = tokens == 0
        if tokens.shape[1] >= self.pos.shape[0]:
            raise ValueError(f"{tokens.shape[1]} tokens exceed acoustic.model.max_positions ({self.pos.shape[0] - 1})")
        x = self.embed(tokens) * math.sqrt(self.hidden) + self.pos[positions(~pad)]
        x = F.dropout(x, self.dropout, self.training)
        for layer in self.layers:
            x = layer(x, pad)
        return self.norm(x) * (~pad).unsqueeze(-1).to(x.dtype)


class VariancePredictor(nn.Module):
    """Blocks Conv1d -> ReLU -> LN -> Dropout, then Linear(P, odim). ``with_positions``: the official
    pitch / energy predictors add alpha * sinusoidal positions (alpha a learned scalar) to the input."""

    def __init__(self, idim: int, channels: int, layers: int, kernel: int, dropout: float, odim: int,
                 with_positions: bool, max_positions: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(idim if i == 0 else channels, channels, kernel, padding=kernel // 2)
                                   for i in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(channels) for _ in range(layers))
        self.linear = nn.Linear(channels, odim)
        self.dropout = dropout
        self.with_positions = with_positions
        if with_positions:
            self.pos_alpha = nn.Parameter(torch.ones(1))
            self.register_buffer("pos", sinusoid_table(max_positions, idim), persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, idim), mask (B, T) bool (True = real) -> (B, T, odim)."""
        if self.with_positions:
            x = x + self.pos_alpha * self.pos[positions(mask)]
        keep = mask.unsqueeze(-1).to(x.dtype)
        x = x * keep
        for conv, norm in zip(self.convs, self.norms):
            x = norm(F.relu(conv(x.transpose(1, 2))).transpose(1, 2))
            x = F.dropout(x, self.dropout, self.training) * keep
        return self.linear(x) * keep


def f0_to_coarse(f0_hz: torch.Tensor) -> torch.Tensor:
    """FastSpeech 2's coarse f0: mel-scale bins 1..255 over 50..1100 Hz; unvoiced (f0 <= 0) -> 1."""
    mel = 1127.0 * torch.log1p(f0_hz / 700.0)
    lo, hi = 1127.0 * math.log1p(F0_MIN / 700.0), 1127.0 * math.log1p(F0_MAX / 700.0)
    mel = torch.where(mel > 0, (mel - lo) * 254.0 / (hi - lo) + 1.0, mel)
    mel = torch.where(mel <= 1, torch.ones_like(mel), mel)
    mel = torch.where(mel > 255, torch.full_like(mel, 255.0), mel)
    return (mel + 0.5).long()


def energy_to_bins(energy: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.floor(energy * 64.0), 0, ENERGY_BINS - 1).long()


def expand(x: torch.Tensor, mel2ph: torch.Tensor) -> torch.Tensor:
    """Token features (B, T_tok, H) -> frame features (B, N, H) by the 1-based index mel2ph (0 = padding -> 0)."""
    padded = F.pad(x, (0, 0, 1, 0))
    return torch.gather(padded, 1, mel2ph.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def durations_to_mel2ph(durations: torch.Tensor) -> torch.Tensor:
    """(B, T_tok) integer durations -> (B, N) mel2ph, N = the longest total, 0-padded."""
    rows = []
    for d in durations.long().clamp_min(0):
        idx = torch.repeat_interleave(torch.arange(1, len(d) + 1, device=d.device), d)
        rows.append(idx)
    n = max(1, max(len(r) for r in rows))
    out = torch.zeros(len(rows), n, dtype=torch.long, device=durations.device)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


class MelDecoder(nn.Module):
    """DiffWave-style denoiser over mel frames: kernel 3, dilation 1, conditioner Conv1d(H -> 2C) per layer,
    the frame mask applied after the input, on every layer's x and skip, after the skip ReLU and on the
    output (spec section 6). Output projection zero-initialised."""

    def __init__(self, hidden: int, channels: int, layers: int, max_steps: int):
        super().__init__()
        self.input_projection = _conv1d(N_MELS, channels, 1)
        self.diffusion_embedding = DiffusionEmbedding(max_steps)
        self.residual_layers = nn.ModuleList(ResidualBlock(hidden, channels, 1) for _ in range(layers))
        self.skip_projection = _conv1d(channels, channels, 1)
        self.output_projection = _conv1d(channels, N_MELS, 1)
        nn.init.zeros_(self.output_projection.weight)

    def condition(self, cond: torch.Tensor) -> list[torch.Tensor]:
        """cond (B, H, N) -> per-layer projections; independent of x and t (computed once per utterance)."""
        return [layer.conditioner_projection(cond) for layer in self.residual_layers]

    def denoise(self, x: torch.Tensor, cond_proj: list[torch.Tensor], t: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """x (B, 80, N), mask (B, 1, N) float -> eps_hat (B, 80, N)."""
        x = F.relu(self.input_projection(x)) * mask
        step = self.diffusion_embedding(t)
        skip = None
        for layer, cp in zip(self.residual_layers, cond_proj):
            x, s = layer(x, step, cp)
            x, s = x * mask, s * mask
            skip = s if skip is None else skip + s
        x = skip / math.sqrt(len(self.residual_layers))
        x = F.relu(self.skip_projection(x)) * mask
        return self.output_projection(x) * mask

    def forward(self, x: torch.Tensor, cond: torch.Tensor, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.denoise(x, self.condition(cond), t, mask)


class AcousticModel(nn.Module):
    """Encoder + variance adaptor -> frame condition (B, H, N); the decoder denoises mels given it."""

    def __init__(self, vocab_size: int, hidden: int, predictor: int, encoder_layers: int, decoder_channels: int,
                 decoder_layers: int, *, heads: int, ffn_kernel: int, encoder_dropout: float, duration_layers: int,
                 duration_kernel: int, variance_layers: int, variance_kernel: int, predictor_dropout: float,
                 pitch_embed_dropout: float, max_positions: int, diffusion_steps: int, trainable_prior: bool):
        super().__init__()
        self.encoder = Encoder(vocab_size, hidden, encoder_layers, heads, ffn_kernel, encoder_dropout, max_positions)
        self.duration_predictor = VariancePredictor(hidden, predictor, duration_layers, duration_kernel,
                                                    predictor_dropout, 1, False, max_positions)
        self.pitch_predictor = VariancePredictor(hidden, predictor, variance_layers, variance_kernel,
                                                 predictor_dropout, 2, True, max_positions)
        self.energy_predictor = VariancePredictor(hidden, predictor, variance_layers, variance_kernel,
                                                  predictor_dropout, 1, True, max_positions)
        self.pitch_embed = nn.Embedding(PITCH_BINS, hidden, padding_idx=0)
        self.energy_embed = nn.Embedding(ENERGY_BINS, hidden, padding_idx=0)
        self.pitch_embed_dropout = pitch_embed_dropout
        self.decoder = MelDecoder(hidden, decoder_channels, decoder_layers, diffusion_steps)
        self.mu_head = nn.Linear(hidden, N_MELS) if trainable_prior else None

    def adapt(self, tokens: torch.Tensor, mel2ph: torch.Tensor | None = None, f0: torch.Tensor | None = None,
              uv: torch.Tensor | None = None, energy: torch.Tensor | None = None,
              f0_mean: float = 0.0, f0_std: float = 1.0) -> dict[str, torch.Tensor]:
        """Encoder + variance adaptor. Ground truth given (mel2ph / f0+uv / energy) is used, the rest predicted.

        tokens (B, T_tok) long; mel2ph (B, N) long; f0 z-scored (B, N); uv (B, N) 1 = unvoiced; energy (B, N).
        Returns cond (B, H, N), mask (B, 1, N), mel2ph and the predictor outputs.
        """
        h = self.encoder(tokens)
        tok_mask = tokens != 0
        log_dur = self.duration_predictor(h.detach(), tok_mask).squeeze(-1)
        if mel2ph is None:  # inference: round(exp(x) - 1) >= 0 (official)
            dur = torch.clamp(torch.round(torch.exp(log_dur) - 1.0), min=0).long() * tok_mask.long()
            mel2ph = durations_to_mel2ph(dur)
        frame_mask = mel2ph > 0
        hx = expand(h, mel2ph)
        pitch_out = self.pitch_predictor(hx.detach(), frame_mask)
        energy_pred = self.energy_predictor(hx.detach(), frame_mask).squeeze(-1)
        f0_pred, uv_logit = pitch_out[..., 0], pitch_out[..., 1]
        f0_use = f0 if f0 is not None else f0_pred
        uv_use = uv if uv is not None else (uv_logit > 0).to(hx.dtype)
        f0_hz = torch.where(uv_use > 0.5, torch.zeros_like(f0_use), f0_use * f0_std + f0_mean)
        pe = F.dropout(self.pitch_embed(f0_to_coarse(f0_hz)), self.pitch_embed_dropout, self.training)
        e_use = energy if energy is not None else energy_pred
        ee = self.energy_embed(energy_to_bins(e_use))
        keep = frame_mask.unsqueeze(-1).to(hx.dtype)
        cond = (hx + pe + ee) * keep
        out = {"cond": cond.transpose(1, 2), "mask": frame_mask.unsqueeze(1).to(hx.dtype), "mel2ph": mel2ph,
               "log_dur": log_dur, "f0_pred": f0_pred, "uv_logit": uv_logit, "energy_pred": energy_pred}
        if self.mu_head is not None:  # B2: mu_theta = Linear(H -> 80) of the expanded encoder output
            out["mu"] = (self.mu_head(hx) * keep).transpose(1, 2)
        return out


def build_acoustic_model(cfg, vocab_size: int) -> AcousticModel:
    """The model an AcousticConfig describes (priorgrad/acoustic/model_config.py)."""
    m, s = cfg.model, cfg.size
    if s.decoder_channels < N_MELS:
        # eps_hat = Conv1d(C -> 80)(h) spans at most C of the 80 mel directions; the noise in the others is never
        # removed and grows ~163x over the reverse process, so samples stay far above the mu-alone floor however
        # long the model trains (tests/test_acoustic_model_train.py, docs/acoustic-model.md).
        log.warning("acoustic size %r: decoder_channels C=%d < %d mel bins: the decoder can denoise at most C of "
                    "the %d mel directions, so its samples cannot converge (use C >= %d for mels of any quality)",
                    m.size, s.decoder_channels, N_MELS, N_MELS, N_MELS)
    return AcousticModel(vocab_size, s.hidden, s.predictor, s.encoder_layers, s.decoder_channels, s.decoder_layers,
                         heads=m.heads, ffn_kernel=m.ffn_kernel, encoder_dropout=m.encoder_dropout,
                         duration_layers=m.duration_layers, duration_kernel=m.duration_kernel,
                         variance_layers=m.variance_layers, variance_kernel=m.variance_kernel,
                         predictor_dropout=m.predictor_dropout, pitch_embed_dropout=m.pitch_embed_dropout,
                         max_positions=m.max_positions, diffusion_steps=cfg.diffusion.num_steps,
                         trainable_prior=registry.prior(m.prior, "acoustic").learns_mean)


def decoder_param_formula(hidden: int, channels: int, layers: int) -> int:
    return (1 + 8 * layers) * channels ** 2 + (162 + layers * (2 * hidden + 519)) * channels + 328_784


def model_param_formula(vocab: int, hidden: int, predictor: int, encoder_layers: int, channels: int, layers: int,
                        kernel: int = 9, trainable_prior: bool = False) -> int:
    h, p = hidden, predictor
    total = (vocab * h + encoder_layers * ((8 + 4 * kernel) * h * h + 9 * h) + 558 * h + 13 * h * p
             + 43 * p * p + 40 * p + 6 + decoder_param_formula(h, channels, layers))
    return total + (80 * h + 80 if trainable_prior else 0)
