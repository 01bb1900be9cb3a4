"""The LJSpeech corpus layout: reading, writing and the train/valid/test split.

Layout: ``ROOT/metadata.csv`` (UTF-8, no header, one ``id|raw text|normalized text`` or ``id|text``
line per utterance) and ``ROOT/wavs/<id>.wav``. The synthetic corpus is written in the same layout,
so everything downstream reads one format.

Split: a seeded permutation of the utterances sorted by id (so it does not depend on file order).
On the full LJSpeech (13,100 ``LJxxx-xxxx`` utterances) the official PriorGrad lists are used
instead: 13,000 train / 5 valid / 95 test. The valid and test lists ship in ``splits/`` (taken from
microsoft/NeuralSpeech, PriorGrad-vocoder/filelists, MIT licence); train is every other utterance,
which is what the official 13,000-line train list holds (13,000 + 5 + 95 = 13,100).
"""
from __future__ import annotations

import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from priorgrad.core.fileio import write_bytes_atomic
from typing import Iterable, Sequence

import numpy as np

log = logging.getLogger(__name__)

METADATA = "metadata.csv"
WAVS = "wavs"
SPLITS = ("train", "valid", "test")
SPLITS_DIR = Path(__file__).resolve().parent / "splits"
LJSPEECH_SIZE = 13100
OFFICIAL_SIZES = {"train": 13000, "valid": 5, "test": 95}
_LJ_ID = re.compile(r"^LJ\d{3}-\d{4}$")
_BAD_ID_CHARS = re.compile(r"[\s/\\|]")


class CorpusError(ValueError):
    """A problem with a corpus; the message names the file (and line) at fault."""


@dataclass(frozen=True)
class Utterance:
    utt_id: str
    text: str
    wav_path: Path


@dataclass(frozen=True)
class MetadataProblem:
    line: int       # 1-based line number in metadata.csv
    kind: str       # malformed | empty_transcript | duplicate_id | encoding
    message: str    # names the file and line


# ----------------------------------------------------------------------------- reading
def parse_metadata(root: str | os.PathLike) -> tuple[list[Utterance], list[MetadataProblem]]:
    """Every well-formed utterance of ``root/metadata.csv`` plus every problem found (does not raise
    for bad lines; raises :class:`CorpusError` only when the file itself is missing or unreadable)."""
    root = Path(root)
    path = root / METADATA
    if not root.is_dir():
        raise CorpusError(f"{root}: corpus directory not found")
    if not path.is_file():
        raise CorpusError(f"{path}: missing (an LJSpeech-layout corpus needs {METADATA} and {WAVS}/)")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CorpusError(f"{path}: cannot read ({e})") from e

    utts: list[Utterance] = []
    problems: list[MetadataProblem] = []
    first_line: dict[str, int] = {}
    for lineno, bline in enumerate(raw.split(b"\n"), start=1):
        try:
            line = bline.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.append(MetadataProblem(lineno, "encoding", f"{path}:{lineno}: not valid UTF-8 ({e.reason})"))
            continue
        line = line.rstrip("\r")
        if lineno == 1:
            line = line.lstrip("\ufeff")  # tolerate a byte-order mark written by some editors
        if not line.strip():
            continue  # blank lines carry no utterance (a trailing newline makes one)
        fields = line.split("|")
        if len(fields) not in (2, 3):
            problems.append(MetadataProblem(
                lineno, "malformed", f"{path}:{lineno}: malformed line: expected 'id|text' or "
                                     f"'id|raw text|normalized text', got {len(fields)} '|'-separated field(s)"))
            continue
        uid = fields[0].strip()
        if not uid or _BAD_ID_CHARS.search(uid):
            problems.append(MetadataProblem(lineno, "malformed",
                                            f"{path}:{lineno}: malformed line: invalid utterance id {uid!r}"))
            continue
        # LJSpeech's third field is the normalised transcript (numbers and abbreviations spelled out)
        text = fields[2].strip() if len(fields) == 3 and fields[2].strip() else fields[1].strip()
        if not text:
            problems.append(MetadataProblem(lineno, "empty_transcript",
                                            f"{path}:{lineno}: empty transcript for utterance {uid}"))
            continue
        if uid in first_line:
            problems.append(MetadataProblem(
                lineno, "duplicate_id",
                f"{path}:{lineno}: duplicate utterance id {uid} (first on line {first_line[uid]})"))
            continue
        first_line[uid] = lineno
        utts.append(Utterance(uid, text, root / WAVS / f"{uid}.wav"))
    return utts, problems


def read_metadata(root: str | os.PathLike, require_wavs: bool = False) -> list[Utterance]:
    """The utterances of an LJSpeech-layout corpus, in file order.

    Raises :class:`CorpusError` naming the file and line for a missing metadata.csv, a malformed line,
    a duplicate id, an empty transcript or an empty file; with ``require_wavs`` also for a missing wav.
    """
    utts, problems = parse_metadata(root)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise CorpusError(problems[0].message + more)
    if not utts:
        raise CorpusError(f"{Path(root) / METADATA}: no utterances")
    if require_wavs:
        missing = [u for u in utts if not u.wav_path.is_file()]
        if missing:
            raise CorpusError(f"{missing[0].wav_path}: audio file missing for utterance {missing[0].utt_id}"
                              + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return utts


# ----------------------------------------------------------------------------- writing
# The one atomic writer (priorgrad.core.fileio), under the name the corpus tools have always imported.
atomic_write_bytes = write_bytes_atomic


def encode_wav(wav: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM mono WAV bytes. int16 input is written as is; float input in [-1, 1] is scaled by
    32768 (the inverse of how soundfile reads int16, so a read/write round trip is exact)."""
    import soundfile as sf

    wav = np.asarray(wav)
    if wav.ndim != 1:
        raise ValueError(f"expected a mono 1-D waveform, got shape {wav.shape}")
    if wav.dtype != np.int16:
        x = wav.astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError("waveform contains NaN or infinite samples")
        wav = np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, wav, int(sample_rate), format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _check_row(uid: str, text: str) -> None:
    if not uid or _BAD_ID_CHARS.search(uid):
        raise CorpusError(f"invalid utterance id {uid!r} (no whitespace, '/', '\\' or '|')")
    if not text.strip() or "|" in text or "\n" in text or "\r" in text:
        raise CorpusError(f"utterance {uid}: transcript must be non-empty, one line, without '|': {text!r}")


def format_metadata(rows: Iterable[tuple[str, str]]) -> str:
    """metadata.csv content: ``id|text|text`` per line (raw and normalised text are the same here)."""
    lines = []
    for uid, text in rows:
        _check_row(uid, text)
        lines.append(f"{uid}|{text}|{text}")
    return "\n".join(lines) + "\n"


def write_ljspeech(root: str | os.PathLike, items: Sequence[tuple[str, str, np.ndarray]],
                   sample_rate: int) -> None:
    """Write ``(utt_id, text, wav)`` items as an LJSpeech-layout corpus under ``root``.

    Every file is written atomically, metadata.csv last, so an interrupted write never leaves a
    metadata line pointing at a missing or half-written wav.
    """
    root = Path(root)
    seen: set[str] = set()
    for uid, text, _ in items:
        _check_row(uid, text)
        if uid in seen:
            raise CorpusError(f"duplicate utterance id {uid}")
        seen.add(uid)
    for uid, _, wav in items:
        try:
            data = encode_wav(wav, sample_rate)
        except ValueError as e:
            raise CorpusError(f"utterance {uid}: {e}") from e
        atomic_write_bytes(root / WAVS / f"{uid}.wav", data)
    atomic_write_bytes(root / METADATA, format_metadata((u, t) for u, t, _ in items).encode("utf-8"))


# ----------------------------------------------------------------------------- splits
def is_full_ljspeech(utts: Sequence[Utterance]) -> bool:
    return len(utts) == LJSPEECH_SIZE and all(_LJ_ID.match(u.utt_id) for u in utts)


def read_id_list(path: Path) -> list[str]:
    """Utterance ids of a file list. Accepts one entry per line as ``LJ001-0001``, a wav path
    (``.../wavs/LJ001-0001.wav``, the PriorGrad format) or ``path|text`` (the HiFi-GAN format);
    ``#`` starts a comment line."""
    ids: list[str] = []
    first: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = line.split("|", 1)[0].strip()
        uid = entry.replace("\\", "/").rsplit("/", 1)[-1]
        if uid.lower().endswith(".wav"):
            uid = uid[:-4]
        if not uid or _BAD_ID_CHARS.search(uid):
            raise CorpusError(f"{path}:{lineno}: cannot read an utterance id from {line!r}")
        if uid in first:
            raise CorpusError(f"{path}:{lineno}: duplicate utterance id {uid} (first on line {first[uid]})")
        first[uid] = lineno
        ids.append(uid)
    return ids


def load_split_lists(lists_dir: str | os.PathLike) -> dict[str, list[str] | None] | None:
    """``ljspeech_{train,valid,test}.txt`` from ``lists_dir``; None when neither valid nor test exists.
    A missing train list is allowed (train = every other utterance) and given as None."""
    lists_dir = Path(lists_dir)
    paths = {s: lists_dir / f"ljspeech_{s}.txt" for s in SPLITS}
    if not paths["valid"].exists() and not paths["test"].exists():
        return None
    for s in ("valid", "test"):
        if not paths[s].is_file():
            raise CorpusError(f"{paths[s]}: missing (split lists need both ljspeech_valid.txt and ljspeech_test.txt)")
    return {s: (read_id_list(p) if p.is_file() else None) for s, p in paths.items()}


def _split_from_lists(utts: Sequence[Utterance], lists: dict[str, list[str] | None],
                      lists_dir: Path) -> dict[str, list[Utterance]]:
    by_id = {u.utt_id: u for u in utts}
    out: dict[str, list[Utterance]] = {}
    owner: dict[str, str] = {}
    for s in ("valid", "test", "train"):
        ids = lists[s]
        if ids is None:
            continue
        path = lists_dir / f"ljspeech_{s}.txt"
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise CorpusError(f"{path}: {len(missing)} listed utterance(s) not in the corpus, e.g. {missing[:3]}")
        clash = [i for i in ids if i in owner]
        if clash:
            raise CorpusError(f"{path}: utterance {clash[0]} is also in the {owner[clash[0]]} list")
        owner.update({i: s for i in ids})
        out[s] = [by_id[i] for i in ids]
    if lists["train"] is None:
        out["train"] = sorted((u for u in utts if u.utt_id not in owner), key=lambda u: u.utt_id)
    else:
        unlisted = [u.utt_id for u in utts if u.utt_id not in owner]
        if unlisted:
            raise CorpusError(f"{lists_dir}: {len(unlisted)} corpus utterance(s) are in no split list, "
                              f"e.g. {unlisted[:3]}")
    if not out["train"]:
        raise CorpusError(f"{lists_dir}: the split lists leave no training utterances")
    return {s: out[s] for s in SPLITS}


def _seeded_split(utts: Sequence[Utterance], n_valid: int, n_test: int, seed: int) -> dict[str, list[Utterance]]:
    ordered = sorted(utts, key=lambda u: u.utt_id)
    perm = np.random.default_rng(seed).permutation(len(ordered))
    pick = lambda idx: sorted((ordered[i] for i in idx), key=lambda u: u.utt_id)  # noqa: E731
    return {"train": pick(perm[n_valid + n_test:]), "valid": pick(perm[:n_valid]),
            "test": pick(perm[n_valid:n_valid + n_test])}


def split_utterances(utts: Sequence[Utterance], n_valid: int, n_test: int, seed: int,
                     official: str = "auto", lists_dir: str | os.PathLike | None = None
                     ) -> dict[str, list[Utterance]]:
    """Train/valid/test split, deterministic for a seed.

    official = "no": seeded split of ``n_valid``/``n_test`` utterances, train = the rest; each list
    sorted by id. official = "yes": the lists ``ljspeech_{valid,test}[,train].txt`` in ``lists_dir``
    (default: the shipped official PriorGrad lists), in list order, train = every unlisted utterance
    when there is no train list; n_valid/n_test are ignored. official = "auto": "yes" on the full
    LJSpeech (13,100 LJ ids) or when ``lists_dir`` is given, "no" otherwise; on the full LJSpeech
    without the shipped lists it falls back to a seeded 13000/5/95 split with a warning that it is
    not the official one.
    """
    if official not in ("auto", "yes", "no"):
        raise ValueError(f"official must be 'auto', 'yes' or 'no', got {official!r}")
    ids = [u.utt_id for u in utts]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise CorpusError(f"duplicate utterance id {dup} in the corpus")
    # an explicit lists_dir means "use these lists" unless the split is forced to be seeded
    use_lists = official == "yes" or (official == "auto" and (lists_dir is not None or is_full_ljspeech(utts)))
    if use_lists:
        ldir = Path(lists_dir) if lists_dir is not None else SPLITS_DIR
        lists = load_split_lists(ldir)
        if lists is not None:
            if (n_valid, n_test) != (len(lists["valid"]), len(lists["test"])):
                log.info("split lists in %s give %d valid / %d test utterances (configured %d / %d ignored)",
                         ldir, len(lists["valid"]), len(lists["test"]), n_valid, n_test)
            return _split_from_lists(utts, lists, ldir)
        if official == "yes" or lists_dir is not None:
            raise CorpusError(
                f"{ldir}: official split lists not found (expected ljspeech_valid.txt and ljspeech_test.txt, "
                f"optionally ljspeech_train.txt: one utterance id or wav path per line); pass the directory "
                f"holding them (--split-lists DIR), or use official='no' for a seeded split")
        log.warning("full LJSpeech but no official split lists in %s: using a SEEDED %d/%d/%d split, "
                    "which is not the official PriorGrad one", ldir, *(OFFICIAL_SIZES[s] for s in SPLITS))
        n_valid, n_test = OFFICIAL_SIZES["valid"], OFFICIAL_SIZES["test"]
    if n_valid < 0 or n_test < 0:
        raise CorpusError(f"split sizes must be >= 0, got n_valid={n_valid}, n_test={n_test}")
    if n_valid + n_test >= len(utts):
        raise CorpusError(f"corpus has {len(utts)} utterances: too few for {n_valid} valid + {n_test} test "
                          f"+ at least 1 train")
    return _seeded_split(utts, n_valid, n_test, seed)
