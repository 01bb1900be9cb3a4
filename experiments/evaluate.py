"""The evaluate stage: every trial's final checkpoint x every T_infer on the test split, scored.

    python -m experiments.evaluate --params params.yaml --features data/features \
        --sweep runs/sweep --out runs/eval

Writes (docs/interfaces.md) scores.csv, summary.json, comparisons.json, rtf.csv, audio examples,
provenance.json, and metrics.json (the headline numbers, a DVC metrics file); logs each trial's
test scores to its MLflow run. References are the preprocessed (peak-normalised, hop-trimmed) test
audio, written once as wavs. Work (synthesised audio, score cache) is kept under ``OUT/work`` keyed
by checkpoint and settings, so a re-run only does what changed.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import platform
import shutil
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from experiments.spec import SYSTEM_OF_PRIOR, EvaluateConfig, evaluate_config, project_root, tracking_config
from experiments.trackers import check_reachable, default_tracking_uri, quiet_http
from priorgrad.config import Params, load_params, params_hash
from priorgrad.fileio import write_json_atomic, write_text_atomic

log = logging.getLogger("experiments.evaluate")

SCORE_COLUMNS = ["system", "prior", "size", "n_params", "seed", "budget", "t_infer", "utt", "metric", "value", "kind"]
RTF_COLUMNS = ["system", "size", "n_params", "t_infer", "rtf", "device"]


class EvaluateError(RuntimeError):
    """Missing sweep outputs or a trial that cannot be evaluated; the message names the file."""


def load_trials(sweep_dir: Path) -> list[dict[str, Any]]:
    path = sweep_dir / "trials.json"
    if not path.exists():
        raise EvaluateError(f"{path}: sweep trial list not found (run the sweep stage first)")
    trials = json.loads(path.read_text())
    if not isinstance(trials, list) or not trials:
        raise EvaluateError(f"{path}: expected a non-empty list of trials")
    for t in trials:
        missing = [k for k in ("trial", "prior", "size", "n_params", "seed", "budget", "checkpoint") if k not in t]
        if missing:
            raise EvaluateError(f"{path}: trial {t.get('trial')!r} lacks {missing}")
        if t["prior"] not in SYSTEM_OF_PRIOR:
            raise EvaluateError(f"{path}: trial {t['trial']}: unknown prior {t['prior']!r}")
    return trials


def prepare_test_set(params: Params, cfg: EvaluateConfig, features: Path, work: Path) -> tuple[Path, Path, list[str]]:
    """Cropped test mels (synthesis inputs) and matching reference wavs; returns (mel_dir, ref_dir, utts)."""
    from priorgrad.audio import write_wav
    from priorgrad.data import load_item_arrays, read_manifest
    from priorgrad.fileio import save_npy_atomic

    items = read_manifest(features, split="test")
    if not items:
        raise EvaluateError(f"{features / 'manifest.jsonl'}: no test utterances")
    if cfg.n_utterances:
        items = items[:cfg.n_utterances]
    mel_dir, ref_dir = work / "inputs" / "mel", work / "inputs" / "reference"
    # Leftovers of an earlier, larger selection must not be synthesised or scored.
    for d in (mel_dir, ref_dir):
        if d.exists():
            shutil.rmtree(d)
    hop = params.hop_length
    for it in items:
        audio, mel = load_item_arrays(it, hop)
        frames = mel.shape[1] if cfg.max_frames <= 0 else min(cfg.max_frames, mel.shape[1])
        save_npy_atomic(mel_dir / f"{it.utt}.npy", np.ascontiguousarray(mel[:, :frames], dtype=np.float32))
        write_wav(ref_dir / f"{it.utt}.wav", np.asarray(audio[:frames * hop], dtype=np.float32),
                  params.audio.sample_rate)
    return mel_dir, ref_dir, [it.utt for it in items]


def _file_digest(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def synthesize_trial(trial: dict[str, Any], t_infer: int, mel_dir: Path, inputs_key: str, params: Params,
                     work: Path, root: Path) -> tuple[Path, dict[str, Any]]:
    """Synthesises the test inputs once per (checkpoint content, T, inputs); returns (gen_dir, timing)."""
    from priorgrad.infer import synthesize

    ckpt = Path(trial["checkpoint"])
    ckpt = ckpt if ckpt.is_absolute() else root / ckpt
    if not ckpt.exists():
        raise EvaluateError(f"{ckpt}: checkpoint of trial {trial['trial']} not found")
    key = params_hash({"ckpt": _file_digest(ckpt), "t": t_infer, "inputs": inputs_key,
                       "seed": params.infer.seed})
    gen_dir = work / "gen" / f"{trial['trial']}-T{t_infer}-{key}"
    done = gen_dir / "synthesis.json"
    if done.exists():
        return gen_dir, json.loads(done.read_text())
    if gen_dir.exists():
        shutil.rmtree(gen_dir)  # a killed earlier attempt: redo it whole, so the RTF covers every file
    timing = synthesize(ckpt, sorted(str(p) for p in mel_dir.glob("*.npy")), gen_dir, steps=t_infer,
                        batch_size=params.infer.batch_size, seed=params.infer.seed, device=params.infer.device)
    write_json_atomic(done, timing)
    return gen_dir, timing


SEP = "__"  # <generation dir>__<utt> names one scored pair in the combined directories


def score_all(gens: list[tuple[dict[str, Any], int, Path]], ref_dir: Path, utts: list[str], cfg: EvaluateConfig,
              work: Path) -> list[dict[str, Any]]:
    """Scores every (system, T) output in ONE eval run, so its worker pool starts once, not per system.

    The pairs are presented as two directories of symlinks, <generation dir>__<utt>.wav; eval's score
    cache is keyed by file content, so a re-run rescoring unchanged audio is free.
    """
    from eval.runner import score_dirs

    combined = work / "combined"
    if combined.exists():
        shutil.rmtree(combined)
    (combined / "ref").mkdir(parents=True)
    (combined / "gen").mkdir(parents=True)
    for _, _, gen_dir in gens:
        for u in utts:
            name = f"{gen_dir.name}{SEP}{u}.wav"
            os.symlink((ref_dir / f"{u}.wav").resolve(), combined / "ref" / name)
            if (gen_dir / f"{u}.wav").exists():  # a missing file is scored as a recorded failure
                os.symlink((gen_dir / f"{u}.wav").resolve(), combined / "gen" / name)
    records, _ = score_dirs(combined / "ref", combined / "gen", cfg.metrics, work / "scores",
                            workers=cfg.workers, cache_path=work / "score_cache.sqlite",
                            seed=cfg.bootstrap_seed, n_boot=cfg.n_boot)
    return records


def aggregate(rows: list[dict[str, Any]], higher: dict[str, bool], rule) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """summary.json and comparisons.json rows: eval.aggregate (two-level bootstrap over seeds, then
    utterances; the one judging rule), the same code the report runs."""
    import pandas as pd

    from eval.aggregate import SCORE_COLUMNS as COLUMNS, aggregate as aggregate_scores

    df = pd.DataFrame([{"kind": "model", **r} for r in rows], columns=COLUMNS)
    return aggregate_scores(df, higher, rule)


def headline(comparisons: list[dict[str, Any]], summary: list[dict[str, Any]]) -> dict[str, Any]:
    """metrics.json for `dvc metrics show` (eval.aggregate.headline)."""
    from eval.aggregate import headline as headline_rows

    return headline_rows(summary, comparisons)


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r[k]) for k in columns})
    return buf.getvalue()


def copy_examples(out: Path, ref_dir: Path, utts: list[str], n: int,
                  gens: list[tuple[dict[str, Any], int, Path]]) -> None:
    audio = out / "audio"
    if audio.exists():
        shutil.rmtree(audio)
    keep = utts[:n]
    for u in keep:
        (audio / "reference").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ref_dir / f"{u}.wav", audio / "reference" / f"{u}.wav")
    first_seed: dict[tuple, int] = {}
    for trial, t, _ in gens:
        k = (trial["prior"], trial["size"], trial["budget"], t)
        first_seed[k] = min(first_seed.get(k, trial["seed"]), trial["seed"])
    for trial, t, gen_dir in gens:
        if trial["seed"] != first_seed[(trial["prior"], trial["size"], trial["budget"], t)]:
            continue  # one example set per system and setting: the lowest seed's
        dest = audio / f"{SYSTEM_OF_PRIOR[trial['prior']]}-{trial['size']}-{trial['budget']}-T{t}"
        dest.mkdir(parents=True, exist_ok=True)
        for u in keep:
            src = gen_dir / f"{u}.wav"
            if src.exists():
                shutil.copyfile(src, dest / f"{u}.wav")


def provenance(params: Params, root: Path, features: Path, metrics: list[str], devices: set[str]) -> dict[str, Any]:
    from eval.registry import METRICS

    from experiments.trial import git_commit

    import torch

    pre = features / "preprocess.json"
    corpus = {"source": params.corpus.source, "n_utterances": params.corpus.n_utterances, "seed": params.corpus.seed,
              "features": json.loads(pre.read_text()) if pre.exists() else None}
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
               "devices": sorted(devices)}
    if torch.cuda.is_available():
        machine["gpu"] = torch.cuda.get_device_name(0)
    return {"git_commit": git_commit(root), "params_hash": params_hash(params), "corpus": corpus,
            "machine": machine, "metric_versions": {m: METRICS[m].info() for m in metrics}}


def log_to_mlflow(uri: str, trial: dict[str, Any], per_t: dict[int, tuple[list, dict]],
                  comparisons_path: Path) -> None:
    """Each trial's test summary per T_infer into its own MLflow run (metrics test/T<t>/<metric>)."""
    run_id = trial.get("mlflow_run_id")
    if not run_id:
        return
    import mlflow

    from eval.mlflow_log import log_summary

    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=run_id):
        for t, (records, summ) in sorted(per_t.items()):
            log_summary(summ, records, prefix=f"test/T{t}/")
        mlflow.log_artifact(str(comparisons_path), artifact_path="eval")


def run_evaluate(params_path: Path, features: Path, sweep_dir: Path, out: Path) -> dict[str, Any]:
    from eval.registry import METRICS, resolve
    from eval.runner import summarize_records

    params = load_params(params_path)
    cfg = evaluate_config(params)
    tcfg = tracking_config(params)
    root = project_root(params_path.resolve().parent)
    trials = load_trials(sweep_dir)
    work = out / "work"
    mel_dir, ref_dir, utts = prepare_test_set(params, cfg, features, work)
    inputs_key = params_hash({"utts": utts, "max_frames": cfg.max_frames,
                              "features": _file_digest(features / "manifest.jsonl")})
    higher = {m: METRICS[m].higher_is_better for m in cfg.metrics}
    rows: list[dict[str, Any]] = []
    rtf: dict[tuple, list[float]] = defaultdict(list)
    devices: set[str] = set()
    gens: list[tuple[dict[str, Any], int, Path]] = []
    per_trial: dict[str, dict[int, tuple[list, dict]]] = defaultdict(dict)
    n_jobs = len(trials) * len(cfg.t_infer)
    for trial in trials:
        system = SYSTEM_OF_PRIOR[trial["prior"]]
        for t in cfg.t_infer:
            log.info("[%d/%d] %s at T=%d: synthesis", len(gens) + 1, n_jobs, trial["trial"], t)
            gen_dir, timing = synthesize_trial(trial, t, mel_dir, inputs_key, params, work, root)
            gens.append((trial, t, gen_dir))
            rtf[(system, trial["size"], trial["n_params"], t, timing["device"])].append(float(timing["rtf"]))
            devices.add(str(timing["device"]))
    records = score_all(gens, ref_dir, utts, cfg, work)
    for trial, t, gen_dir in gens:
        system = SYSTEM_OF_PRIOR[trial["prior"]]
        mine = [{**r, "utt": r["utt"].split(SEP, 1)[1]} for r in records if r["utt"].split(SEP, 1)[0] == gen_dir.name]
        per_trial[trial["trial"]][t] = (mine, summarize_records(mine, resolve(cfg.metrics), seed=cfg.bootstrap_seed,
                                                                n_boot=cfg.n_boot))
        for rec in mine:
            for m in cfg.metrics:
                rows.append({"system": system, "prior": trial["prior"], "size": trial["size"],
                             "n_params": trial["n_params"], "seed": trial["seed"], "budget": trial["budget"],
                             "t_infer": t, "utt": rec["utt"], "metric": m, "value": rec.get(m), "kind": "model"})
    from reports.config import load_report_config

    summary, comparisons = aggregate(rows, higher, load_report_config(params_path).rule())
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "scores.csv", _csv(rows, SCORE_COLUMNS))
    write_json_atomic(out / "summary.json", summary)
    write_json_atomic(out / "comparisons.json", comparisons)
    rtf_rows = [{"system": s, "size": z, "n_params": n, "t_infer": t, "rtf": float(np.mean(v)), "device": d}
                for (s, z, n, t, d), v in sorted(rtf.items())]
    write_text_atomic(out / "rtf.csv", _csv(rtf_rows, RTF_COLUMNS))
    copy_examples(out, ref_dir, utts, cfg.n_audio_examples, gens)
    write_json_atomic(out / "provenance.json", provenance(params, root, features, cfg.metrics, devices))
    write_json_atomic(out / "metrics.json", headline(comparisons, summary))
    if tcfg.enabled:
        uri = default_tracking_uri(root, tcfg.uri)
        try:
            quiet_http(tcfg.timeout_s)
            check_reachable(uri, tcfg.timeout_s)
            for trial in trials:
                log_to_mlflow(uri, trial, per_trial[trial["trial"]], out / "comparisons.json")
        except Exception as e:  # tracking loss is reported, never fatal
            log.warning("MLflow logging of the test scores failed (%s: %s); the files under %s have them",
                        type(e).__name__, e, out)
    return {"n_rows": len(rows), "n_comparisons": len(comparisons)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--features", type=Path, required=True, help="features dir (priorgrad preprocess --out)")
    ap.add_argument("--sweep", type=Path, required=True, help="sweep output dir (holds trials.json)")
    ap.add_argument("--out", type=Path, required=True, help="evaluation output dir, e.g. runs/eval")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_evaluate(args.params, args.features, args.sweep, args.out)
    except (EvaluateError, FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
