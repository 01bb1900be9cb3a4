"""Corpora: the LJSpeech layout (reader, writer, split), the default eSpeak NG corpus, and validation.

Importing this package loads neither eSpeak NG nor soundfile; the names below are imported on first
use (which also keeps ``python -m priorgrad.corpus.synth`` free of runpy's double-import warning).
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CorpusError": "ljspeech", "Utterance": "ljspeech", "read_metadata": "ljspeech",
    "split_utterances": "ljspeech", "write_ljspeech": "ljspeech",
    "make_corpus": "synth", "main_make": "synth",
    "Report": "validate", "validate_corpus": "validate", "format_report": "validate",
    "main_validate": "validate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"priorgrad.corpus.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'priorgrad.corpus' has no attribute {name!r}")
