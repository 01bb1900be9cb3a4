"""`priorgrad acoustic train | synthesize | search-schedule` (the model side of the acoustic group).

The data side registers `preprocess` and `prior-stats` in the same group (priorgrad/acoustic/cli_data.py).
Settings come from params.yaml (`--params`, `--set key=value`); synthesis takes its model settings
from the checkpoint and its inference settings from the checkpoint's acoustic.infer unless given here.
"""
from __future__ import annotations

import argparse
import json
from typing import Any, Callable


def cmd_train(args: argparse.Namespace) -> int:
    from priorgrad.acoustic.model_config import load_acoustic_config
    from priorgrad.acoustic.train import train_acoustic

    cfg = load_acoustic_config(args.params, args.overrides)
    result = train_acoustic(cfg, args.features, args.run_dir, prior=args.stats)
    print(json.dumps(result, indent=2))
    return 0


def _schedule(args: argparse.Namespace, checkpoint: str):
    from priorgrad.acoustic.synthesize import load_acoustic_checkpoint, make_schedule
    from priorgrad.core.diffusion import Diffusion

    if args.schedule is None and args.steps is None and args.betas is None:
        return None
    _, cfg, _ = load_acoustic_checkpoint(checkpoint)
    d = Diffusion(cfg.diffusion.num_steps, cfg.diffusion.beta_start, cfg.diffusion.beta_end)
    kind = args.schedule or ("betas" if args.betas else cfg.infer.schedule)
    betas = [float(x) for x in args.betas.split(",")] if args.betas else cfg.infer.betas
    return make_schedule(d, kind, args.steps or cfg.infer.steps, betas)


def cmd_synthesize(args: argparse.Namespace) -> int:
    from priorgrad.acoustic.synthesize import synthesize

    if args.features is None and not args.text:
        raise ValueError("give --features (synthesise a split) and/or --text (raw text, condition E3)")
    vocoder = None if args.vocoder == "none" else args.vocoder
    result = synthesize(args.checkpoint, args.out, features=args.features, split=args.split,
                        conditions=args.condition or ["E1"], texts=args.text, schedule=_schedule(args, args.checkpoint),
                        seed=args.seed, batch_size=args.batch_size, device=args.device,
                        max_utterances=args.max_utterances, vocoder=vocoder,
                        vocoder_checkpoint=args.vocoder_checkpoint)
    print(json.dumps(result, indent=2))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from priorgrad.acoustic.dataset import FeatureSet
    from priorgrad.acoustic.schedule_search import search_schedule
    from priorgrad.acoustic.synthesize import load_acoustic_checkpoint, table_from_ckpt
    from priorgrad.core.diffusion import Diffusion
    from priorgrad.core.fileio import write_json_atomic
    from priorgrad.core.runtime import resolve_device

    dev = resolve_device(args.device)
    model, cfg, ckpt = load_acoustic_checkpoint(args.checkpoint, dev)
    fs = FeatureSet(args.features)
    utts = fs.utterances(args.split)  # default: valid (the official code searched on a test batch; we never do)
    if not utts:
        raise ValueError(f"{args.features}: no {args.split!r} utterances to search the schedule on")
    d = Diffusion(cfg.diffusion.num_steps, cfg.diffusion.beta_start, cfg.diffusion.beta_end)
    cap = cfg.infer.search_max_candidates if args.max_candidates is None else args.max_candidates
    result = search_schedule(model, d, cfg.model, table_from_ckpt(ckpt), utts[0],
                             (float(ckpt["f0_stats"]["mean"]), float(ckpt["f0_stats"]["std"])), dev, args.steps,
                             cap, cfg.infer.seed, progress=True, clip_x0=cfg.infer.clip_x0)
    write_json_atomic(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


def register(asub: Any, add_params: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the model side's subcommands to the `priorgrad acoustic` subparsers."""
    tr = asub.add_parser("train", help="train (or resume) an acoustic model on an acoustic features directory")
    tr.add_argument("--features", required=True, help="acoustic features directory (priorgrad acoustic preprocess)")
    tr.add_argument("--stats", default=None,
                    help="phoneme_stats.npz (required for acoustic.model.prior=phoneme and for acoustic.infer.clip_x0=data_range: its mel range; else gives the mean reference)")
    tr.add_argument("--run-dir", required=True, help="run directory (checkpoints, metrics); re-run to resume")
    add_params(tr)
    tr.set_defaults(func=cmd_train)

    sy = asub.add_parser("synthesize", help="checkpoint -> mels (E1/E2/E3 of a split, or raw text) [+ audio]")
    sy.add_argument("--checkpoint", required=True)
    sy.add_argument("--out", required=True, help="output directory (<condition>/<utt>.npy [.wav], synthesis.json)")
    sy.add_argument("--features", default=None, help="acoustic features directory of the utterances")
    sy.add_argument("--split", default="test", help="split to synthesise (default: test)")
    sy.add_argument("--condition", action="append", choices=["E1", "E2", "E3"],
                    help="E1 GT durations+f0+energy, E2 GT durations, E3 all predicted (repeatable; default E1)")
    sy.add_argument("--text", action="append", default=[], help="raw text to synthesise under E3 (repeatable)")
    sy.add_argument("--schedule", choices=["strided", "official", "uniform", "betas"], default=None,
                    help="inference schedule (default: the checkpoint's acoustic.infer.schedule)")
    sy.add_argument("--steps", type=int, default=None, help="S of a strided/uniform schedule")
    sy.add_argument("--betas", default=None, help="explicit comma-separated inference betas (aligned)")
    sy.add_argument("--vocoder", choices=["none", "griffin_lim", "priorgrad"], default="none",
                    help="render audio too (griffin_lim offline; priorgrad with --vocoder-checkpoint)")
    sy.add_argument("--vocoder-checkpoint", default=None, help="a trained vocoder checkpoint of this project")
    sy.add_argument("--max-utterances", type=int, default=0, help="first N utterances of the split (0 = all)")
    sy.add_argument("--batch-size", type=int, default=None)
    sy.add_argument("--seed", type=int, default=None)
    sy.add_argument("--device", default=None)
    sy.set_defaults(func=cmd_synthesize)

    se = asub.add_parser("search-schedule", help="grid-search a 2/6/12-step schedule (E2, first utterance of --split)")
    se.add_argument("--checkpoint", required=True)
    se.add_argument("--features", required=True)
    se.add_argument("--steps", type=int, required=True, choices=[2, 6, 12])
    se.add_argument("--split", default="valid",
                    help="split whose first utterance is searched on (default: valid, a held-out batch; official: test)")
    se.add_argument("--out", required=True, help="output JSON (best betas, their t~ and mel L1)")
    se.add_argument("--max-candidates", type=int, default=None,
                    help="cap (default: acoustic.infer.search_max_candidates; 0 = all)")
    se.add_argument("--device", default="auto")
    se.set_defaults(func=cmd_search)
