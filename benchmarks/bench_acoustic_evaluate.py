"""Time of the acoustic evaluate stage, measured on a small real run and extrapolated to a larger design.

A synthetic corpus (eSpeak) -> vocoder features -> acoustic features -> phoneme statistics; one tiny
acoustic model per prior trained 2 and 4 steps (the budget ladder); then ``run_acoustic_evaluate`` with
params.yaml's acoustic_evaluate section (the contract's proposed default: T {2, 6, 12}, E1 + E2, 8 test
utterances, 129-frame crops, audio on E1 with pesq_wb, stoi, mrstft), tracking off, cold caches. The
phases are timed separately: each mel synthesis call (per T), each Griffin-Lim render, the eval run.

A few training steps leave the sampler diverged (ln-mels of +-700), so every model render is a recorded
failure and costs nothing; the per-render cost is therefore taken from the sane renders (the ground
truth and the floor), and the per-pair scoring cost from a cold eval run over sane sets (the floor and
vocoder(GT) against both references). The extrapolation to the design (``--runs``, ``--budgets``) is
    calls x synthesis + renders x Griffin-Lim / workers + scoring start + pairs x per-pair scoring
    + aggregate (measured at the design's shape) [+ runs x one run's MLflow logging]

    python benchmarks/bench_acoustic_evaluate.py [--runs 9] [--out benchmarks/results/acoustic_evaluate_cpu.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

TINY = ["acoustic.model.size=tiny", "acoustic.train.batch_size=4", "acoustic.train.window_frames=32",
        "acoustic.train.threads=1", "acoustic.train.valid_utterances=1", "acoustic.train.valid_steps=2",
        "acoustic.train.warmup_steps=20", "acoustic.train.device=cpu", "acoustic.train.validate_every=100",
        "acoustic.train.checkpoint_every=100"]
SYSTEM = {"standard": "b1-normal", "trainable": "b2-trainable", "phoneme": "priorgrad-am"}


def build(root: Path, n_test: int) -> dict:
    import yaml

    from priorgrad.acoustic.data_config import load_data_config
    from priorgrad.acoustic.model_config import load_acoustic_config
    from priorgrad.acoustic.phoneme_stats import prior_stats_from_features
    from priorgrad.acoustic.preprocess import preprocess_acoustic
    from priorgrad.acoustic.train import train_acoustic
    from priorgrad.core.config import load_params
    from priorgrad.corpus.synth import make_corpus
    from priorgrad.vocoder.preprocess import preprocess
    from priorgrad.core.schema import read_params

    raw = read_params(ROOT / "params.yaml")
    raw["tracking"]["enabled"] = False
    raw["acoustic"]["infer"]["device"] = "cpu"
    shutil.copytree(ROOT / "profiles", root / "profiles", dirs_exist_ok=True)
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump({**raw, "profile": "default"}, sort_keys=False))
    p = load_params(params, {"corpus.n_valid": 2, "corpus.n_test": n_test})
    make_corpus(root / "corpus", n_utterances=n_test + 10, seed=3, progress=False)
    preprocess(root / "corpus", root / "data" / "features", p, progress=False)
    dcfg = load_data_config(params, {"acoustic.features.durations": "espeak"})
    preprocess_acoustic(root / "corpus", root / "data" / "features", root / "data" / "acoustic", p, dcfg,
                        progress=False)
    stats = root / "data" / "phoneme_stats.npz"
    prior_stats_from_features(root / "data" / "acoustic", stats, dcfg.prior.std_min, dcfg.prior.std_max,
                              dcfg.prior.min_frames)
    trials = []
    for prior, system in SYSTEM.items():
        run_dir = root / "runs" / "sweep" / system
        ckpts = {}
        for b in (2, 4):
            cfg = load_acoustic_config(str(params), TINY + [f"acoustic.model.prior={prior}",
                                                            f"acoustic.train.max_steps={b}"])
            res = train_acoustic(cfg, root / "data" / "acoustic", run_dir, prior=stats, progress=False)
            shutil.copyfile(res["checkpoint"], run_dir / f"b{b}.pt")
            ckpts[str(b)] = str(run_dir / f"b{b}.pt")
        trials.append({"trial": f"{system}-tiny-s0", "prior": prior, "system": system, "size": "tiny",
                       "n_params": res["n_params"], "seed": 0, "budget": 4, "checkpoints": ckpts,
                       "mlflow_run_id": None, "mlflow_experiment": None, "family": "acoustic"})
    (root / "runs" / "sweep" / "trials.json").write_text(json.dumps(trials))
    return {"params": params, "features": root / "data" / "acoustic", "stats": stats,
            "recordings": root / "data" / "features", "sweep": root / "runs" / "sweep"}


def time_aggregate(n_seeds: int, n_utts: int, names: list[str], t_infer: list[int], budgets: list[int]) -> float:
    """aggregate() on a scores table of the design's shape (random values: the cost does not depend on them)."""
    import numpy as np
    import pandas as pd

    from eval.aggregate import aggregate
    from experiments.acoustic_eval_config import higher_is_better
    from eval.contract import SCORE_COLUMNS
    from reports.config import load_report_config

    rng = np.random.default_rng(0)
    rows = []
    for prior, system in SYSTEM.items():
        for seed in range(n_seeds):
            for b in budgets:
                for t in t_infer:
                    for u in range(n_utts):
                        rows += [(system, prior, "tiny", 1, seed, b, t, f"u{u}", m, rng.normal(), "model")
                                 for m in names]
            rows += [(system, prior, "", 0, seed, 0, 0, f"u{u}", m, 1.0, "prior_noise")
                     for u in range(n_utts) for m in names]
    df = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    rule = load_report_config(ROOT / "params.yaml").rule()
    t0 = time.perf_counter()
    aggregate(df, higher_is_better(names), rule, family="acoustic")
    return time.perf_counter() - t0


def time_mlflow(root: Path, names: list[str], t_infer: list[int], n_budgets: int, scoring) -> float:
    """One run's log_run_scores (every budget: metrics, table, records, figure) into a fresh sqlite store."""
    import numpy as np
    from mlflow.tracking import MlflowClient

    from functools import partial

    from experiments.acoustic_eval_scoring import run_scores
    from experiments.acoustic_evaluate import ACOUSTIC
    from experiments.eval_tracking import log_run_scores

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run_id = client.create_run(client.create_experiment("bench")).info.run_id
    rng = np.random.default_rng(0)
    per = {("t", b, t): {f"u{u}": {m: float(rng.normal()) for m in names} for u in range(8)}
           for b in range(1, n_budgets + 1) for t in t_infer}
    (root / "comparisons.json").write_text("[]")
    trial = {"trial": "t", "prior": "phoneme", "size": "tiny", "mlflow_run_id": run_id}
    scores = partial(run_scores, per, names, scoring)  # the summaries are computed inside, as in the stage
    log_run_scores(uri, trial, ACOUSTIC, scores, root / "comparisons.json", [], 5.0)  # warm (imports)
    t0 = time.perf_counter()
    log_run_scores(uri, trial, ACOUSTIC, scores, root / "comparisons.json", [], 5.0)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9, help="training runs of the design (priors x sizes x seeds)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budgets", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "acoustic_evaluate_cpu.json")
    args = ap.parse_args()

    import experiments.acoustic_synthesis as asyn
    from experiments import acoustic_evaluate as ae
    from experiments.acoustic_eval_config import acoustic_evaluate_config, metric_names, scoring_settings
    from experiments.scoring import score_sets
    from priorgrad.core.config import load_params
    from priorgrad.core.logs import setup_logging

    setup_logging()
    load_before = os.getloadavg()
    p0 = load_params(ROOT / "params.yaml")
    cfg = acoustic_evaluate_config(p0)
    with tempfile.TemporaryDirectory(prefix="bench-aceval-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        proj = build(root, cfg.n_utterances)
        build_s = time.perf_counter() - t0

        synth_times: dict[int, list[float]] = defaultdict(list)
        real_synth = asyn.synthesize_mels

        def timed_synth(name, ckpt, t, *a, **k):
            s0 = time.perf_counter()
            out = real_synth(name, ckpt, t, *a, **k)
            synth_times[t].append(time.perf_counter() - s0)
            return out

        asyn.synthesize_mels = timed_synth
        out = root / "eval"
        s0 = time.perf_counter()
        ae.run_acoustic_evaluate(proj["params"], proj["features"], proj["stats"], proj["sweep"], out,
                                 proj["recordings"])
        stage_s = time.perf_counter() - s0
        asyn.synthesize_mels = real_synth

        metas = [json.loads(m.read_text()) for m in (out / "work" / "voc").glob("*.json")]
        sane = sorted(m["seconds"] for m in metas if not m.get("error"))
        failed = [m for m in metas if m.get("error")]
        audio_s = statistics.median(m["audio_s"] for m in metas if not m.get("error"))
        first_render = max(sane)  # the first call pays librosa's warm-up
        render_s = statistics.median(sane)

        # a cold eval run over sane sets: the floor and vocoder(GT), against both references
        params = load_params(proj["params"])
        scoring = scoring_settings(params, cfg)
        sets_dir = out / "work" / "sets"
        utts = sorted(p.stem for p in (sets_dir / "floor").glob("*.wav"))
        sane_sets = [("floor", sets_dir / "floor", sets_dir / "reference-vocoded"),
                     ("floor@rec", sets_dir / "floor", out / "work" / "inputs" / "recording"),
                     ("gt@rec", sets_dir / "reference-vocoded", out / "work" / "inputs" / "recording")]
        # two cold eval runs (1 and 3 sets): the difference is the per-pair cost, the rest the pool's start
        cold = {}
        for k in (1, 3):
            s1 = time.perf_counter()
            score_sets(sane_sets[:k], utts, scoring, root / f"score-cold-{k}")
            cold[k] = time.perf_counter() - s1
        per_pair = max(cold[3] - cold[1], 0.0) / (2 * len(utts))
        score_fixed = max(cold[1] - per_pair * len(utts), 0.0)

        # Griffin-Lim alone on the cropped ground-truth mels, warm: wall and this process's CPU seconds

        from priorgrad.acoustic.vocode import griffin_lim

        from priorgrad.acoustic.dataset import FeatureSet

        gts = [u.mel[:, :cfg.max_frames] for u in FeatureSet(proj["features"]).utterances("test")[:cfg.n_utterances]]
        from threadpoolctl import threadpool_limits  # benchmark only (installed with scikit-learn)

        griffin_lim(gts[0], 60, 0)
        with threadpool_limits(1):  # as the stage's workers run it (one BLAS thread)
            w0, c0 = time.perf_counter(), time.process_time()
            for i, m in enumerate(gts):
                griffin_lim(m, 60, i)
            gl_wall = (time.perf_counter() - w0) / len(gts)
            gl_cpu = (time.process_time() - c0) / len(gts)

        names = metric_names(cfg)
        mlflow_s = time_mlflow(root, names, cfg.t_infer, args.budgets, scoring)
        agg_s = time_aggregate(args.seeds, cfg.n_utterances, names, cfg.t_infer, list(range(1, args.budgets + 1)))
    load_after = os.getloadavg()

    n_cond = len(cfg.conditions)
    per_t = {t: statistics.median(v) for t, v in synth_times.items()}
    calls = {t: args.runs * args.budgets * n_cond for t in cfg.t_infer}
    synth_total = sum(per_t[t] * calls[t] for t in cfg.t_infer)
    n_audio_sets = args.runs * args.budgets * len(cfg.t_infer) * len(cfg.audio_conditions)
    renders = n_audio_sets * cfg.n_utterances + 2 * cfg.n_utterances  # + vocoder(GT), vocoder(mu)
    render_total = first_render + renders * render_s / scoring.workers
    pairs = (n_audio_sets + 1) * cfg.n_utterances * 2  # each set and the floor vs both references
    score_total = score_fixed + per_pair * pairs
    # Griffin-Lim is single-threaded and renders in evaluate.workers processes: on idle cores the renders
    # divide over the workers (the first render's warm-up is paid once per worker, in parallel)
    render_total_cpu = first_render + renders * gl_cpu / scoring.workers
    result = {
        "benchmark": "acoustic evaluate stage: a timed small run, extrapolated to the design",
        "machine": {"platform": platform.platform(), "cpus_usable": len(os.sched_getaffinity(0)),
                    "python": platform.python_version(), "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
                    "loadavg_1_5_15_after": [round(x, 2) for x in load_after]},
        "configuration": {"acoustic_evaluate": cfg.__dict__, "workers": scoring.workers, "n_boot": scoring.n_boot,
                          "measured_runs": 3, "measured_budgets": 2, "size": "tiny",
                          "vocoder": "griffin_lim, 60 iterations", "tracking": "off"},
        "measured": {
            "build_s (corpus, features, stats, 6 tiny trainings; not part of the stage)": round(build_s, 1),
            "stage_wall_s (3 runs x 2 budgets; model renders all failed fast: diverged tiny models)": round(stage_s, 1),
            "synthesis_s_per_call_median_by_T (8 whole utterances, one condition)": {str(t): round(v, 3) for t, v in per_t.items()},
            "griffin_lim_s_per_render_median": round(render_s, 3),
            "griffin_lim_first_render_s": round(first_render, 3),
            "rendered_audio_s_median": round(audio_s, 3),
            "griffin_lim_rtf": round(render_s / audio_s, 3),
            "failed_renders": len(failed),
            "griffin_lim_warm_s_per_render (wall, under the load, 1 BLAS thread)": round(gl_wall, 3),
            "griffin_lim_warm_cpu_s_per_render (1 BLAS thread)": round(gl_cpu, 3),
            "score_cold_s (1 set, 3 sets of 8 pairs)": {str(k): round(v, 1) for k, v in cold.items()},
            "score_s_per_pair (3 metrics, 2 workers)": round(per_pair, 3),
            "score_fixed_s (pool start, imports)": round(score_fixed, 1),
            "aggregate_s_at_design_shape": round(agg_s, 1),
            "mlflow_s_per_run (all budgets, warm)": round(mlflow_s, 1),
        },
        "extrapolated_to_design": {
            "design": f"{args.runs} runs x {args.budgets} budgets x T {cfg.t_infer} x {cfg.conditions}, "
                      f"{cfg.n_utterances} utterances, audio on {cfg.audio_conditions}",
            "synthesis_calls": sum(calls.values()), "synthesis_s": round(synth_total, 1),
            "griffin_lim_renders": renders, "griffin_lim_s": round(render_total, 1),
            "scored_pairs": pairs, "scoring_s": round(score_total, 1),
            "aggregate_s": round(agg_s, 1),
            "griffin_lim_s_if_idle (CPU seconds per render)": round(render_total_cpu, 1),
            "mlflow_s": round(mlflow_s * args.runs, 1),
            "total_s_without_mlflow": round(synth_total + render_total + score_total + agg_s, 1),
            "total_s_without_mlflow_if_idle_gl": round(synth_total + render_total_cpu + score_total + agg_s, 1),
            "note": "sane model mels assumed (every render succeeds); the totals leave MLflow out (mlflow_s: "
                    "runs x one run's logging); times on a shared 2-core machine, see the load averages",
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
