"""Checkpoints: written atomically, carrying the resolved params and the prior statistics.

A model is always rebuilt from its checkpoint's own config (never from defaults), so synthesis needs
nothing but the checkpoint file.

Checkpoints travel between machines and people (the GPU comparison brings them back from another
machine), so loading one must never run code stored in it. A checkpoint therefore holds tensors and
plain containers only (dict, list, tuple, str, int, float, bool, None) and is read with
``torch.load(..., weights_only=True)``, whose unpickler refuses anything else before it is built.
The writer converts what is not plain (numpy arrays -> tensors, numpy scalars -> Python numbers,
paths -> str) and refuses the rest, naming the key. A file that needs more (a checkpoint written before
this rule, or a crafted one) is refused with an error that says how its owner, who trusts it, converts
it: ``priorgrad checkpoint convert FILE`` (:func:`convert`, the one place that unpickles in full).
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import re
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch

FORMAT_VERSION = 1
LAST = "last.pt"
_SCALARS = (str, int, float, bool, type(None))


class UnsafeCheckpointError(ValueError):
    """A checkpoint that cannot be read with tensors and plain containers only (it would run code)."""


def to_plain(obj: Any, where: str = "checkpoint") -> Any:
    """``obj`` with numpy arrays as tensors, numpy scalars as Python numbers and paths as str; a
    TypeError names the key of anything else (it would need code to load)."""
    if isinstance(obj, (torch.Tensor, torch.dtype, torch.device, torch.Size)) or type(obj) in _SCALARS:
        return obj  # what the weights-only unpickler reads natively (optimiser and scaler states may hold them)
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError(f"{where}: a numpy array of Python objects cannot be stored in a checkpoint")
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, dict):
        for k in obj:
            if type(k) not in _SCALARS:
                raise TypeError(f"{where}: key {k!r} is a {type(k).__name__}; keys must be str, int, float or bool")
        items = ((k, to_plain(v, f"{where}.{k}")) for k, v in obj.items())
        if not isinstance(obj, collections.OrderedDict):
            return dict(items)
        # a state_dict(): an OrderedDict (the safe loader reads it) with the modules' versions in _metadata,
        # which load_state_dict reads; both kept, so the file is byte for byte what torch.save wrote before
        out = collections.OrderedDict(items)
        if hasattr(obj, "_metadata"):
            out._metadata = to_plain(obj._metadata, f"{where}._metadata")  # type: ignore[attr-defined]
        return out
    if isinstance(obj, (list, tuple)):
        seq = [to_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return seq if isinstance(obj, list) else tuple(seq)
    raise TypeError(f"{where}: a {type(obj).__module__}.{type(obj).__qualname__} cannot be stored in a checkpoint "
                    "(only tensors, numbers, strings, None, lists, tuples and dicts load without running code)")


def _write(path: Path, state: dict[str, Any]) -> Path:
    """torch.save to a temp file in the same directory, fsync, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (made plain by :func:`to_plain`) atomically; the file loads with weights_only=True."""
    return _write(Path(path), to_plain({"format_version": FORMAT_VERSION, **state}))


def _refusal(path: Path, e: Exception) -> str:
    """Why torch's weights-only unpickler refused the file, and what its owner can do."""
    m = re.search(r"GLOBAL ([\w.]+)", str(e))
    lines = [x.strip() for x in str(e).splitlines() if x.strip() and "weights_only" not in x and "Weights only" not in x]
    what = f"it asks for {m.group(1)}" if m else (lines[0] if lines else str(e))[:200]
    convert = f"`priorgrad checkpoint convert {path}`"
    if m and m.group(1).startswith("numpy."):
        hint = (f"checkpoints written by earlier versions of this project hold numpy arrays like this; if you "
                f"trust the file, convert it once with {convert} (it rewrites the file in the safe format)")
    else:
        hint = (f"this project never writes such a file; only if you know where it comes from and trust it, "
                f"{convert} rewrites it in the safe format (that command runs what the file holds)")
    return (f"{path}: refused: this file needs more than tensors and plain containers to load ({what}), so "
            f"loading it could run code stored in it; {hint}")


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint of this project, read with tensors and plain containers only (nothing in it runs)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" not in str(e) and "Weights only" not in str(e):
            raise ValueError(f"{path}: not a readable checkpoint ({e})") from e
        raise UnsafeCheckpointError(_refusal(path, e)) from None
    except Exception as e:
        raise ValueError(f"{path}: not a readable checkpoint ({e})") from e
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: not a checkpoint of this project (holds a {type(ckpt).__name__}, not a dict)")
    for key in ("model", "params", "step"):
        if key not in ckpt:
            raise ValueError(f"{path}: checkpoint lacks {key!r} (not written by priorgrad train?)")
    return ckpt


def convert(src: str | Path, dest: str | Path | None = None) -> Path:
    """Rewrite a checkpoint its owner trusts into the safe format (in place when ``dest`` is None).

    The one full unpickling of the project: only for files whose origin is known (it runs whatever the
    file holds). The result is checked to load with weights_only=True before it replaces anything.
    """
    src = Path(src)
    dest = src if dest is None else Path(dest)
    if not src.exists():
        raise FileNotFoundError(f"{src}: checkpoint not found")
    try:
        state = torch.load(src, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ValueError(f"{src}: not a readable checkpoint ({e})") from e
    if not isinstance(state, dict) or not all(k in state for k in ("model", "params", "step")):
        raise ValueError(f"{src}: not a checkpoint of this project (needs 'model', 'params' and 'step')")
    try:
        plain = to_plain(state)
    except TypeError as e:
        raise ValueError(f"{src}: cannot convert: {e}") from None
    buf = io.BytesIO()
    torch.save(plain, buf)
    buf.seek(0)
    try:
        torch.load(buf, weights_only=True)  # the converted file must load safely, or nothing is written
    except Exception as e:
        raise ValueError(f"{src}: cannot convert: the result would still not load safely ({e})") from None
    return _write(dest, plain)
