"""Calibration of the verdicts: simulated reports through the real statistics and claim rule.

A simulated report is a ScoreCube (eval.aggregate) filled with per-utterance scores from a
variance-components model, in units of the seed standard deviation:

    value = base + shift_if_PriorGrad + run effect + checkpoint effect + utterance effect + residual

- run effect: one per training run (system, size, seed), shared by every budget and T_infer of it,
  variance rho;
- checkpoint effect: one per (run, budget), shared by the T_infer of that checkpoint (the same
  weights), variance 1 - rho; so a seed's effect at one checkpoint has SD 1 = "one seed SD";
- utterance effect: one per (utterance, metric), shared by every system (what pairing removes), SD 2;
- residual: SD 1 per value. Two primary metrics whose seed effects correlate (0.7).

Each system has its own floor (its prior's noise scored without denoising; kind prior_noise, one
noise draw per seed): base - floor_gap (worse by floor_gap seed SDs) + the system's floor_shift +
utterance effect + residual. The default floor_gap (10) puts every model far above its floor, so
the floor gate passes everywhere; at_floor = True makes every model score like its own floor
(the default CPU run: nothing beats its noise), with PriorGrad's floor better than DiffWave's by
floor_shift (a systematic difference between the noise generators, not the methods).

`calibrate` runs `n_reports` such reports through eval.aggregate.contrast and reports.claims.evaluate_claims
(the report's own code, fewer bootstrap resamples) and returns, per claim, the share of reports that
gave each verdict. scripts/calibrate_verdicts.py prints the table; tests/test_reports_calibration.py
asserts the limits of issue 8.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eval.aggregate import BASELINE, PRIOR_OF_SYSTEM, TREATMENT, Cell, Rule, ScoreCube, floor_key, model_key
from reports.claims import VERDICTS, ClaimSettings, evaluate_claims

METRICS = {"mrstft": False, "pesq_wb": True}     # two primary metrics, one of each direction


@dataclass(frozen=True)
class Design:
    seeds: int = 3
    sizes: tuple[str, ...] = ("small", "large")
    budgets: tuple[int, ...] = (250, 500, 1000)
    t_infer: tuple[int, ...] = (6, 12, 50)
    n_utts: int = 8
    rho: float = 0.5              # share of the seed variance common to all checkpoints of a run
    shift: float = 0.0            # PriorGrad better by this many seed SDs (every cell)
    small_only: bool = False      # the shift only at the smallest size (claim 3's interaction)
    sd_utt: float = 2.0
    sd_resid: float = 1.0
    metric_corr: float = 0.7
    margin: float = 0.25          # equivalence margin of both metrics, in seed SDs
    floor_gap: float = 10.0       # each floor is this many seed SDs worse than the systems (at_floor: 0)
    at_floor: bool = False        # every model scores like its own floor (floor_gap ignored)
    floor_shift: float = 0.0      # PriorGrad's floor better than DiffWave's by this many seed SDs


def simulate(rng: np.random.Generator, d: Design) -> ScoreCube:
    n_params = {s: 1000 * (i + 1) for i, s in enumerate(d.sizes)}
    utts = [f"u{i:03d}" for i in range(d.n_utts)]
    m = len(METRICS)
    cov = np.full((m, m), d.metric_corr) + (1 - d.metric_corr) * np.eye(m)
    chol = np.linalg.cholesky(cov)
    sign = np.array([1.0 if hib else -1.0 for hib in METRICS.values()])   # +1 = better
    utt_eff = rng.normal(0, d.sd_utt, (m, d.n_utts))
    cells = {}
    seeds = np.arange(d.seeds)
    for system in (TREATMENT, BASELINE):
        floor_level = d.floor_shift if system == TREATMENT else 0.0   # in "better" units
        if not d.at_floor:
            floor_level -= d.floor_gap
        for j, (metric, hib) in enumerate(METRICS.items()):   # the floor: one noise draw per seed
            v = sign[j] * floor_level + utt_eff[j][None, :] + rng.normal(0, d.sd_resid, (d.seeds, d.n_utts))
            cells[floor_key(system, metric)] = Cell(seeds, v, np.ones_like(v, dtype=bool), PRIOR_OF_SYSTEM[system], 0)
        for size in d.sizes:
            run = (chol @ rng.normal(size=(m, d.seeds))) * np.sqrt(d.rho)              # (m, S)
            shift = d.shift if system == TREATMENT and (not d.small_only or size == d.sizes[0]) else 0.0
            if d.at_floor:   # the model is its own floor: its level is the floor's (plus its run/seed effects)
                shift = floor_level
            for budget in d.budgets:
                ckpt = (chol @ rng.normal(size=(m, d.seeds))) * np.sqrt(1 - d.rho)
                for t in d.t_infer:
                    resid = rng.normal(0, d.sd_resid, (m, d.seeds, d.n_utts))
                    for j, (metric, hib) in enumerate(METRICS.items()):
                        v = (sign[j] * shift + run[j][:, None] + ckpt[j][:, None] + utt_eff[j][None, :]
                             + resid[j])
                        cells[model_key(system, size, budget, t, metric)] = Cell(
                            seeds, v, np.ones_like(v, dtype=bool), PRIOR_OF_SYSTEM[system], n_params[size])
    return ScoreCube(utts, cells, dict(METRICS), n_params)


def calibrate(design: Design, n_reports: int, seed: int = 0, n_boot: int = 300, min_seeds: int = 3,
              min_utts: int = 8) -> dict[str, dict[str, float]]:
    """claim key -> {verdict: share of the n_reports simulated reports}."""
    rng = np.random.default_rng(seed)
    margins = {m: design.margin for m in METRICS}
    rule = Rule(min_seeds=min_seeds, min_utts=min_utts, n_boot=n_boot, seed=seed, level=0.95, margins=margins)
    cs = ClaimSettings(primary_metrics=list(METRICS), secondary_metrics=[], few_steps=[6, 12],
                       margins=dict(margins), rule=rule)
    counts: dict[str, dict[str, int]] = {}
    for i in range(n_reports):
        cube = simulate(rng, design)
        # a fresh bootstrap seed per report, so the reports are independent draws of the whole procedure
        cs.rule = Rule(min_seeds=min_seeds, min_utts=min_utts, n_boot=n_boot, seed=seed * 100003 + i, level=0.95,
                       margins=margins)
        for c in evaluate_claims(cube, cs):
            counts.setdefault(c.key, {v: 0 for v in VERDICTS})[c.verdict] += 1
    return {k: {v: n / n_reports for v, n in cnt.items()} for k, cnt in counts.items()}
