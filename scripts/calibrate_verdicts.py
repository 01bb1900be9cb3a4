"""Print the verdicts' calibration: how often simulated reports give each verdict (reports/calibration.py).

    python scripts/calibrate_verdicts.py [--reports 500] [--n-boot 300]

Null scenarios (identical systems) give the false-positive rate (supported or refuted), shifted ones
(PriorGrad better by one seed SD in every cell, or only at the small size for claim 3) the detection
rate (supported). rho = share of a run's seed variance common to all its checkpoints. Issue 17's two:
"at floor" (every model scores like its own floor, PriorGrad's floor 1 seed SD better than DiffWave's:
the floor gate must stop it) and "negligible" (a true shift inside the equivalence margin: significant
but negligible); in both at most 5% of reports may say supported or refuted.

Cheap enough for 2 busy cores: `nice -n 5 python scripts/calibrate_verdicts.py --reports 100 --n-boot 200
--json benchmarks/results/verdict_calibration.json` (about 10 minutes).
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
    ("at floor, floors differ by 1 SD, 5 seeds, rho 0.5", Design(seeds=5, rho=0.5, at_floor=True, floor_shift=1.0)),
    ("at floor, floors differ by 1 SD, 3 seeds, rho 0.5", Design(seeds=3, rho=0.5, at_floor=True, floor_shift=1.0)),
    ("negligible: shift 1 SD inside a 2.5 SD margin, 5 seeds", Design(seeds=5, rho=0.5, shift=1.0, margin=2.5)),
    ("negligible: shift 0.5 SD inside a 1.5 SD margin, 5 seeds", Design(seeds=5, rho=0.5, shift=0.5, margin=1.5)),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reports", type=int, default=500)
    ap.add_argument("--n-boot", type=int, default=300)
    ap.add_argument("--json", type=Path, default=None, help="also write the table as JSON")
    args = ap.parse_args()
    table, seconds = {}, {}
    for name, design in SCENARIOS:
        t0 = time.perf_counter()
        res = calibrate(design, args.reports, seed=1, n_boot=args.n_boot)
        table[name] = res
        seconds[name] = round(time.perf_counter() - t0, 1)
        cells = "  ".join(f"{k}: sup {v['supported']:.3f} ref {v['refuted']:.3f} neg {v['negligible difference']:.2f} "
                          f"nj {v['not judged']:.2f}" for k, v in res.items())
        print(f"{name:50s} {cells}   ({time.perf_counter() - t0:.1f} s)", flush=True)
    if args.json:
        import dataclasses

        import reports.calibration as cal

        import os
        import platform

        import numpy as np

        from priorgrad.core.fileio import write_text_atomic

        rates = {name: {k: {"supported_or_refuted": round(v["supported"] + v["refuted"], 4),
                            "supported": round(v["supported"], 4), "negligible": round(v["negligible difference"], 4),
                            "not_judged": round(v["not judged"], 4)} for k, v in res.items()}
                 for name, res in table.items()}
        write_text_atomic(args.json, json.dumps({
            "what": "share of simulated reports giving each verdict per claim (reports/calibration.py)",
            "command": f"nice -n 5 python scripts/calibrate_verdicts.py --reports {args.reports} --n-boot "
                       f"{args.n_boot} --json {args.json}",
            "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count(),
                        "python": platform.python_version(), "numpy": np.__version__},
            "seconds": seconds,
            "model": cal.__doc__.split("`calibrate`")[0].split("\n\n", 1)[1].strip(), "reports": args.reports, "n_boot": args.n_boot,
            "designs": {name: dataclasses.asdict(d) for name, d in SCENARIOS}, "rates": rates, "table": table},
            indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
