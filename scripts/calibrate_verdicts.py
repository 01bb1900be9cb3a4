"""Print the verdicts' calibration: how often simulated reports give each verdict (reports/calibration.py).

    python scripts/calibrate_verdicts.py [--reports 500] [--n-boot 300]

Null scenarios (identical systems) give the false-positive rate (supported or refuted), shifted ones
(PriorGrad better by one seed SD in every cell, or only at the small size for claim 3) the detection
rate (supported). rho = share of a run's seed variance common to all its checkpoints.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reports.calibration import Design, calibrate  # noqa: E402

SCENARIOS = [
    ("null, 3 seeds, rho 0.5", Design(seeds=3, rho=0.5)),
    ("null, 3 seeds, rho 1", Design(seeds=3, rho=1.0)),
    ("null, 3 seeds, rho 0", Design(seeds=3, rho=0.0)),
    ("null, 5 seeds, rho 0.5", Design(seeds=5, rho=0.5)),
    ("null, 3 seeds, one size, rho 0.5", Design(seeds=3, rho=0.5, sizes=("tiny",))),
    ("shift 1 SD, 5 seeds, rho 0.5", Design(seeds=5, rho=0.5, shift=1.0)),
    ("shift 1 SD, 5 seeds, rho 0", Design(seeds=5, rho=0.0, shift=1.0)),
    ("shift 1 SD, 5 seeds, rho 1", Design(seeds=5, rho=1.0, shift=1.0)),
    ("shift 1 SD, 5 seeds, one size, rho 0.5", Design(seeds=5, rho=0.5, shift=1.0, sizes=("tiny",))),
    ("shift 1 SD at small size only, 5 seeds, rho 0.5", Design(seeds=5, rho=0.5, shift=1.0, small_only=True)),
    ("shift 2 SD at small size only, 5 seeds, rho 0.5", Design(seeds=5, rho=0.5, shift=2.0, small_only=True)),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reports", type=int, default=500)
    ap.add_argument("--n-boot", type=int, default=300)
    ap.add_argument("--json", type=Path, default=None, help="also write the table as JSON")
    args = ap.parse_args()
    table = {}
    for name, design in SCENARIOS:
        t0 = time.perf_counter()
        res = calibrate(design, args.reports, seed=1, n_boot=args.n_boot)
        table[name] = res
        cells = "  ".join(f"{k}: sup {v['supported']:.3f} ref {v['refuted']:.3f} nj {v['not judged']:.2f}"
                          for k, v in res.items())
        print(f"{name:50s} {cells}   ({time.perf_counter() - t0:.1f} s)", flush=True)
    if args.json:
        import dataclasses

        import reports.calibration as cal

        args.json.write_text(json.dumps({
            "what": "share of simulated reports giving each verdict per claim (reports/calibration.py)",
            "model": cal.__doc__.split("`calibrate`")[0].split("\n\n", 1)[1].strip(), "reports": args.reports, "n_boot": args.n_boot,
            "designs": {name: dataclasses.asdict(d) for name, d in SCENARIOS}, "table": table}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
