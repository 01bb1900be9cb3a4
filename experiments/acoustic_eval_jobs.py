"""The acoustic evaluate stage's synthesis: each scored set, one function per kind of set.

- the mel conditions (E1, E2: ground-truth durations) of every run at every budget and T_infer, scored in
  the mel domain here, their audio conditions queued for the vocoder;
- condition E3 (everything predicted) at each run's largest budget and e3_t_infer: duration error here;
- each system's floor (its own prior draws) under every condition and E3;
- the mean (regression) reference: mu alone, under every condition and, by PriorGrad-AM's predicted
  durations, E3.

Every function adds to one ``Collected`` (what the scoring, experiments.acoustic_eval_scoring, reads), in
the order the stage has always produced them, so scores.csv keeps its row order.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eval.contract import KIND_MODEL, qualified_metric
from experiments.acoustic_eval_config import E3, AcousticEvaluateConfig, ScoringSettings
from experiments.eval_family import EvalRun, budgets, checkpoint_path, largest_budget
from experiments.testset import EvaluateError
from priorgrad.core import registry

log = logging.getLogger("experiments.acoustic_evaluate")

FAMILY = "acoustic"
MEAN_REFERENCE_SYSTEM = "priorgrad-am"  # mu_ph is PriorGrad-AM's prior mean: the reference rows sit under it

Values = dict[str, dict[str, float | None]]  # utt -> qualified metric -> value
Job = tuple[str, int, int, str]              # (trial, budget, T_infer, condition)
FloorKey = tuple[str, int]                   # (system, draw)


@dataclass
class AcousticSettings:
    """The stage's validated settings (experiments.acoustic_evaluate.configure)."""
    cfg: AcousticEvaluateConfig
    scoring: ScoringSettings
    infer: Any                    # acoustic.infer (schedule, seed, batch size, vocoder)


@dataclass
class AcousticSources:
    """The stage's command-line inputs besides params, sweep and out."""
    features: Path                # acoustic features (priorgrad acoustic preprocess --out)
    stats: Path                   # phoneme statistics
    recordings: Path              # the vocoder's features dir the acoustic features came from
    vocoder_checkpoint: Path | None = None


@dataclass
class Context:
    """What every step reads: the run, its settings and sources, the test set, the audio preset, the vocoder."""
    run: EvalRun
    settings: AcousticSettings
    sources: AcousticSources
    test: Any                     # experiments.acoustic_synthesis.AcousticTestSet
    preset: Any                   # priorgrad.core.audio preset (hop length, sample rate)
    vocoder: Any                  # experiments.acoustic_synthesis.CachedVocoder, or None (no audio scored)

    @property
    def cfg(self) -> AcousticEvaluateConfig:
        return self.settings.cfg

    def durations(self, durs: dict[str, np.ndarray]) -> Values:
        """E3's duration metrics of predicted durations, qualified."""
        from experiments.acoustic_synthesis import duration_scores

        return {u: {qualified_metric(E3, m): v for m, v in ms.items()}
                for u, ms in duration_scores(durs, self.test, self.preset.hop_length, self.preset.sample_rate).items()}


@dataclass
class Collected:
    """Everything synthesised and scored so far; the steps fill it in the stage's order."""
    jobs: dict[Job, dict[str, Any]] = field(default_factory=dict)             # job -> row keys
    mel_vals: dict[Job, Values] = field(default_factory=dict)                 # job -> mel / duration scores
    audio_jobs: list[tuple[Job, str, Path]] = field(default_factory=list)     # (job, condition, wav dir)
    e3_audio: list[tuple[Job, Path]] = field(default_factory=list)            # (job, wav dir)
    to_render: list[tuple[str, dict[str, np.ndarray], Path]] = field(default_factory=list)  # one process pool
    rtf: dict[tuple, list[float]] = field(default_factory=lambda: defaultdict(list))
    devices: set[str] = field(default_factory=set)
    systems: list[str] = field(default_factory=list)
    n_floor: int = 0
    ref_system: str = ""
    floor_vals: dict[FloorKey, Values] = field(default_factory=dict)
    floor_audio: list[tuple[FloorKey, str, Path]] = field(default_factory=list)
    e3_floor_audio: list[tuple[FloorKey, Path]] = field(default_factory=list)
    ref_durs: dict[str, np.ndarray] = field(default_factory=dict)             # E3's mean reference durations
    ref_vals: Values = field(default_factory=dict)                            # the mean reference's scores
    rec_vals: Values = field(default_factory=dict)                            # the recordings' (E3 metrics)
    per_job: dict[Job, Values] = field(default_factory=dict)                  # job -> every score
    voc_wall: float = 0.0
    voc_audio: float = 0.0


def _row_keys(trial: dict[str, Any], system: str, budget: str, t: int) -> dict[str, Any]:
    return {"system": system, "prior": trial["prior"], "size": trial["size"], "n_params": trial["n_params"],
            "seed": trial["seed"], "budget": int(budget), "t_infer": t, "kind": KIND_MODEL}


def synthesise_conditions(ctx: Context, acc: Collected) -> None:
    """The mel conditions: every run x budget x T_infer x condition, mel-scored; audio conditions queued."""
    from experiments.acoustic_synthesis import load_mels, mel_scores, synthesize_mels

    cfg, run, test = ctx.cfg, ctx.run, ctx.test
    n_jobs = sum(len(t["checkpoints"]) for t in run.trials) * len(cfg.t_infer) * len(cfg.conditions)
    i = 0
    for trial in run.trials:
        system = registry.system_of(trial["prior"], FAMILY)
        for budget, ckpt in budgets(trial):
            path = checkpoint_path(run.root, ckpt)
            for t in cfg.t_infer:
                for c in cfg.conditions:
                    i += 1
                    log.info("[%d/%d] %s at budget %s, T=%d, %s: synthesis", i, n_jobs, trial["trial"], budget, t, c)
                    name = f"{trial['trial']}-b{budget}"
                    mel_dir, summary = synthesize_mels(name, path, t, c, test, ctx.sources.features,
                                                       ctx.settings.infer, run.work)
                    _check_prior(path, summary, trial, ctx.run)
                    job = (trial["trial"], int(budget), t, c)
                    acc.jobs[job] = _row_keys(trial, system, budget, t)
                    mels = load_mels(mel_dir, test, f"{name} T={t} {c}")
                    acc.mel_vals[job] = {u: {qualified_metric(c, m): v for m, v in ms.items()}
                                         for u, ms in mel_scores(mels, test, cfg.mel_metrics).items()}
                    acc.rtf[(system, trial["size"], trial["n_params"], t, str(summary["device"]))].append(
                        float(summary["mel_rtf"]))
                    acc.devices.add(str(summary["device"]))
                    if ctx.vocoder is not None and c in cfg.audio_conditions:
                        label = f"{name}-T{t}-{c}"
                        acc.to_render.append((label, mels, run.work / "sets" / label))
                        acc.audio_jobs.append((job, c, run.work / "sets" / label))


def _check_prior(path: Path, summary: dict[str, Any], trial: dict[str, Any], run: EvalRun) -> None:
    if summary["prior"] != trial["prior"]:
        raise EvaluateError(f"{path}: checkpoint of prior {summary['prior']!r}, but {run.trials_path} says trial "
                            f"{trial['trial']} is {trial['prior']!r}")


def synthesise_e3(ctx: Context, acc: Collected) -> None:
    """E3 (everything predicted) at each run's largest budget and e3_t_infer steps: whole utterances, duration
    error here, vocoded like E1 and scored (length-free metrics) with the floors."""
    from experiments.acoustic_synthesis import load_e3, synthesize_mels

    e3_t, run, test = ctx.cfg.e3_t_infer, ctx.run, ctx.test
    for trial in (run.trials if e3_t else []):
        system = registry.system_of(trial["prior"], FAMILY)
        budget, ckpt = largest_budget(trial)
        path = checkpoint_path(run.root, ckpt)
        name = f"{trial['trial']}-b{budget}"
        log.info("%s at budget %s, T=%d, E3: synthesis (predicted durations)", trial["trial"], budget, e3_t)
        mel_dir, summary = synthesize_mels(name, path, e3_t, E3, test, ctx.sources.features, ctx.settings.infer,
                                           run.work)
        job = (trial["trial"], int(budget), e3_t, E3)
        acc.jobs[job] = _row_keys(trial, system, budget, e3_t)
        mels, durs = load_e3(mel_dir, test, f"{name} T={e3_t} E3")
        acc.mel_vals[job] = ctx.durations(durs)
        acc.devices.add(str(summary["device"]))
        if ctx.vocoder is not None:
            label = f"{name}-T{e3_t}-{E3}"
            acc.to_render.append((label, {u: test.crop_e3(u, mels[u], durs[u]) for u in test.utts},
                                  run.work / "sets" / label))
            acc.e3_audio.append((job, run.work / "sets" / label))


def synthesise_floors(ctx: Context, acc: Collected) -> None:
    """Each system's floor: its own prior draws (mu + s n, learned mean + n, n), draw k = the seed index k (B2's
    mean from the k-th seed's run at its largest budget); draw 0 is exactly the x_S its sampler starts from."""
    trials = ctx.run.trials
    acc.n_floor = max(len({t["seed"] for t in trials if t["prior"] == p}) for p in {t["prior"] for t in trials})
    acc.systems = sorted({registry.system_of(t["prior"], FAMILY) for t in trials})
    acc.ref_system = MEAN_REFERENCE_SYSTEM if MEAN_REFERENCE_SYSTEM in acc.systems else acc.systems[0]
    for system in acc.systems:
        runs = sorted((t for t in trials if registry.system_of(t["prior"], FAMILY) == system), key=lambda t: t["seed"])
        for draw in range(acc.n_floor):
            acc.floor_vals[(system, draw)] = _floor_draw(ctx, acc, system, draw, runs[draw % len(runs)])


def _floor_draw(ctx: Context, acc: Collected, system: str, draw: int, trial: dict[str, Any]) -> Values:
    """One floor draw under every mel condition and, laid out by the system's own predicted durations, E3."""
    from experiments.acoustic_synthesis import load_e3, load_mels, mel_scores, prior_draw_mels

    cfg, test, work, infer, features = ctx.cfg, ctx.test, ctx.run.work, ctx.settings.infer, ctx.sources.features
    budget, ck = largest_budget(trial)
    path = checkpoint_path(ctx.run.root, ck)
    name = f"{trial['trial']}-b{budget}"
    vals: Values = defaultdict(dict)
    for c in cfg.conditions:
        mels = load_mels(prior_draw_mels(name, path, draw, c, test, features, infer, work), test,
                         f"{system} prior draw {draw} {c}")
        for u, ms in mel_scores(mels, test, cfg.mel_metrics).items():
            vals[u].update({qualified_metric(c, m): v for m, v in ms.items()})
        if ctx.vocoder is not None and c in cfg.audio_conditions:
            label = f"floor-{system}-d{draw}-{c}"
            acc.to_render.append((label, mels, work / "sets" / label))
            acc.floor_audio.append(((system, draw), c, work / "sets" / label))
    if cfg.e3_t_infer:
        mels, durs = load_e3(prior_draw_mels(name, path, draw, E3, test, features, infer, work), test,
                             f"{system} prior draw {draw} E3")
        for u, ms in ctx.durations(durs).items():
            vals[u].update(ms)
        if draw == 0 and system == acc.ref_system:
            acc.ref_durs = durs  # the mean reference of E3 takes these durations
        if ctx.vocoder is not None and cfg.e3_floor_metrics:
            label = f"floor-{system}-d{draw}-{E3}"
            acc.to_render.append((label, {u: test.crop_e3(u, mels[u], durs[u]) for u in test.utts},
                                  work / "sets" / label))
            acc.e3_floor_audio.append(((system, draw), work / "sets" / label))
    return vals


def mean_reference(ctx: Context, acc: Collected) -> None:
    """The mean (regression) reference: mu alone, scored the same way (mel here, vocoded later); never a floor.
    E3's: mu alone by PriorGrad-AM's predicted durations (those of its floor draw 0: its lowest seed's run)."""
    from experiments.acoustic_synthesis import mel_scores

    cfg = ctx.cfg
    acc.ref_vals = {u: {qualified_metric(c, m): v for c in cfg.conditions for m, v in ms.items()}
                    for u, ms in mel_scores(ctx.test.mu, ctx.test, cfg.mel_metrics).items()}
    if cfg.e3_t_infer:
        for u, ms in ctx.durations(acc.ref_durs).items():
            acc.ref_vals[u].update(ms)
