"""Calibration of the verdicts (issue 8): simulated reports through the real statistics and claim rule
(reports/calibration.py documents the model; scripts/calibrate_verdicts.py prints the full table).

- identical systems (seed-level and utterance-level variance), 3 seeds: at most 10% of reports say
  "supported" or "refuted" for any claim, whether a run's seed effect is shared by all its
  checkpoints (rho = 1) or not (rho = 0);
- PriorGrad better by one seed SD in every cell, 5 seeds (two network sizes, rho = 0.5): claims 1 and
  2 are "supported" in at least 80% of reports; claim 3 (an interaction, a difference of two
  differences) in at least 80% with a 2 SD advantage at the small size only;
- issue 17: every model scoring like its own floor, PriorGrad's floor 1 seed SD better than DiffWave's
  (a systematic difference between the noise generators), and a true shift inside the equivalence
  margin (significant but negligible): in both at most 5% of reports say "supported" or "refuted".
"""
from __future__ import annotations

import pytest

from reports.calibration import Design, calibrate

N_REPORTS = 150
N_BOOT = 200


@pytest.mark.parametrize("rho", [0.0, 1.0])
def test_identical_systems_rarely_get_a_verdict(rho: float) -> None:
    rates = calibrate(Design(seeds=3, rho=rho), N_REPORTS, seed=11, n_boot=N_BOOT)
    fp = {k: v["supported"] + v["refuted"] for k, v in rates.items()}
    print(f"false-positive rate (supported or refuted), 3 seeds, rho {rho}: {fp}")
    assert set(fp) == {"convergence", "few_steps", "small_size"}
    assert all(v <= 0.10 for v in fp.values()), fp
    assert all(v["not judged"] == 0 for v in rates.values())


def test_one_seed_sd_shift_with_five_seeds_is_detected() -> None:
    rates = calibrate(Design(seeds=5, rho=0.5, shift=1.0), N_REPORTS, seed=12, n_boot=N_BOOT)
    det = {k: v["supported"] for k, v in rates.items()}
    print(f"detection rate (supported), 5 seeds, shift 1 seed SD: {det}")
    assert det["convergence"] >= 0.80 and det["few_steps"] >= 0.80, det
    assert rates["convergence"]["refuted"] == rates["few_steps"]["refuted"] == 0
    assert rates["small_size"]["supported"] + rates["small_size"]["refuted"] <= 0.10   # no true interaction
    inter = calibrate(Design(seeds=5, rho=0.5, shift=2.0, small_only=True), N_REPORTS, seed=13, n_boot=N_BOOT)
    print(f"detection rate of the interaction (claim 3), 2 seed SD at the small size only: "
          f"{inter['small_size']['supported']}")
    assert inter["small_size"]["supported"] >= 0.80


def test_too_few_seeds_is_never_judged() -> None:
    rates = calibrate(Design(seeds=2, shift=3.0, sizes=("tiny",)), 5, seed=14, n_boot=N_BOOT)
    assert all(v["not judged"] == 1.0 for v in rates.values()), rates


def test_systems_at_their_floor_rarely_get_a_verdict() -> None:
    rates = calibrate(Design(seeds=5, rho=0.5, at_floor=True, floor_shift=1.0), 100, seed=15, n_boot=N_BOOT)
    verdict = {k: v["supported"] + v["refuted"] for k, v in rates.items()}
    print(f"supported or refuted, every model at its floor, floors 1 SD apart: {verdict}")
    assert all(v <= 0.05 for v in verdict.values()), verdict
    assert all(v["not judged"] >= 0.9 for v in rates.values()), rates     # "not judged: at floor"


def test_negligible_shift_rarely_gets_a_verdict() -> None:
    rates = calibrate(Design(seeds=5, rho=0.5, shift=1.0, margin=2.5), 100, seed=16, n_boot=N_BOOT)
    verdict = {k: v["supported"] + v["refuted"] for k, v in rates.items()}
    print(f"supported or refuted, a 1 SD shift inside a 2.5 SD margin: {verdict}")
    assert all(v <= 0.05 for v in verdict.values()), verdict
    # the shift is real: claims 1 and 2 find it, and call it negligible
    assert rates["convergence"]["negligible difference"] >= 0.7 and rates["few_steps"]["negligible difference"] >= 0.7
