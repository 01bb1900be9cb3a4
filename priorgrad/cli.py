"""`priorgrad` command line: corpus make/validate, preprocess, prior-stats, train, synthesize, checkpoint convert.

Every path is an argument (DVC stages pass them); settings come from params.yaml (`--params`),
with `--set key=value` overrides for one-off runs.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence
from priorgrad.core.logs import setup_logging

log = logging.getLogger("priorgrad")


def _add_params(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one parameter, e.g. --set train.max_steps=100 (repeatable)")


def _params(args: argparse.Namespace):
    from priorgrad.core.config import load_params

    return load_params(args.params, args.overrides)


def cmd_corpus_make(args: argparse.Namespace) -> int:
    from priorgrad.corpus.synth import make_corpus

    n, seed = args.n, args.seed
    if n is None or seed is None:
        p = _params(args)
        n = p.corpus.n_utterances if n is None else n
        seed = p.corpus.seed if seed is None else seed
    summary = make_corpus(Path(args.out), n_utterances=n, seed=seed)
    brief = {k: v for k, v in summary.items() if not isinstance(v, (list, dict))}
    print(json.dumps(brief, indent=2, default=str))
    return 0


def cmd_corpus_validate(args: argparse.Namespace) -> int:
    from priorgrad.corpus.validate import format_report, validate_corpus

    p = _params(args)
    # A clip is usable for training when it holds one training crop.
    min_seconds = args.min_seconds
    if min_seconds is None:
        min_seconds = p.train.crop_frames * p.hop_length / p.audio.sample_rate
    check_text = None
    if not args.skip_transcripts:
        # the acoustic half of the pipeline turns every transcript into phonemes: a transcript it cannot use
        # (punctuation only, ...) is an error here rather than at the acoustic stage, minutes later
        from priorgrad.acoustic.data_config import load_data_config
        from priorgrad.acoustic.text import transcript_checker

        check_text = transcript_checker(load_data_config(args.params, args.overrides).text.voice)
    report = validate_corpus(Path(args.path), sample_rate=p.audio.sample_rate, min_seconds=min_seconds,
                             allow_resample=p.audio.allow_resample, check_text=check_text)
    print(format_report(report))
    return 0 if report.ok else 1


def cmd_preprocess(args: argparse.Namespace) -> int:
    from priorgrad.vocoder.preprocess import preprocess

    summary = preprocess(args.corpus, args.out, _params(args), lists_dir=args.split_lists)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_prior_stats(args: argparse.Namespace) -> int:
    from priorgrad.vocoder.preprocess import prior_stats

    preset = _params(args).audio.preset
    print(json.dumps(prior_stats(args.features, args.out, preset), indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from priorgrad.vocoder.train import train

    result = train(_params(args), args.features, args.stats, args.run_dir)
    print(json.dumps(result, indent=2))
    return 0


def cmd_synthesize(args: argparse.Namespace) -> int:
    from priorgrad.vocoder.infer import synthesize

    # The infer: section of --params sets steps, batch size, seed and device; a flag overrides one of them.
    infer = _params(args).infer
    steps: int | list[float] = args.steps if args.steps is not None else infer.steps
    if args.schedule:
        steps = [float(x) for x in args.schedule.split(",")]
    result = synthesize(args.checkpoint, args.input, args.out, steps=steps,
                        batch_size=args.batch_size if args.batch_size is not None else infer.batch_size,
                        seed=args.seed if args.seed is not None else infer.seed,
                        device=args.device if args.device is not None else infer.device,
                        precision=args.precision, cuda_graphs=args.cuda_graphs)
    print(json.dumps(result, indent=2))
    return 0


def cmd_checkpoint_convert(args: argparse.Namespace) -> int:
    from priorgrad.core.checkpoint import convert

    out = convert(args.path, args.out)
    print(f"{out}: converted (loads with tensors and plain containers only)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="priorgrad", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    corpus = sub.add_parser("corpus", help="make or validate a corpus (LJSpeech layout)")
    csub = corpus.add_subparsers(dest="corpus_command", required=True)
    make = csub.add_parser("make", help="synthesise the default eSpeak NG corpus (offline)")
    make.add_argument("--out", required=True, help="output directory (LJSpeech layout)")
    make.add_argument("--n", type=int, default=None, help="utterances (default: corpus.n_utterances)")
    make.add_argument("--seed", type=int, default=None, help="seed (default: corpus.seed)")
    _add_params(make)
    make.set_defaults(func=cmd_corpus_make)
    val = csub.add_parser("validate", help="report every problem of a corpus; exit 1 when unusable")
    val.add_argument("path", help="corpus directory (metadata.csv + wavs/)")
    val.add_argument("--min-seconds", type=float, default=None,
                     help="shortest usable clip in seconds (default: one training crop, train.crop_frames)")
    val.add_argument("--skip-transcripts", action="store_true",
                     help="do not run the acoustic model's text front-end (eSpeak NG, acoustic.text.voice) on the "
                          "transcripts (for a corpus only the vocoder will use)")
    _add_params(val)
    val.set_defaults(func=cmd_corpus_validate)

    pre = sub.add_parser("preprocess", help="corpus -> normalised audio + log-mel .npy + manifest")
    pre.add_argument("--corpus", required=True, help="corpus directory (LJSpeech layout)")
    pre.add_argument("--out", required=True, help="features directory")
    pre.add_argument("--split-lists", default=None,
                     help="directory with ljspeech_{valid,test}[,train].txt id lists (default: shipped official lists)")
    _add_params(pre)
    pre.set_defaults(func=cmd_preprocess)

    ps = sub.add_parser("prior-stats", help="training-set frame-energy statistics (E_min, E_max) as JSON")
    ps.add_argument("--features", required=True, help="features directory")
    ps.add_argument("--out", required=True, help="output JSON path")
    _add_params(ps)
    ps.set_defaults(func=cmd_prior_stats)

    tr = sub.add_parser("train", help="train (or resume) a vocoder on precomputed features")
    tr.add_argument("--features", required=True, help="features directory")
    tr.add_argument("--stats", default=None, help="prior statistics JSON (required for prior.type=energy)")
    tr.add_argument("--run-dir", required=True, help="run directory (checkpoints, metrics); re-run to resume")
    _add_params(tr)
    tr.set_defaults(func=cmd_train)

    sy = sub.add_parser("synthesize", help="checkpoint + mels (.npy) or wavs -> wavs")
    sy.add_argument("--checkpoint", required=True)
    sy.add_argument("--input", required=True, nargs="+", help="mel .npy / .wav files or directories")
    sy.add_argument("--out", required=True, help="output directory")
    sy.add_argument("--steps", type=int, default=None, help="inference steps: 6, 12, 50 or any S (default: infer.steps)")
    sy.add_argument("--schedule", default=None, help="explicit comma-separated inference betas")
    sy.add_argument("--batch-size", type=int, default=None, help="default: infer.batch_size")
    sy.add_argument("--seed", type=int, default=None, help="default: infer.seed")
    sy.add_argument("--device", default=None, help="default: infer.device")
    sy.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="network precision (bf16: within priorgrad.vocoder.fast_infer.BF16_LS_MAE_TOLERANCE of fp32)")
    sy.add_argument("--cuda-graphs", action="store_true",
                    help="replay the whole sampler as one CUDA graph per batch shape (CUDA only)")
    _add_params(sy)
    sy.set_defaults(func=cmd_synthesize)

    ck = sub.add_parser("checkpoint", help="checkpoint tools (convert a trusted older checkpoint to the safe format)")
    cksub = ck.add_subparsers(dest="checkpoint_command", required=True)
    cv = cksub.add_parser("convert", help="rewrite a checkpoint you trust so that it loads without running code; "
                                          "this command unpickles the file in full, so only for files you trust")
    cv.add_argument("path", help="checkpoint file (.pt)")
    cv.add_argument("--out", default=None, help="where to write the converted file (default: in place)")
    cv.set_defaults(func=cmd_checkpoint_convert)

    _register_acoustic(_acoustic_group(sub))
    return parser


def _acoustic_group(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The `priorgrad acoustic ...` group: preprocess, prior-stats, train, synthesize, search-schedule."""
    acoustic = sub.add_parser("acoustic", help="the acoustic model (text -> mel): preprocess, prior-stats, train, "
                                               "synthesize, search-schedule")
    return acoustic.add_subparsers(dest="acoustic_command", required=True)


def _register_acoustic(asub: argparse._SubParsersAction) -> None:
    from priorgrad.acoustic.cli import register
    from priorgrad.acoustic.cli_data import add_data_commands

    add_data_commands(asub, _add_params)   # the data side: preprocess, prior-stats
    register(asub, _add_params)            # the model side: train, synthesize, search-schedule


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as e:
        # Known user-facing errors (bad params, bad audio, missing files): one clear line, no traceback.
        if args.verbose:
            raise
        print(f"priorgrad {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
