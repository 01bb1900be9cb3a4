"""Text front-end of the acoustic model: eSpeak NG phonemes -> tokens -> ids (spec section 1).

eSpeak NG (through the ``espeakng-loader`` wheel, :mod:`priorgrad.corpus.espeak`) replaces the
official g2p_en. ``espeak_TextToPhonemes`` is called clause by clause (mnemonic names, '|' between the
phonemes of a word, spaces between words). The token sequence of an utterance is

    <UNK>, then per clause: phoneme names (stress prefix ' or , kept, like ARPAbet's stress digits),
    '|' between words, '_' for a pause (runs collapse), then the clause token <,> <.> <?> <!> <;> <:>
    (bracketed because ';' is an eSpeak phoneme name; it absorbs a preceding '_'), and finally <EOS>.

The same tokens are used for training (durations only come from eSpeak's events or MAS) and for
inference from user text. The vocabulary is fixed per corpus (``vocab.json``): reserved ids <pad>=0,
<EOS>=1, <UNK>=2, then the sorted union of all other tokens. An out-of-vocabulary token falls back
to its stress-stripped name; if that is unknown too, :class:`TextError` names the utterance and symbol.
Phoneme tables are version specific: pyproject.toml pins the espeakng-loader wheel (eSpeak NG 1.52.0).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from priorgrad.core.fileio import write_json_atomic

PAD, EOS, UNK = "<pad>", "<EOS>", "<UNK>"
RESERVED = (PAD, EOS, UNK)
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
WORD = "|"
PAUSE = "_"
CLAUSE_MARKS = ",.?!;:"
CLAUSE_TOKENS = tuple(f"<{c}>" for c in CLAUSE_MARKS)
# eSpeak's pause phoneme names, longest first so that "_:" is not read as "_" + ":"
PAUSE_PREFIXES = ("_^_", "_:", "_!", "_")
STRESS_MARKS = "',"
# tokens that hold silence (pauses, clause ends, utterance start/end) rather than a phoneme
SILENT_TOKENS = frozenset((PAUSE, UNK, EOS) + CLAUSE_TOKENS)


class TextError(ValueError):
    """Text that cannot be turned into tokens; the message names the utterance (and symbol)."""


def clause_token(consumed: str) -> str:
    """The clause token of a clause: the last of ``,.?!;:`` in the text eSpeak consumed, else '.'."""
    for ch in reversed(consumed):
        if ch in CLAUSE_MARKS:
            return f"<{ch}>"
    return "<.>"


def _split_pause(name: str) -> list[str]:
    """A name starting with a pause mark -> '_' plus the remainder (if any) as its own token."""
    for prefix in PAUSE_PREFIXES:
        if name.startswith(prefix):
            rest = name[len(prefix):]
            return [PAUSE] + ([rest] if rest else [])
    return [name]


def tokens_from_clauses(clauses: Sequence[tuple[str, str]]) -> list[str]:
    """Token sequence from eSpeak's per-clause output [(consumed text, phonemes)] (see module doc)."""
    toks = [UNK]
    for consumed, phonemes in clauses:
        for w, word in enumerate(phonemes.split()):
            if w > 0 and toks[-1] not in (WORD,):
                toks.append(WORD)
            for name in word.split(WORD):
                for tok in (_split_pause(name) if name else []):
                    if tok == PAUSE and toks[-1] == PAUSE:
                        continue  # runs of '_' collapse
                    toks.append(tok)
        while toks[-1] in (PAUSE, WORD) and len(toks) > 1:
            toks.pop()  # the clause token absorbs a preceding pause
        toks.append(clause_token(consumed))
    toks.append(EOS)
    return toks


def is_phoneme(tok: str) -> bool:
    """True for eSpeak phoneme tokens (not '|', '_', clause or reserved tokens)."""
    return tok not in SILENT_TOKENS and tok != WORD and tok != PAD


def strip_stress(tok: str) -> str:
    return tok.lstrip(STRESS_MARKS) or tok


def text_to_tokens(text: str, utt: str = "<text>", voice: str = "en-us") -> list[str]:
    """Tokens of one transcript; an empty or phoneme-less text is a :class:`TextError` naming ``utt``."""
    from priorgrad.corpus import espeak

    if not text or not text.strip():
        raise TextError(f"utterance {utt}: empty transcript")
    clauses = espeak.text_to_phonemes(text, voice)
    toks = tokens_from_clauses(clauses)
    if not any(is_phoneme(t) for t in toks):
        raise TextError(f"utterance {utt}: eSpeak NG found no phonemes in {text!r}")
    return toks


def transcript_checker(voice: str) -> Callable[[str, str], list[str]]:
    """``check(text, utt)`` for corpus validation: the tokens, or a :class:`TextError` naming the utterance
    when the front-end cannot use the transcript (empty, or no phoneme, e.g. punctuation only)."""
    def check(text: str, utt: str) -> list[str]:
        return text_to_tokens(text, utt, voice)

    return check


@dataclass(frozen=True)
class Vocabulary:
    """Token <-> id map of a corpus; ``tokens[i]`` is the token of id i."""

    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        if tuple(self.tokens[:3]) != RESERVED:
            raise TextError(f"vocabulary must start with {list(RESERVED)}, got {list(self.tokens[:3])}")
        if len(set(self.tokens)) != len(self.tokens):
            raise TextError("vocabulary has duplicate tokens")
        object.__setattr__(self, "_ids", {t: i for i, t in enumerate(self.tokens)})

    @classmethod
    def build(cls, sequences: Iterable[Sequence[str]]) -> "Vocabulary":
        """Reserved tokens, then the sorted union of every other token of ``sequences``."""
        seen: set[str] = set()
        for seq in sequences:
            seen.update(seq)
        return cls(RESERVED + tuple(sorted(seen - set(RESERVED))))

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, tok: str) -> bool:
        return tok in self._ids  # type: ignore[attr-defined]

    def id(self, tok: str) -> int:
        return self._ids[tok]  # type: ignore[attr-defined]

    def encode(self, tokens: Sequence[str], utt: str = "<text>") -> list[int]:
        """Ids of ``tokens``; an unknown token backs off to its stress-stripped name, else TextError."""
        ids = []
        for tok in tokens:
            if tok in self:
                ids.append(self.id(tok))
            elif strip_stress(tok) in self:
                ids.append(self.id(strip_stress(tok)))
            else:
                also = f" and neither is {strip_stress(tok)!r}" if strip_stress(tok) != tok else ""
                raise TextError(f"utterance {utt}: symbol {tok!r} is not in the vocabulary ({len(self)} tokens){also}")
        return ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[int(i)] for i in ids]

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, {"tokens": list(self.tokens)})

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            tokens = data["tokens"]
        except FileNotFoundError:
            raise TextError(f"{path}: vocabulary file not found") from None
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise TextError(f"{path}: not a vocabulary file ({e})") from e
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise TextError(f"{path}: 'tokens' must be a list of strings")
        try:
            return cls(tuple(tokens))
        except TextError as e:
            raise TextError(f"{path}: {e}") from e


def encode_text(text: str, vocab: Vocabulary, utt: str = "<text>", voice: str = "en-us") -> list[int]:
    """Transcript -> token ids (inference from user text uses this)."""
    return vocab.encode(text_to_tokens(text, utt, voice), utt)
