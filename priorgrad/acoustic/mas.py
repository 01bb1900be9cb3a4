"""Monotonic Alignment Search and the two-stage MAS aligner (spec section 2, "any corpus").

:func:`maximum_path` is monotonic_align/core.pyx (Glow-TTS / Grad-TTS) in numpy, vectorised over
tokens (and over a batch): float32 values, V[x, y] = L[x, y] + max(V[x, y-1] (stay), V[x-1, y-1]
(advance)), the stay option closed at x = y and the advance option at x = 0; the backtrack from
(X-1, Y-1) moves to the previous token iff x != 0 and (x == y or V[x, y-1] < V[x-1, y-1]). Every
token gets >= 1 frame, so X <= Y is required (an error naming the utterance otherwise).

The aligner (:func:`train_aligner`): a small token encoder (embedding + conv layers) and
mu = Linear(H -> 80), trained with the Grad-TTS prior loss 1/2((y - mu)^2 + ln 2 pi) on the frames,
each step aligned by MAS on log N(y; mu, I). The default conv kernel is 1 (no context): measured on the
synthetic corpus, a context encoder (kernel 5) learns means that fit whatever alignment it started
from, and after a few hundred CPU steps its boundaries were ~8-10 frames off eSpeak's, against ~1.6
frames with kernel 1 (docs/acoustic-data.md). Then :func:`export_durations` aligns every utterance;
'|' tokens are left out of the alignment (0 frames), every other token gets >= 1 frame.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

MAX_NEG = np.float32(-1e9)   # core.pyx's max_neg_val for a closed option


class AlignmentError(ValueError):
    """An utterance cannot be aligned; the message names it."""


def check_alignable(n_tokens: int, n_frames: int, utt: str) -> None:
    if n_tokens < 1:
        raise AlignmentError(f"utterance {utt}: no tokens to align")
    if n_tokens > n_frames:
        raise AlignmentError(f"utterance {utt}: {n_tokens} tokens need at least one frame each but the audio has "
                             f"only {n_frames} frames: the transcript does not match the audio")


def maximum_path(value: np.ndarray, t_x: Sequence[int] | None = None, t_y: Sequence[int] | None = None
                 ) -> np.ndarray:
    """MAS over a batch: ``value`` [B, X, Y] log-likelihoods (float32), true lengths ``t_x``/``t_y``
    (default: full). Returns the 0/1 path [B, X, Y] (int32; zeros outside each utterance)."""
    v = np.array(value, dtype=np.float32, copy=True)
    if v.ndim == 2:
        return maximum_path(v[None], t_x, t_y)[0]
    b, nx, ny = v.shape
    tx = np.full(b, nx, dtype=np.int64) if t_x is None else np.asarray(t_x, dtype=np.int64)
    ty = np.full(b, ny, dtype=np.int64) if t_y is None else np.asarray(t_y, dtype=np.int64)
    for i in range(b):
        check_alignable(int(tx[i]), int(ty[i]), f"#{i} of the batch")
    # frames first, so that each step reads and writes one contiguous [B, X] slab
    vt = np.ascontiguousarray(v.transpose(2, 0, 1))  # [Y, B, X]
    x = np.arange(nx)[None, None, :]
    y_ = np.arange(ny)[:, None, None]
    # only the band max(0, tx + y - ty) <= x <= min(tx - 1, y) is updated, as in core.pyx
    band = (x <= y_) & (x >= (tx[None, :, None] + y_ - ty[None, :, None])) & (x < tx[None, :, None]) \
        & (y_ < ty[None, :, None])
    first = np.where(np.arange(nx)[None, :] == 0, np.float32(0.0), MAX_NEG) + vt[0]
    vt[0] = np.where(band[0], first, vt[0])
    for y in range(1, ny):
        prev = vt[y - 1]
        new = prev.copy()                                # stay on token x ...
        if y < nx:
            new[:, y] = MAX_NEG                          # ... closed at x == y
        np.maximum(new[:, 1:], prev[:, :-1], out=new[:, 1:])  # advance from x - 1 (closed at x = 0)
        new += vt[y]
        np.copyto(vt[y], new, where=band[y])
    v = vt.transpose(1, 2, 0)                            # back to [B, X, Y] (a view)
    path = np.zeros((b, nx, ny), dtype=np.int32)
    for i in range(b):
        index = int(tx[i]) - 1
        vi = v[i]
        for y in range(int(ty[i]) - 1, -1, -1):
            path[i, index, y] = 1
            if index != 0 and (index == y or vi[index, y - 1] < vi[index - 1, y - 1]):
                index -= 1
    return path


def durations_from_path(path: np.ndarray) -> np.ndarray:
    """Frames per token of a 0/1 path [X, Y]."""
    return np.asarray(path).sum(axis=-1).astype(np.int64)


def path_score(value: np.ndarray, durations: Sequence[int]) -> float:
    """Total log-likelihood of the monotonic alignment given by ``durations`` (for tests / brute force)."""
    v = np.asarray(value, dtype=np.float64)
    idx = np.repeat(np.arange(len(durations)), durations)
    return float(v[idx, np.arange(len(idx))].sum())


def brute_force_path(value: np.ndarray) -> np.ndarray:
    """Best durations (each >= 1, summing to Y) by exhaustive search: the reference for tests."""
    nx, ny = value.shape
    best, best_d = -math.inf, None
    from itertools import combinations

    for cuts in combinations(range(1, ny), nx - 1):
        d = np.diff((0, *cuts, ny))
        s = path_score(value, d)
        if s > best:
            best, best_d = s, d
    return np.asarray(best_d, dtype=np.int64)


# ----------------------------------------------------------------------------- the aligner
@dataclass
class AlignItem:
    utt: str
    token_ids: np.ndarray   # int64 [n_tokens], the full sequence ('|' included)
    align_mask: np.ndarray  # bool [n_tokens]: tokens that take frames (not '|')
    mel: np.ndarray         # float32 [80, n_frames]


def _build_encoder(vocab_size: int, hidden: int, layers: int, kernel: int, n_mels: int):
    import torch.nn as nn

    class Encoder(nn.Module):
        """Token embedding -> conv blocks (Conv1d, ReLU, LayerNorm, residual) -> mu = Linear(H -> 80)."""

        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(vocab_size, hidden, padding_idx=0)
            nn.init.normal_(self.emb.weight, 0.0, hidden ** -0.5)
            self.convs = nn.ModuleList(nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2) for _ in range(layers))
            self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
            self.mu = nn.Linear(hidden, n_mels)

        def forward(self, ids, mask):  # ids [B, X], mask [B, X] float -> mu [B, X, 80]
            h = self.emb(ids) * math.sqrt(hidden)
            for conv, norm in zip(self.convs, self.norms):
                r = conv((h * mask[..., None]).transpose(1, 2)).transpose(1, 2).relu()
                h = norm(h + r)
            return self.mu(h)

    return Encoder()


def _log_likelihood(mu, mel):
    """log N(y; mu, I) per (token, frame): mu [B, X, 80], mel [B, 80, Y] -> [B, X, Y]."""
    import torch

    n = mu.shape[-1]
    const = -0.5 * math.log(2 * math.pi) * n
    return const - 0.5 * ((mu ** 2).sum(-1)[..., None] - 2 * torch.bmm(mu, mel) + (mel ** 2).sum(1)[:, None, :])


def _batch(items: Sequence[AlignItem]):
    """Padded tensors of the aligned tokens only ('|' dropped for the alignment, kept for the encoder)."""
    import torch

    b = len(items)
    nx = max(len(it.token_ids) for it in items)
    ny = max(it.mel.shape[1] for it in items)
    ids = np.zeros((b, nx), np.int64)
    amask = np.zeros((b, nx), bool)
    mel = np.zeros((b, items[0].mel.shape[0], ny), np.float32)
    ty = np.zeros(b, np.int64)
    for i, it in enumerate(items):
        ids[i, :len(it.token_ids)] = it.token_ids
        amask[i, :len(it.token_ids)] = it.align_mask
        mel[i, :, :it.mel.shape[1]] = it.mel
        ty[i] = it.mel.shape[1]
    return torch.from_numpy(ids), amask, torch.from_numpy(mel), ty


def uniform_durations(n_tokens: int, n_frames: int) -> np.ndarray:
    """Frames split as evenly as possible over the tokens (each >= 1 when n_frames >= n_tokens)."""
    edges = np.floor(np.arange(n_tokens + 1) * n_frames / n_tokens).astype(np.int64)
    return np.diff(edges)


def _align_batch(model, items: Sequence[AlignItem]):
    """(mu of the aligned tokens [B, Xa, 80], path [B, Xa, Y], aligned-token lengths, frame lengths, mel)."""
    import torch

    ids, amask, mel, ty = _batch(items)
    mu_all = model(ids, (ids != 0).float())
    xa = amask.sum(1)
    order = np.argsort(~amask, axis=1, kind="stable")[:, :int(xa.max())]  # aligned tokens first, in order
    mu = torch.gather(mu_all, 1, torch.from_numpy(order)[..., None].expand(-1, -1, mu_all.shape[-1]))
    with torch.no_grad():
        ll = _log_likelihood(mu, mel).numpy()
    path = maximum_path(ll, xa, ty)
    return mu, torch.from_numpy(path.astype(np.float32)), xa, ty, mel


def train_aligner(items: Sequence[AlignItem], vocab_size: int, steps: int, batch_size: int, hidden: int,
                  layers: int, kernel: int, learning_rate: float, seed: int, threads: int = 0,
                  progress: bool | None = None):
    """Stage 1: fit the encoder and mu head with the prior loss under MAS alignments. Returns the model."""
    import torch

    for it in items:
        check_alignable(int(it.align_mask.sum()), it.mel.shape[1], it.utt)
    prev_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _train(items, vocab_size, steps, batch_size, hidden, layers, kernel, learning_rate, seed, progress)
    finally:
        torch.set_num_threads(prev_threads)


def _train(items, vocab_size, steps, batch_size, hidden, layers, kernel, learning_rate, seed, progress):
    import torch
    from tqdm import tqdm

    torch.manual_seed(seed)
    n_mels = items[0].mel.shape[0]
    model = _build_encoder(vocab_size, hidden, layers, kernel, n_mels)
    opt = torch.optim.Adam(model.parameters(), lr=learning_rate)
    rng = np.random.default_rng(seed)
    bs = min(batch_size, len(items))
    for step in tqdm(range(steps), desc="MAS aligner", unit="step", disable=not progress if progress is not None else None):
        batch = [items[int(i)] for i in rng.choice(len(items), size=bs, replace=False)]
        mu, path, xa, ty, mel = _align_batch(model, batch)
        # each frame's aligned token (a gather: far cheaper than a product with the 0/1 path)
        frame_tok = path.argmax(dim=1)                                  # [B, Y]; 0 on padding frames
        mu_y = torch.gather(mu, 1, frame_tok[..., None].expand(-1, -1, n_mels)).transpose(1, 2)  # [B, 80, Y]
        fmask = (torch.arange(mel.shape[2])[None, :] < torch.from_numpy(ty)[:, None]).float()[:, None, :]
        loss = (0.5 * ((mel - mu_y) ** 2 + math.log(2 * math.pi)) * fmask).sum() / (fmask.sum() * n_mels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if not math.isfinite(loss.item()):
            raise AlignmentError(f"MAS aligner: loss is not finite at step {step}")
        if step % 250 == 0 or step == steps - 1:
            log.info("MAS aligner step %d: prior loss %.4f", step, loss.item())
    return model


def export_durations(model, items: Sequence[AlignItem], batch_size: int = 16) -> dict[str, np.ndarray]:
    """Stage 2: MAS durations of every utterance: '|' = 0 frames, other tokens >= 1; sums to n_frames."""
    import torch

    out: dict[str, np.ndarray] = {}
    for it in items:
        check_alignable(int(it.align_mask.sum()), it.mel.shape[1], it.utt)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            batch = list(items[start:start + batch_size])
            _, path, xa, ty, _ = _align_batch(model, batch)
            for i, it in enumerate(batch):
                d_al = path[i, :int(xa[i]), :int(ty[i])].numpy().sum(axis=1).astype(np.int64)
                dur = np.zeros(len(it.token_ids), np.int64)
                dur[it.align_mask] = d_al
                assert dur.sum() == it.mel.shape[1]
                out[it.utt] = dur
    model.train()
    return out


def boundary_agreement(ref: dict[str, np.ndarray], est: dict[str, np.ndarray]) -> dict[str, float]:
    """Token start frames of two alignments of the same tokens: mean |difference| (frames) and the
    share of boundaries within 1 and 2 frames (over every token of every common utterance)."""
    diffs = []
    for utt in sorted(set(ref) & set(est)):
        a, b = np.asarray(ref[utt]), np.asarray(est[utt])
        if a.shape != b.shape:
            raise AlignmentError(f"utterance {utt}: alignments of {a.shape} and {b.shape} tokens")
        diffs.append(np.abs(np.cumsum(a)[:-1] - np.cumsum(b)[:-1]))
    d = np.concatenate(diffs) if diffs else np.zeros(0)
    if d.size == 0:
        raise AlignmentError("no common utterances to compare")
    return {"n_boundaries": int(d.size), "mean_abs_frames": float(d.mean()),
            "within_1": float((d <= 1).mean()), "within_2": float((d <= 2).mean())}
