"""The corpus stage: the default synthetic corpus, or a user's LJSpeech-layout directory.

    python -m experiments.corpus --params params.yaml --out data/corpus

``corpus.source: synthetic`` synthesises the eSpeak NG corpus into OUT. A path instead is validated
(`priorgrad corpus validate`'s checks, transcripts included) and linked: OUT gets a copy of its metadata.csv and a
``wavs`` symlink to its audio, so a large corpus is neither copied nor cached by DVC.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path

from priorgrad.core.config import load_params
from priorgrad.core.logs import setup_logging

log = logging.getLogger("experiments.corpus")


class CorpusStageError(RuntimeError):
    """The configured corpus cannot be used; the message names the path and the problems."""


def link_corpus(source: Path, out: Path, voice: str) -> None:
    """Validate a user's corpus (audio, and every transcript through the acoustic text front-end with
    eSpeak NG voice ``voice``: the pipeline's acoustic stages will read them) and link it into ``out``."""
    from priorgrad.acoustic.text import transcript_checker
    from priorgrad.corpus.validate import format_report, validate_corpus

    if not (source / "metadata.csv").is_file() or not (source / "wavs").is_dir():
        raise CorpusStageError(f"corpus.source {source}: not an LJSpeech-layout directory "
                               f"(needs metadata.csv and wavs/)")
    report = validate_corpus(source, check_text=transcript_checker(voice))
    if not report.ok:
        raise CorpusStageError(f"corpus.source {source} is unusable:\n{format_report(report)}")
    if out.is_symlink() or out.is_file():
        out.unlink()
    elif out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copyfile(source / "metadata.csv", out / "metadata.csv")
    os.symlink((source / "wavs").resolve(), out / "wavs", target_is_directory=True)
    log.info("linked corpus %s -> %s", source, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.corpus", description=__doc__.split("\n")[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--out", type=Path, required=True, help="corpus directory the preprocess stage reads")
    args = ap.parse_args(argv)
    setup_logging()
    params = load_params(args.params)
    c = params.corpus
    try:
        if c.source == "synthetic":
            from priorgrad.corpus.synth import make_corpus

            if (args.out / "wavs").is_symlink():
                shutil.rmtree(args.out)  # a linked user corpus was here: never synthesise into it
            summary = make_corpus(args.out, n_utterances=c.n_utterances, seed=c.seed)
            log.info("synthetic corpus: %s utterances in %s", summary.get("n_utterances", c.n_utterances), args.out)
        else:
            source = Path(c.source).expanduser()
            if not source.is_absolute():
                source = (args.params.resolve().parent / source).resolve()
            from priorgrad.acoustic.data_config import load_data_config

            link_corpus(source, args.out, load_data_config(args.params).text.voice)
    except CorpusStageError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
