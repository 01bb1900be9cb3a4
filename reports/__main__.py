"""python -m reports --eval runs/eval --sweep runs/sweep [--acoustic-eval runs/acoustic/eval
--acoustic-sweep runs/acoustic/sweep] --params params.yaml --out reports/out"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from reports.config import ReportConfigError, load_report_config
from reports.inputs import ReportInputError
from priorgrad.core.logs import setup_logging


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reports", description=__doc__ and
                                 "Generate the PriorGrad vs DiffWave report (HTML, Markdown, PDF) from the pipeline outputs.")
    ap.add_argument("--eval", required=True, type=Path, help="evaluate stage output directory (runs/eval)")
    ap.add_argument("--sweep", required=True, type=Path, help="sweep stage output directory (runs/sweep)")
    ap.add_argument("--acoustic-eval", type=Path, default=None,
                    help="acoustic evaluate stage output (runs/acoustic/eval); with --acoustic-sweep adds the acoustic section")
    ap.add_argument("--acoustic-sweep", type=Path, default=None,
                    help="acoustic sweep stage output (runs/acoustic/sweep); needs --acoustic-eval")
    ap.add_argument("--params", default=Path("params.yaml"), type=Path, help="params file with the report: section")
    ap.add_argument("--out", required=True, type=Path, help="output directory (replaced), e.g. reports/out")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if (args.acoustic_eval is None) != (args.acoustic_sweep is None):
        ap.error("--acoustic-eval and --acoustic-sweep go together (the acoustic section needs both)")
    setup_logging(args.verbose)
    # matplotlib's font manager logs at INFO on first use; keep the stage log readable.
    for noisy in ("matplotlib", "fontTools", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from reports.generate import generate  # heavy imports (matplotlib, seaborn) only when running

    try:
        cfg = load_report_config(args.params)
        index = generate(args.eval, args.sweep, cfg, args.out, args.acoustic_eval, args.acoustic_sweep)
    except (ReportInputError, ReportConfigError, ValueError, KeyError) as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 2
    print(index)
    return 0


if __name__ == "__main__":
    sys.exit(main())
