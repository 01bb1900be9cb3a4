"""`priorgrad acoustic preprocess` and `priorgrad acoustic prior-stats` (the data side of the acoustic model).

Registered on the `priorgrad acoustic` subcommand group by :func:`add_data_commands`; imports nothing
heavy until a command runs.
"""
from __future__ import annotations

import argparse
import json
from typing import Callable


def cmd_preprocess(args: argparse.Namespace) -> int:
    from priorgrad.acoustic.data_config import load_data_config
    from priorgrad.acoustic.preprocess import preprocess_acoustic
    from priorgrad.core.config import load_params

    params = load_params(args.params, args.overrides)
    cfg = load_data_config(args.params, args.overrides)
    summary = preprocess_acoustic(args.corpus, args.features, args.out, params, cfg,
                                  progress=False if args.no_progress else None)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_prior_stats(args: argparse.Namespace) -> int:
    from priorgrad.acoustic.data_config import load_data_config
    from priorgrad.acoustic.phoneme_stats import prior_stats_from_features

    p = load_data_config(args.params, args.overrides).prior
    info = prior_stats_from_features(args.features, args.out, p.std_min, p.std_max, p.min_frames)
    print(json.dumps({k: v for k, v in info.items() if k not in ("backoff",)}, indent=2))
    return 0


def add_data_commands(asub: argparse._SubParsersAction,
                      add_params: Callable[[argparse.ArgumentParser], None]) -> None:
    pre = asub.add_parser("preprocess", help="corpus + vocoder features -> tokens, durations, mel2ph, f0, energy")
    pre.add_argument("--corpus", required=True, help="corpus directory (LJSpeech layout; eSpeak events if synthetic)")
    pre.add_argument("--features", required=True, help="the vocoder's features directory (mels, split)")
    pre.add_argument("--out", required=True, help="acoustic features directory")
    pre.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_params(pre)
    pre.set_defaults(func=cmd_preprocess)

    ps = asub.add_parser("prior-stats", help="per-token mel mean/std of the train split (the phoneme prior)")
    ps.add_argument("--features", required=True, help="acoustic features directory")
    ps.add_argument("--out", required=True, help="output phoneme_stats.npz (phoneme_stats.json is written beside it)")
    add_params(ps)
    ps.set_defaults(func=cmd_prior_stats)
