"""Typed params sections without defaults, and the params file with its profile overlay (torch-free).

params.yaml is the only place a value is set: a config dataclass declares each key's type, never its
value. ``build_section`` turns one raw mapping into such a dataclass, and every problem is an error
naming the file and the key: an unknown key (a typo), a missing key (a deletion), a value of the wrong
type. ``read_params`` applies the profile overlay that params.yaml's ``profile:`` names.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

PROFILE_KEY = "profile"
PROFILE_DIR = "profiles"  # beside params.yaml: profiles/<name>.yaml, each holding only the keys it changes
PRECISIONS = ("fp32", "bf16", "fp16")  # a training step's float format (the training runtime's precision)


class ConfigError(ValueError):
    """Invalid configuration; the message names the key (and file when known)."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_value(value: Any, tp: Any, where: str) -> Any:
    """``value`` converted to the annotated type ``tp`` (int -> float widening), or ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{where}: must not be null")
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:  # the first type that accepts the value wins (float before str: "1e-3" is a number)
            try:
                return check_value(value, a, where)
            except ConfigError as e:
                errors.append(str(e).split(": ", 1)[-1] if ": " in str(e) else str(e))
        raise ConfigError(f"{where}: {' or '.join(errors)}")
    if value is None:
        raise ConfigError(f"{where}: must not be null")
    if dataclasses.is_dataclass(tp):  # a nested section
        return build_section(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if not _is_int(value):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # PyYAML (YAML 1.1) reads "1e-3" as a string: accept numeric text for number keys
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ConfigError(f"{where}: must be finite, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
        return value
    if origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [check_value(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        key_t, val_t = typing.get_args(tp) or (Any, Any)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {check_value(k, key_t, f"{where} key"): check_value(v, val_t, f"{where}.{k}") for k, v in value.items()}
    if tp is Any:
        return copy.deepcopy(value)
    raise TypeError(f"{where}: unsupported annotation {tp!r}")  # a programming error, not a user's


def build_section(cls: type, raw: Any, where: str) -> Any:
    """A dataclass of type ``cls`` from the raw mapping; every field must be given, none unknown."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} (known: {sorted(fields)})")
    missing = [f for f in fields if f not in raw]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}: params.yaml must set every key "
                          f"(there are no hidden defaults)")
    return cls(**{f: check_value(raw[f], hints[f], f"{where}.{f}") for f in fields})


def require(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{where}: {msg}")


# ----------------------------------------------------------------------------- the params file
def _load_yaml(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({e})") from e
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    return raw


def overlay(base: dict[str, Any], over: dict[str, Any], source: str, prefix: str = "") -> dict[str, Any]:
    """base with over's leaves replacing base's; a key over has and base lacks is an error naming it.

    Mappings merge key by key, anything else (lists too) is replaced whole. A profile may only change
    keys params.yaml defines, so a typo in a profile fails instead of adding a key nothing reads.
    """
    out = copy.deepcopy(base)
    for k, v in over.items():
        name = f"{prefix}{k}"
        if k not in base:
            raise ConfigError(f"{source}: {name}: not a key of params.yaml (a profile only changes existing keys)")
        if isinstance(v, dict) and isinstance(base[k], dict):
            out[k] = overlay(base[k], v, source, f"{name}.")
        else:
            out[k] = copy.deepcopy(v)
    return out


def profile_path(params_path: str | Path, name: str) -> Path:
    return Path(params_path).resolve().parent / PROFILE_DIR / f"{name}.yaml"


def read_params(path: str | Path = "params.yaml", profile: str | None = None) -> dict[str, Any]:
    """params.yaml as a dict with its profile applied (``profile: NAME`` -> profiles/NAME.yaml over it).

    ``profile`` replaces the file's own choice (``--set profile=gpu`` on a command line). The ``profile``
    key stays in the result, so every record of the params names the profile.
    """
    path = Path(path)
    raw = _load_yaml(path, "parameters file")
    if profile is not None:
        raw[PROFILE_KEY] = profile
    name = raw.get(PROFILE_KEY)
    if name is None:
        raise ConfigError(f"{path}: missing key {PROFILE_KEY!r} (the profile overlay to apply: default, smoke, gpu, ...)")
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"{path}: {PROFILE_KEY}: expected a profile name (letters, digits, - and _), got {name!r}")
    ppath = profile_path(path, name)
    if not ppath.is_file():
        known = sorted(p.stem for p in ppath.parent.glob("*.yaml"))
        raise ConfigError(f"{path}: {PROFILE_KEY}: {name!r} has no file {ppath} (profiles: {known})")
    over = _load_yaml(ppath, "profile")
    if PROFILE_KEY in over:
        raise ConfigError(f"{ppath}: a profile cannot set {PROFILE_KEY!r}")
    return overlay(raw, over, str(ppath))
