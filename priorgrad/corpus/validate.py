"""``priorgrad corpus validate``: list every problem of an LJSpeech-layout corpus, with the file name.

Errors make the corpus (or the utterance) unusable: missing metadata.csv, malformed metadata lines,
duplicate ids, empty transcripts, transcript lines without a wav, corrupt / truncated (fewer bytes
or frames than the header declares) / empty / silent / NaN audio, a wrong sample rate (unless
resampling is allowed), a corpus with no usable utterance, and (when the caller passes the acoustic
text front-end) a transcript it cannot turn into phonemes.
Warnings are tolerated by the pipeline but change what it does: clipped audio, stereo (averaged to
mono), clips shorter than a training crop (skipped by training), wavs without a transcript line
(ignored).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from priorgrad.corpus.ljspeech import METADATA, WAVS, CorpusError, parse_metadata

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_RATE = 22050
DEFAULT_CROP_SAMPLES = 15872                 # 62 frames x 256 hop: the paper's training crop
SILENT_PEAK = 1e-4                           # peak amplitude below which a clip is silent
CLIP_LEVEL = 0.999                           # |x| at or above this counts as a clipped sample
CLIP_FRACTION = 0.001                        # more than 0.1 % clipped samples: warn

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Problem:
    severity: str   # "error" (unusable) or "warning"
    kind: str       # corrupt, empty, silent, nan, wrong_rate, stereo, clipped, too_short, missing_wav, ...
    file: str       # the file at fault
    message: str    # human-readable, starts with the file name


@dataclass
class Report:
    root: str
    sample_rate: int
    min_seconds: float
    n_metadata: int = 0          # well-formed transcript lines
    n_wavs: int = 0              # .wav files in wavs/
    n_usable: int = 0            # transcript + audio without errors
    n_trainable: int = 0         # usable and at least min_seconds long
    usable_seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def kinds(self) -> set[str]:
        return {p.kind for p in self.problems}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        d["n_errors"], d["n_warnings"] = len(self.errors), len(self.warnings)
        return d


def _add(report: Report, severity: str, kind: str, file: Path | str, message: str) -> None:
    report.problems.append(Problem(severity, kind, str(file), f"{file}: {message}"))


def check_wav(path: Path, report: Report, allow_resample: bool = False) -> float | None:
    """Check one audio file, adding its problems; returns its duration in seconds if usable."""
    from priorgrad.core.audio import AudioError, TruncatedAudioError, decode_audio

    try:
        size = path.stat().st_size
    except OSError as e:
        _add(report, ERROR, "corrupt", path, f"cannot read ({e})")
        return None
    if size == 0:
        _add(report, ERROR, "empty", path, "file is empty (0 bytes)")
        return None
    try:
        # the project's one decoder, so validation sees a file exactly as preprocess and eval do
        data, sr, subtype = decode_audio(path, always_2d=True)
    except AudioError as e:
        kind = "truncated" if isinstance(e, TruncatedAudioError) else "corrupt"
        _add(report, ERROR, kind, path, str(e).removeprefix(f"{path}: "))
        return None
    if data.shape[0] == 0:
        _add(report, ERROR, "empty", path, "audio has 0 samples")
        return None
    usable = True
    if sr != report.sample_rate:
        sev = WARNING if allow_resample else ERROR
        hint = "will be resampled" if allow_resample else "resample it or allow resampling (audio.allow_resample)"
        _add(report, sev, "wrong_rate", path, f"sample rate {sr} Hz, expected {report.sample_rate} Hz ({hint})")
        usable = usable and allow_resample
    if data.shape[1] > 1:
        _add(report, WARNING, "stereo", path, f"{data.shape[1]} channels ({subtype}); will be averaged to mono")
    bad = ~np.isfinite(data)
    if bad.any():
        _add(report, ERROR, "nan", path, f"{int(bad.sum())} NaN or infinite sample(s)")
        return None
    mono = data.mean(axis=1)
    peak = float(np.max(np.abs(mono)))
    if peak < SILENT_PEAK:
        _add(report, ERROR, "silent", path, f"silent (peak {peak:.2e} < {SILENT_PEAK:g})")
        return None
    clipped = float(np.mean(np.abs(data) >= CLIP_LEVEL))
    if clipped > CLIP_FRACTION:
        _add(report, WARNING, "clipped", path,
             f"clipped: {clipped:.2%} of samples at |x| >= {CLIP_LEVEL} (limit {CLIP_FRACTION:.1%})")
    seconds = data.shape[0] / sr
    if seconds < report.min_seconds:
        _add(report, WARNING, "too_short", path,
             f"{seconds:.3f} s is shorter than a training crop ({report.min_seconds:.3f} s); training skips it")
    return seconds if usable else None


def validate_corpus(root: str | os.PathLike, sample_rate: int = DEFAULT_SAMPLE_RATE,
                    min_seconds: float = DEFAULT_CROP_SAMPLES / DEFAULT_SAMPLE_RATE, *,
                    allow_resample: bool = False, progress: bool | None = None,
                    check_text: Callable[[str, str], object] | None = None) -> Report:
    """Check every transcript line and every audio file of an LJSpeech-layout corpus.

    ``check_text(text, utt)``, when given, is run on every transcript and raises ValueError for one that
    cannot be used (the acoustic model's text front-end, passed in by the caller that knows the acoustic
    stages will run: this package sits below the model families and imports none of them)."""
    root = Path(root)
    report = Report(root=str(root), sample_rate=int(sample_rate), min_seconds=float(min_seconds))
    try:
        utts, meta_problems = parse_metadata(root)
    except CorpusError as e:
        kind = "missing_corpus" if not root.is_dir() else "missing_metadata"
        report.problems.append(Problem(ERROR, kind, str(root / METADATA if root.is_dir() else root), str(e)))
        return report
    for mp in meta_problems:
        kind = {"malformed": "malformed_metadata", "encoding": "malformed_metadata"}.get(mp.kind, mp.kind)
        report.problems.append(Problem(ERROR, kind, f"{root / METADATA}:{mp.line}", mp.message))
    report.n_metadata = len(utts)

    wav_dir = root / WAVS
    if not wav_dir.is_dir():
        _add(report, ERROR, "missing_wavs_dir", wav_dir, f"audio directory missing (expected {WAVS}/<id>.wav)")
        wav_files: dict[str, Path] = {}
    else:
        wav_files = {p.stem: p for p in sorted(wav_dir.iterdir()) if p.suffix.lower() == ".wav" and p.is_file()}
    report.n_wavs = len(wav_files)

    listed = {u.utt_id for u in utts}
    for stem, path in wav_files.items():
        if stem not in listed:
            _add(report, WARNING, "missing_transcript", path, f"no line for {stem} in {METADATA}; the file is ignored")

    from tqdm import tqdm

    for u in tqdm(utts, desc="validating corpus", unit="utt", disable=None if progress is None else not progress):
        if check_text is not None:
            try:
                check_text(u.text, u.utt_id)
            except ValueError as e:
                report.problems.append(Problem(ERROR, "unusable_transcript", str(root / METADATA),
                                               f"{root / METADATA}: {e} (the acoustic model cannot use it)"))
        path = wav_files.get(u.utt_id)
        if path is None:
            if wav_dir.is_dir():
                _add(report, ERROR, "missing_wav", u.wav_path,
                     f"audio file missing for transcript line of {u.utt_id} in {METADATA}")
            continue
        seconds = check_wav(path, report, allow_resample=allow_resample)
        if seconds is not None:
            report.n_usable += 1
            report.usable_seconds += seconds
            report.n_trainable += seconds >= report.min_seconds

    if report.n_usable == 0:
        _add(report, ERROR, "no_usable_utterances", root, "no usable utterance (transcript line + valid audio)")
    elif report.n_trainable == 0:
        _add(report, ERROR, "no_trainable_utterances", root,
             f"no utterance is long enough for a training crop ({report.min_seconds:.3f} s)")
    return report


def format_report(report: Report) -> str:
    lines = [f"corpus {report.root}: {report.n_metadata} transcript line(s), {report.n_wavs} wav file(s), "
             f"{report.n_usable} usable ({report.n_trainable} at least {report.min_seconds:.3f} s long), "
             f"{report.usable_seconds / 60:.1f} min of usable audio at {report.sample_rate} Hz"]
    if report.problems:
        lines.append(f"{len(report.errors)} error(s), {len(report.warnings)} warning(s):")
        order = sorted(report.problems, key=lambda p: (p.severity != ERROR, p.kind, p.file))
        lines += [f"  {p.severity.upper():7s} {p.kind:24s} {p.message}" for p in order]
    lines.append("result: OK" if report.ok else f"result: NOT USABLE ({len(report.errors)} error(s))")
    return "\n".join(lines)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="priorgrad corpus validate",
                                          description="Report every problem of an LJSpeech-layout corpus.")
    p.add_argument("path", type=Path, help="corpus directory (metadata.csv + wavs/)")
    p.add_argument("--sample-rate", type=int, default=DEFAULT_SAMPLE_RATE, help="expected rate in Hz (default %(default)s)")
    p.add_argument("--min-seconds", type=float, default=DEFAULT_CROP_SAMPLES / DEFAULT_SAMPLE_RATE,
                   help="training crop length in seconds; shorter clips get a warning (default %(default).3f)")
    p.add_argument("--allow-resample", action="store_true", help="a different sample rate is a warning, not an error")
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON to this file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main_validate(argv: Sequence[str] | None = None) -> int:
    """Print the report; exit status 1 when the corpus has errors."""
    args = build_parser().parse_args(argv)
    report = validate_corpus(args.path, args.sample_rate, args.min_seconds, allow_resample=args.allow_resample,
                             progress=False if args.no_progress else None)
    print(format_report(report))
    if args.json is not None:
        from priorgrad.corpus.ljspeech import atomic_write_bytes

        atomic_write_bytes(args.json, (json.dumps(report.to_dict(), indent=1) + "\n").encode("utf-8"))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main_validate())
