"""Checkpoints: written atomically, carrying the resolved params and the prior statistics.

A model is always rebuilt from its checkpoint's own config (never from defaults), so synthesis needs
nothing but the checkpoint file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1
LAST = "last.pt"


def save(path: str | Path, state: dict[str, Any]) -> Path:
    """torch.save to a temp file in the same directory, fsync, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save({"format_version": FORMAT_VERSION, **state}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:
        raise ValueError(f"{path}: not a readable checkpoint ({e})") from e
    for key in ("model", "params", "step"):
        if key not in ckpt:
            raise ValueError(f"{path}: checkpoint lacks {key!r} (not written by priorgrad train?)")
    return ckpt


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """(model in eval mode, checkpoint dict) with the model rebuilt from the checkpoint's params."""
    from priorgrad.model import build_model

    ckpt = load(path)
    model = build_model(ckpt["params"])
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt
