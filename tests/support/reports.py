"""Support for the report tests, and a test of it.

- make_runs: a small fake runs/ tree in the exact layout of docs/interfaces.md ("Pipeline outputs the
  report reads"): 2 priors x 2 sizes x a ladder of 2 budgets (checkpoints of one run per seed) x
  T_infer {6, 50}, 3 seeds, 10 test utterances, prior-noise floor rows, real (short) wav files. Only the
  per-utterance scores are made up (a variance-components model with seed-level and utterance-level
  noise); summary.json and comparisons.json are computed from them by eval.aggregate, the evaluate
  stage's own code. PriorGrad is clearly better at T=6, equal at T=50; DiffWave at the small size,
  200 steps, T=6 is no better than its prior noise; curves converge faster for PriorGrad.
- make_acoustic_runs: the same for the acoustic model (runs/acoustic/{sweep,eval}, the contract of
  eval/contract.py): B1, B2 and PriorGrad-AM x sizes x a budget ladder x T_infer, qualified metric
  names ("E1/mel_cd", "E1/pesq_wb@rec", "E2/mel_cd"), each system's prior-draw floor rows, the mu-alone mean
  reference rows (kind mean_reference, identical for every seed, better than every system: never a floor),
  summary/comparisons by eval.aggregate(family="acoustic"), the vocoded ground-truth mel folder. Built-in
  effects: PriorGrad-AM clearly better than B1 at every setting (the same at every size); PriorGrad-AM
  and B2 equal; every system far better than its floor.
- browse_report / check_*: headless Chromium and static checks shared with the end-to-end tests.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from eval.aggregate import FLOOR, SCORE_COLUMNS, Rule, aggregate
from eval.contract import KIND_MEAN_REFERENCE, KIND_RECORDING
from priorgrad.core import registry
from support.browser import find_chromium, keep_screenshots  # noqa: F401 - used by the report tests

SR = 22050
SIZES = {"base": 2_619_971, "small": 1_227_651}
BUDGETS = [200, 400]
SEEDS = [0, 1, 2]
T_INFER = [6, 50]
UTTS = [f"LJ001-{i:04d}" for i in range(1, 11)]
N_AUDIO = 3
# metric: (higher_is_better, good value, spread); f0_rmse deliberately absent ("whatever is present")
METRICS = {"pesq_wb": (True, 3.0, 0.15), "stoi": (True, 0.9, 0.02), "mrstft": (False, 1.2, 0.05),
           "ls_mae": (False, 0.5, 0.03), "mcd": (False, 6.0, 0.3), "dnsmos_ovrl": (True, 3.0, 0.1),
           "vuv_error": (False, 0.1, 0.01)}
HIGHER = {m: v[0] for m, v in METRICS.items()}
SYSTEM = {e.name: e.system for e in registry.PRIORS.values() if e.family == "vocoder"}
FLOOR_BAD = {"standard": 6.0, "energy": 9.0, "specgrad": 9.0}    # badness of each prior's own noise (in spreads)
TWO_PRIORS = ("standard", "energy")               # the default sweep's (every existing fixture)
THREE_PRIORS = ("standard", "energy", "specgrad")  # the priors profile's (profiles/priors.yaml)
def _project_margins() -> dict[str, float]:
    from reports.config import project_report_config

    cfg = project_report_config()
    return {**cfg.equivalence_margins, **cfg.acoustic.equivalence_margins}


# the evaluate stage's rule (fewer resamples): the project's min_seeds, claim_min_n and equivalence margins
FIXTURE_RULE = Rule(min_seeds=3, min_utts=8, n_boot=500, seed=0, level=0.95, margins=_project_margins())


def _badness(prior: str, size: str, budget: int, t: int) -> float:
    """quality loss in units of spread: fewer steps, smaller net, shorter training hurt; the prior helps
    DiffWave's weak spot, few inference steps, a lot."""
    bad = (4.0 if t == 6 else 0.0) + (1.0 if size == "small" else 0.0) + (1.0 if budget == min(BUDGETS) else 0.0)
    # SpecGrad (three-prior fixtures only): helps a little more than PriorGrad at few steps
    return bad - ({"energy": 3.0, "specgrad": 4.0}.get(prior, 0.0) if t == 6 else 0.0)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _tone(freq: float, seconds: float, noise: float, seed: int) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    rng = np.random.default_rng(seed)
    x = 0.5 * np.sin(2 * np.pi * freq * t) * np.hanning(len(t)) + noise * rng.normal(size=len(t))
    return (0.95 * x / np.abs(x).max()).astype(np.float32)


def simulate_scores(sizes: dict[str, int], budgets: list[int], seeds: list[int], t_infer: list[int],
                    utts: list[str] = UTTS, seed: int = 1234, priors: tuple[str, ...] = TWO_PRIORS) -> pd.DataFrame:
    """Per-utterance scores in the scores.csv contract: value = good -+ badness * spread + seed effect of the
    checkpoint (shared by its T_infer) + utterance effect (shared by all systems) + residual."""
    rng = np.random.default_rng(seed)
    utt_eff = {m: rng.normal(0, spec[2] * 0.5, len(utts)) for m, spec in METRICS.items()}
    rows = []

    def value(metric: str, bad: float, seed_eff: float, i: int) -> float:
        hib, good, spread = METRICS[metric]
        v = good - bad * spread if hib else good + bad * spread
        return float(v + seed_eff + utt_eff[metric][i] + rng.normal(0, spread * 0.3))

    for prior in priors:
        system = SYSTEM[prior]
        for size, n_params in sizes.items():
            for s in seeds:
                run_eff = {m: rng.normal(0, spec[2] * 0.2) for m, spec in METRICS.items()}
                for budget in budgets:
                    eff = {m: run_eff[m] + rng.normal(0, spec[2] * 0.2) for m, spec in METRICS.items()}
                    for t in t_infer:
                        for metric in METRICS:
                            for i, utt in enumerate(utts):
                                v = value(metric, _badness(prior, size, budget, t), eff[metric], i)
                                failed = (metric == "pesq_wb" and prior == "standard" and size == "small"
                                          and budget == min(budgets) and t == min(t_infer) and s == seeds[0]
                                          and i == 0)
                                rows.append([system, prior, size, n_params, s, budget, t, utt, metric,
                                             np.nan if failed else round(v, 6), "model"])
        for s in seeds:   # the floor: one noise draw per training seed
            for metric in METRICS:
                for i, utt in enumerate(utts):
                    rows.append([system, prior, "", 0, s, 0, 0, utt, metric,
                                 round(value(metric, FLOOR_BAD[prior], 0.0, i), 6), FLOOR])
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def level_scores(model: dict[str, dict[str, float]], floor: dict[str, dict[str, float]], sizes: dict[str, int],
                 budgets: list[int], seeds: list[int], t_infer: list[int], sd: float = 0.005,
                 seed: int = 7) -> pd.DataFrame:
    """Scores at set levels (scores.csv contract): every setting of a system at model[system][metric], its
    floor rows at floor[system][metric] (a metric not given: METRICS' good value), plus an utterance effect
    shared by every system and floor (what pairing removes) and small seed and residual noise (sd)."""
    rng = np.random.default_rng(seed)
    utt_eff = {m: rng.normal(0, spec[2] * 0.5, len(UTTS)) for m, spec in METRICS.items()}
    rows = []
    for prior in ("standard", "energy"):
        system = SYSTEM[prior]
        for size, n_params in sizes.items():
            for s in seeds:
                run = {m: rng.normal(0, sd) for m in METRICS}
                for budget in budgets:
                    for t in t_infer:
                        for m, spec in METRICS.items():
                            base = model[system].get(m, spec[1])
                            for i, utt in enumerate(UTTS):
                                rows.append([system, prior, size, n_params, s, budget, t, utt, m,
                                             round(float(base + run[m] + utt_eff[m][i] + rng.normal(0, sd)), 6),
                                             "model"])
        for s in seeds:
            for m, spec in METRICS.items():
                for i, utt in enumerate(UTTS):
                    rows.append([system, prior, "", 0, s, 0, 0, utt, m,
                                 round(float(floor[system].get(m, spec[1]) + utt_eff[m][i] + rng.normal(0, sd)), 6),
                                 FLOOR])
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def write_eval_tables(ev: Path, scores: pd.DataFrame, rule: Rule = FIXTURE_RULE) -> None:
    """scores.csv, summary.json, comparisons.json as the evaluate stage writes them (eval.aggregate)."""
    out = scores.copy()
    out["value"] = out["value"].map(lambda v: "" if pd.isna(v) else v)
    out.to_csv(ev / "scores.csv", index=False, lineterminator="\n")
    summary, comparisons = aggregate(scores, HIGHER, rule)
    (ev / "summary.json").write_text(json.dumps(summary, indent=1))
    (ev / "comparisons.json").write_text(json.dumps(comparisons, indent=1))


def make_runs(root: Path, sizes: dict[str, int] | None = None, budgets: list[int] | None = None,
              seeds: list[int] | None = None, t_infer: list[int] | None = None,
              scores: pd.DataFrame | None = None, priors: tuple[str, ...] = TWO_PRIORS) -> tuple[Path, Path]:
    """Write root/runs/{sweep,eval}; returns (eval_dir, sweep_dir). Defaults: the full grid above, scored by
    simulate_scores (or `scores`, e.g. level_scores, on the same grid), through eval.aggregate; `priors`
    THREE_PRIORS adds SpecGrad (the priors profile's run)."""
    sizes = sizes or SIZES
    budgets = budgets or BUDGETS
    seeds = seeds or SEEDS
    t_infer = t_infer or T_INFER
    sweep, ev = root / "runs" / "sweep", root / "runs" / "eval"
    sweep.mkdir(parents=True)
    ev.mkdir(parents=True)
    rng = np.random.default_rng(99)

    # the ladder: one trial per prior, size and seed, trained to the largest budget
    trials, conv_rows = [], []
    top = max(budgets)
    for prior in priors:
        for size, n_params in sizes.items():
            for seed in seeds:
                trial = f"{prior}-{size}-s{seed}"
                trials.append({"trial": trial, "prior": prior, "system": SYSTEM[prior], "size": size,
                               "n_params": n_params, "seed": seed, "budget": top, "family": "vocoder",
                               "checkpoints": {str(b): f"runs/sweep/trials/{trial}/checkpoints/kept-{b:08d}.pt"
                                               for b in budgets},
                               "mlflow_run_id": f"run{len(trials):04d}", "mlflow_experiment": "fixture"})
                tau = 150.0 if prior == "standard" else 60.0
                for step in range(0, top + 1, 50):
                    for metric, base in (("ls_mae", 0.5), ("mrstft", 1.2), ("loss", 0.05)):
                        v = base * (1 + 2 * np.exp(-step / tau)) * (1.1 if size == "small" else 1.0)
                        conv_rows.append([trial, prior, size, n_params, seed, top, step, metric,
                                          round(float(v + rng.normal(0, base * 0.03)), 6)])
    (sweep / "trials.json").write_text(json.dumps(trials, indent=1))
    _write_csv(sweep / "convergence.csv",
               ["trial", "prior", "size", "n_params", "seed", "budget", "step", "metric", "value"], conv_rows)

    write_eval_tables(ev, simulate_scores(sizes, budgets, seeds, t_infer, priors=priors) if scores is None else scores)

    rtf_rows = []
    for system in (SYSTEM[p] for p in priors):
        for size, n_params in sizes.items():
            for t in t_infer:
                rtf_rows.append([system, size, n_params, t, round(n_params / 2.6e6 * t * 0.9, 4), "cpu"])
    _write_csv(ev / "rtf.csv", ["system", "size", "n_params", "t_infer", "rtf", "device"], rtf_rows)

    (ev / "provenance.json").write_text(json.dumps({
        "git_commit": "0123456789abcdef0123456789abcdef01234567", "params_hash": "abcdef123456",
        "corpus": {"source": "synthetic", "n_utterances": 40, "n_test": len(UTTS)},
        "machine": {"cpu": "test-cpu", "cores": 2, "gpu": None, "os": "Linux"},
        "metric_versions": {"pesq_wb": "pesq 0.0.4 (wb, 16 kHz)", "stoi": "pystoi 0.4.1",
                            "dnsmos_ovrl": "speechmos 0.0.1.1"}}, indent=1))

    # kept audio through the evaluate stage's own code (experiments.examples): folders and audio/index.json
    from eval.contract import KIND_MODEL, KIND_PRIOR_NOISE, audio_setting_dir, prior_noise_dir
    from experiments.examples import copy_examples

    work = root / "work"
    (work / "ref").mkdir(parents=True)
    for i, utt in enumerate(UTTS[:N_AUDIO]):
        sf.write(work / "ref" / f"{utt}.wav", _tone(220 + 40 * i, 0.4, 0.0, i), SR, subtype="PCM_16")
    sets = []

    def gen(name: str, noise: float) -> Path:
        d = work / "gen" / name
        d.mkdir(parents=True)
        for i, utt in enumerate(UTTS[:N_AUDIO]):
            sf.write(d / f"{utt}.wav", _tone(220 + 40 * i, 0.4, noise, 100 + i), SR, subtype="PCM_16")
        return d

    for prior in priors:
        sets.append({"dir": prior_noise_dir(SYSTEM[prior]), "src": str(gen(f"{prior}-floor", 0.5)),
                     "kind": KIND_PRIOR_NOISE, "system": SYSTEM[prior], "prior": prior, "size": "", "budget": 0,
                     "t_infer": 0, "seed": 0})
        for size in sizes:
            for budget in budgets:
                for t in t_infer:
                    name = audio_setting_dir(SYSTEM[prior], size, budget, t)
                    sets.append({"dir": name, "src": str(gen(name, 0.2 if t == 6 else 0.05)), "kind": KIND_MODEL,
                                 "system": SYSTEM[prior], "prior": prior, "size": size, "budget": budget,
                                 "t_infer": t, "seed": min(seeds)})
    copy_examples(ev, work / "ref", list(UTTS[:N_AUDIO]), N_AUDIO, sets)
    return ev, sweep


# --- the acoustic model's runs ---

ACOUSTIC_SIZES = {"cpu": 1_317_398, "tiny": 502_166}
ACOUSTIC_BUDGETS = [200, 400]
ACOUSTIC_T = [2, 12]
ACOUSTIC_UTTS = UTTS[:8]
# qualified metric: (higher_is_better, good value, spread)
ACOUSTIC_METRICS = {"E1/mel_cd": (False, 5.0, 0.2), "E1/mel_l1": (False, 0.5, 0.02), "E1/gv_dist": (False, 0.1, 0.03),
                    "E1/pesq_wb": (True, 2.0, 0.1), "E1/pesq_wb@rec": (True, 1.5, 0.1), "E2/mel_cd": (False, 5.5, 0.2)}
# condition E3 (predicted durations): scored at the largest budget and the longest T_infer only (as the stage's
# e3_t_infer); the floors on the primary's DTW metric and duration error only, the recordings (kind recording)
# on what needs no reference audio
ACOUSTIC_E3_METRICS = {"E3/mcd": (False, 6.0, 0.2), "E3/wer": (False, 0.5, 0.05), "E3/dur_mae_ms": (False, 20.0, 1.0)}
ACOUSTIC_E3_FLOOR = ("E3/mcd", "E3/dur_mae_ms")
ACOUSTIC_E3_RECORDING = {"E3/wer": 0.35, "E3/dur_mae_ms": 0.0}
ACOUSTIC_HIGHER = {m: v[0] for m, v in {**ACOUSTIC_METRICS, **ACOUSTIC_E3_METRICS}.items()}
ACOUSTIC_SYSTEM = {e.name: e.system for e in registry.priors("acoustic").values()}
ACOUSTIC_FLOOR_BAD = 10.0  # each system's prior draw, in spreads (the worst system setting is 7.5: every one beats it)
ACOUSTIC_MEAN_REFERENCE_BAD = 1.0  # mu alone: better than every system here (a mean wins on L1 / CD), never a floor


def _acoustic_badness(prior: str, size: str, budget: int, t: int, sizes: dict[str, int], budgets: list[int],
                      t_infer: list[int]) -> float:
    small = min(sizes, key=sizes.get)
    bad = (3.0 if t == min(t_infer) else 0.0) + (1.0 if size == small and len(sizes) > 1 else 0.0) + \
        (1.0 if budget == min(budgets) and len(budgets) > 1 else 0.0)
    return bad + (2.5 if prior == "standard" else 0.0)    # B1 worse everywhere; B2 = PriorGrad-AM


def simulate_acoustic_scores(sizes: dict[str, int], budgets: list[int], seeds: list[int], t_infer: list[int],
                             utts: list[str] = ACOUSTIC_UTTS, seed: int = 4321) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    specs = {**ACOUSTIC_METRICS, **ACOUSTIC_E3_METRICS}
    utt_eff = {m: rng.normal(0, spec[2] * 0.5, len(utts)) for m, spec in ACOUSTIC_METRICS.items()}
    # E3's own draws come after every E1 / E2 draw, so the E1 / E2 scores are those of the fixture without E3
    rows = []

    def value(metric: str, bad: float, eff: float, i: int, noise: bool = True) -> float:
        hib, good, spread = specs[metric]
        v = good - bad * spread if hib else good + bad * spread
        return float(v + eff + utt_eff[metric][i] + (rng.normal(0, spread * 0.3) if noise else 0.0))

    floor = {(m, i): round(value(m, ACOUSTIC_FLOOR_BAD, 0.0, i, noise=False), 6)
             for m in ACOUSTIC_METRICS for i in range(len(utts))}
    for prior, system in sorted(ACOUSTIC_SYSTEM.items()):
        for size, n_params in sizes.items():
            for s in seeds:
                run_eff = {m: rng.normal(0, spec[2] * 0.2) for m, spec in ACOUSTIC_METRICS.items()}
                for budget in budgets:
                    eff = {m: run_eff[m] + rng.normal(0, spec[2] * 0.2) for m, spec in ACOUSTIC_METRICS.items()}
                    for t in t_infer:
                        bad = _acoustic_badness(prior, size, budget, t, sizes, budgets, t_infer)
                        for metric in ACOUSTIC_METRICS:
                            for i, utt in enumerate(utts):
                                rows.append([system, prior, size, n_params, s, budget, t, utt, metric,
                                             round(value(metric, bad, eff[metric], i), 6), "model"])
        for s in range(len(seeds)):   # the floor: this system's prior draw s (one per seed index)
            for metric in ACOUSTIC_METRICS:
                spread = ACOUSTIC_METRICS[metric][2]
                for i, utt in enumerate(utts):
                    rows.append([system, prior, "", 0, s, 0, 0, utt, metric,
                                 round(floor[(metric, i)] + float(rng.normal(0, spread * 0.1)), 6), FLOOR])
    for s in range(len(seeds)):   # the mean reference (mu alone): deterministic, under PriorGrad-AM, never a floor
        for metric in ACOUSTIC_METRICS:
            for i, utt in enumerate(utts):
                rows.append(["priorgrad-am", "phoneme", "", 0, s, 0, 0, utt, metric,
                             round(value(metric, ACOUSTIC_MEAN_REFERENCE_BAD, 0.0, i, noise=False), 6),
                             KIND_MEAN_REFERENCE])
    rows += _e3_rows(rng, specs, sizes, budgets, seeds, t_infer, utts)
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def _e3_rows(rng, specs, sizes: dict[str, int], budgets: list[int], seeds: list[int], t_infer: list[int],
             utts: list[str]) -> list[list]:
    """E3 at the largest budget and longest T (B1 worse, PriorGrad-AM = B2, every system above its floor), the
    floors (E3/mcd and duration error), the mean reference and the recordings (kind recording)."""
    top, t_top = max(budgets), max(t_infer)
    rows = []
    for prior, system in sorted(ACOUSTIC_SYSTEM.items()):
        for size, n_params in sizes.items():
            for s in seeds:
                bad = _acoustic_badness(prior, size, top, t_top, sizes, budgets, t_infer)
                for metric, (hib, good, spread) in ACOUSTIC_E3_METRICS.items():
                    for utt in utts:
                        rows.append([system, prior, size, n_params, s, top, t_top, utt, metric,
                                     round(good + bad * spread + float(rng.normal(0, spread * 0.3)), 6), "model"])
        for s in range(len(seeds)):
            for metric in ACOUSTIC_E3_FLOOR:
                good, spread = specs[metric][1:]
                for utt in utts:
                    rows.append([system, prior, "", 0, s, 0, 0, utt, metric,
                                 round(good + ACOUSTIC_FLOOR_BAD * spread + float(rng.normal(0, spread * 0.1)), 6),
                                 FLOOR])
    for s in range(len(seeds)):
        for metric, (_, good, spread) in ACOUSTIC_E3_METRICS.items():
            for utt in utts:
                rows.append(["priorgrad-am", "phoneme", "", 0, s, 0, 0, utt, metric,
                             round(good + ACOUSTIC_MEAN_REFERENCE_BAD * spread, 6), KIND_MEAN_REFERENCE])
        for metric, v in ACOUSTIC_E3_RECORDING.items():
            for utt in utts:
                rows.append(["priorgrad-am", "phoneme", "", 0, s, 0, 0, utt, metric, v, KIND_RECORDING])
    return rows


def make_acoustic_runs(root: Path, sizes: dict[str, int] | None = None, budgets: list[int] | None = None,
                       seeds: list[int] | None = None, t_infer: list[int] | None = None) -> tuple[Path, Path]:
    """Write root/runs/acoustic/{sweep,eval}; returns (eval_dir, sweep_dir)."""
    from eval.contract import KIND_MODEL, KIND_PRIOR_NOISE, VOCODED_REFERENCE_AUDIO, audio_setting_dir
    from experiments.examples import copy_examples

    sizes = sizes or ACOUSTIC_SIZES
    budgets = budgets or ACOUSTIC_BUDGETS
    seeds = seeds or SEEDS
    t_infer = t_infer or ACOUSTIC_T
    sweep, ev = root / "runs" / "acoustic" / "sweep", root / "runs" / "acoustic" / "eval"
    sweep.mkdir(parents=True)
    ev.mkdir(parents=True)
    rng = np.random.default_rng(77)
    trials, conv_rows = [], []
    top = max(budgets)
    for prior, system in sorted(ACOUSTIC_SYSTEM.items()):
        for size, n_params in sizes.items():
            for seed in seeds:
                trial = f"{system}-{size}-s{seed}"
                trials.append({"trial": trial, "prior": prior, "system": system, "size": size, "n_params": n_params,
                               "seed": seed, "budget": top, "family": "acoustic",
                               "checkpoints": {str(b): f"runs/acoustic/sweep/trials/{trial}/checkpoints/kept-{b:08d}.pt"
                                               for b in budgets},
                               "mlflow_run_id": f"am{len(trials):04d}", "mlflow_experiment": "fixture-acoustic"})
                tau = 40.0 if prior == "phoneme" else 120.0
                for step in range(0, top + 1, 50):
                    v = 0.45 * (1 + 1.5 * np.exp(-step / tau))
                    conv_rows.append([trial, prior, size, n_params, seed, top, step, "mel_l1",
                                      round(float(v + rng.normal(0, 0.01)), 6)])
                    conv_rows.append([trial, prior, size, n_params, seed, top, step, "floor_mel_l1", 0.7])
    (sweep / "trials.json").write_text(json.dumps(trials, indent=1))
    _write_csv(sweep / "convergence.csv",
               ["trial", "prior", "size", "n_params", "seed", "budget", "step", "metric", "value"], conv_rows)

    scores = simulate_acoustic_scores(sizes, budgets, seeds, t_infer)
    out = scores.copy()
    out.to_csv(ev / "scores.csv", index=False, lineterminator="\n")
    summary, comparisons = aggregate(scores, ACOUSTIC_HIGHER, FIXTURE_RULE, family="acoustic")
    (ev / "summary.json").write_text(json.dumps(summary, indent=1))
    (ev / "comparisons.json").write_text(json.dumps(comparisons, indent=1))
    _write_csv(ev / "rtf.csv", ["system", "size", "n_params", "t_infer", "rtf", "device"],
               [[system, size, n, t, round(n / 1e8 * t, 5), "cpu"] for system in ACOUSTIC_SYSTEM.values()
                for size, n in sizes.items() for t in t_infer])
    (ev / "provenance.json").write_text(json.dumps({
        "git_commit": "0123456789abcdef0123456789abcdef01234567", "params_hash": "acoustic123456",
        "corpus": {"source": "synthetic", "n_test": len(ACOUSTIC_UTTS)}, "machine": {"cpu": "test-cpu", "cores": 2},
        "metric_versions": {"mel_cd": "priorgrad.acoustic.metrics_mel", "pesq_wb": "pesq 0.0.4 (wb, 16 kHz)"},
        "vocoder": "griffin_lim", "griffin_lim_iters": 60,
        "acoustic": {"schedule": "strided", "clip_x0": "data_range"}}, indent=1))

    work = root / "work-acoustic"
    (work / "ref").mkdir(parents=True)
    for i, utt in enumerate(UTTS[:N_AUDIO]):
        sf.write(work / "ref" / f"{utt}.wav", _tone(220 + 40 * i, 0.4, 0.0, i), SR, subtype="PCM_16")

    def gen(name: str, noise: float, seed: int) -> Path:
        d = work / "gen" / name
        d.mkdir(parents=True)
        for i, utt in enumerate(UTTS[:N_AUDIO]):
            sf.write(d / f"{utt}.wav", _tone(220 + 40 * i, 0.4, noise, seed + i), SR, subtype="PCM_16")
        return d

    sets = []
    for prior, system in sorted(ACOUSTIC_SYSTEM.items()):
        sets.append({"dir": f"{system}-floor", "src": str(gen(f"{system}-floor", 0.3, 500)), "kind": KIND_PRIOR_NOISE,
                     "system": system, "prior": prior, "size": "", "budget": 0, "t_infer": 0, "seed": 0,
                     "condition": "E1"})
        for size in sizes:
            for budget in budgets:
                for t in t_infer:
                    name = f"{audio_setting_dir(system, size, budget, t)}-E1"
                    sets.append({"dir": name, "src": str(gen(name, 0.1, 600)), "kind": KIND_MODEL, "system": system,
                                 "prior": prior, "size": size, "budget": budget, "t_infer": t, "seed": min(seeds),
                                 "condition": "E1"})
    copy_examples(ev, work / "ref", list(UTTS[:N_AUDIO]), N_AUDIO, sets)
    voc = ev / "audio" / VOCODED_REFERENCE_AUDIO
    voc.mkdir()
    for i, utt in enumerate(UTTS[:N_AUDIO]):
        sf.write(voc / f"{utt}.wav", _tone(220 + 40 * i, 0.4, 0.02, 700 + i), SR, subtype="PCM_16")
    return ev, sweep


# --- headless Chromium (Debian `chromium`; .ci/install-chromium.sh installs it where it can) ---

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--hide-scrollbars",
                  "--autoplay-policy=no-user-gesture-required", "--virtual-time-budget=5000"]

# Written into a copy of the page: after load, waits for every <audio> to load its metadata or fail,
# then writes src / readyState / error code / duration of each into <pre id="audio-probe">.
AUDIO_PROBE_JS = """<script>
(function () {
  function report() {
    if (document.getElementById('audio-probe')) return;
    var out = [];
    document.querySelectorAll('audio').forEach(function (a) {
      out.push({src: a.getAttribute('src'), readyState: a.readyState,
                error: a.error ? a.error.code : null, duration: a.duration,
                control: a.hasAttribute('data-probe-control')});
    });
    var pre = document.createElement('pre');
    pre.id = 'audio-probe';
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  window.addEventListener('load', function () {
    var audios = [].slice.call(document.querySelectorAll('audio'));
    var pending = audios.length;
    if (!pending) { report(); return; }
    audios.forEach(function (a) {
      function done() { if (--pending === 0) report(); }
      if (a.readyState >= 1 || a.error) { done(); return; }
      a.addEventListener('loadedmetadata', done, {once: true});
      a.addEventListener('error', done, {once: true});
    });
    setTimeout(report, 4000);
  });
})();
</script>"""

# Keeps only the page from one section on (default: the listening section), for a screenshot of the players.
def section_only_js(section: str = "listening") -> str:
    return ("<script>document.addEventListener('DOMContentLoaded', function () {"
            f"var l = document.getElementById('{section}');"
            "while (l.previousElementSibling) l.previousElementSibling.remove();});</script>")



def _chromium(browser: str, args: list[str], user_data: Path, timeout: float = 90) -> str:
    import subprocess

    cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={user_data}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"chromium failed (rc {proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return proc.stdout


def browse_report(browser: str, out_dir: Path, work: Path, sections: tuple[str, ...] = ("listening",)
                  ) -> tuple[list[dict], list[Path]]:
    """Open a copy of the report in headless Chromium: the audio probe's records (plus one control
    element with a corrupt file, proving the probe sees errors) and screenshots (top of the page, then
    the page from each of `sections` on: the listening section; "acoustic-listening" for the acoustic
    model's). The copy keeps the probe pages out of the real report directory."""
    import re
    import shutil

    site = work / "site"
    shutil.copytree(out_dir, site)
    html = (site / "index.html").read_text(encoding="utf-8")
    (site / "_broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    control = '<audio data-probe-control preload="metadata" src="_broken.wav"></audio>'
    (site / "_probe.html").write_text(html.replace("</body>", control + AUDIO_PROBE_JS + "</body>"), encoding="utf-8")
    for sec in sections:
        (site / f"_{sec}.html").write_text(html.replace("</head>", section_only_js(sec) + "</head>"), encoding="utf-8")

    dom = _chromium(browser, ["--dump-dom", (site / "_probe.html").as_uri()], work / "ud-probe")
    m = re.search(r'<pre id="audio-probe">(.*?)</pre>', dom, re.S)
    assert m, "the audio probe did not report (page script did not run?)"
    import html as htmlmod

    records = json.loads(htmlmod.unescape(m.group(1)))
    shots = [work / "report-top.png"] + [work / f"report-{sec}.png" for sec in sections]
    _chromium(browser, ["--window-size=1280,2400", f"--screenshot={shots[0]}", (site / "index.html").as_uri()],
              work / "ud-shot1")
    for i, sec in enumerate(sections):
        _chromium(browser, ["--window-size=1280,1600", f"--screenshot={shots[i + 1]}", (site / f"_{sec}.html").as_uri()],
                  work / f"ud-shot{i + 2}")
    for s in shots:
        assert s.is_file() and s.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{s}: no PNG screenshot written"
    return records, shots


def check_audio_records(records: list[dict], expected_players: int) -> None:
    control = [r for r in records if r["control"]]
    real = [r for r in records if not r["control"]]
    assert len(control) == 1 and control[0]["error"] is not None, f"probe did not detect the broken control: {control}"
    assert len(real) == expected_players
    bad = [r for r in real if r["error"] is not None or r["readyState"] < 1 or not r["duration"] > 0]
    assert not bad, f"audio elements failed to load: {bad[:5]}"


# --- static checks of the generated page ---

def parse_report(index: Path) -> dict[str, list]:
    """Tables, images, audio sources and relative links of index.html (stdlib HTML parser)."""
    from html.parser import HTMLParser

    found: dict[str, list] = {"tables": [], "img": [], "audio": [], "href": []}

    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "table":
                found["tables"].append(a.get("class", ""))
            elif tag == "img":
                found["img"].append(a.get("src"))
            elif tag in ("audio", "source") and a.get("src"):
                found["audio"].append(a["src"])
            elif tag == "a" and a.get("href") and not a["href"].startswith("#"):
                found["href"].append(a["href"])

    P().feed(index.read_text(encoding="utf-8"))
    return found


def check_links_resolve(index: Path) -> dict[str, list]:
    """Every image, audio and local link of index.html resolves to a real file beside it."""
    import soundfile

    found = parse_report(index)
    base = index.parent
    for kind in ("img", "audio", "href"):
        for src in found[kind]:
            assert src and "://" not in src and not src.startswith("/"), f"{index}: non-local {kind} link {src!r}"
            assert (base / src).is_file(), f"{index}: {kind} link {src!r} does not resolve"
    for src in found["img"]:
        head = (base / src).read_bytes()[:8]
        assert head.startswith(b"\x89PNG") or head.startswith(b"<?xml"), f"{src}: not a PNG/SVG image"
    for src in found["audio"]:
        info = soundfile.info(str(base / src))
        assert info.frames > 0, f"{src}: empty audio"
    return found


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
