"""The GPU-scale comparison in one lease: base and small networks x both priors, trained at once on one GPU.

Two halves, because the GPU machine has no mlflow, ray, dvc, librosa or metric packages and only a few
files of 16 MiB come back from it:

``run`` (on the GPU machine; needs torch + numpy): trains every (size, prior) trial as its own
``priorgrad train`` process, all at once (they share the GPU), with the fast training options, until
``--steps`` or ``--deadline-s``; checkpoints every ``--checkpoint-every`` steps are kept, so each size's
two priors are compared at the last step both reached. Then it packs what evaluation needs into
``--bring-back``: one slim checkpoint per trial (weights, params, prior statistics, step; no optimiser)
and ``logs.tar.gz`` (metrics.jsonl, params, stdout, timings, the plan).

``import`` (here): unpacks those files into a sweep-shaped directory (``trials/<name>/``, ``trials.json``,
``convergence.csv``), so the project's own ``python -m experiments.evaluate`` and ``python -m reports``
evaluate and report it like any sweep.

    # GPU machine (features precomputed here and carried, or made there: see scripts/gpu_comparison.sh)
    python -m experiments.gpu_comparison run --features data/features --stats data/prior_stats.json \
        --out runs/gpu_comparison --bring-back "$OUT" --steps 20000 --deadline-s 1500
    # here
    python -m experiments.gpu_comparison import --from <fetched files> --out runs/gpu_comparison/sweep
    python -m experiments.evaluate --params params.yaml --features data/features \\   # with `profile: gpu` set
        --sweep runs/gpu_comparison/sweep --out runs/gpu_comparison/eval
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from priorgrad.core import registry

log = logging.getLogger("experiments.gpu_comparison")

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = {e.name: e.system for e in registry.PRIORS.values() if e.family == "vocoder"}
MAX_FILE_BYTES = 16 * 2 ** 20  # what one file brought back from the GPU machine may weigh
MAX_FILES = 8


def trial_name(prior: str, size: str, seed: int) -> str:
    return f"{SYSTEM[prior]}-{size}-s{seed}-gpu"


def plan(args: argparse.Namespace) -> dict[str, Any]:
    """The trials and the exact ``priorgrad train`` command of each (no side effects)."""
    from priorgrad.core.schema import read_params

    params_path = Path(args.params)
    if not params_path.exists():
        raise FileNotFoundError(f"{params_path}: parameters file not found")
    raw = read_params(params_path, profile=args.profile)
    sizes = raw.get("sizes") or {}
    unknown = [s for s in args.sizes if s not in sizes]
    if unknown:
        raise ValueError(f"{params_path}: sizes {unknown} not in its sizes: section ({sorted(sizes)})")
    bad = [p for p in args.priors if p not in SYSTEM]
    if bad:
        raise ValueError(f"--priors {bad}: known priors are {sorted(SYSTEM)}")
    if args.steps < 1 or args.checkpoint_every < 1:
        raise ValueError("--steps and --checkpoint-every must be >= 1")
    fast = {"train.precision": args.precision, "train.compile": args.compile,
            "train.features_on_device": True, "train.cuda_graphs": False}
    trials = []
    for size in args.sizes:
        for prior in args.priors:
            name = trial_name(prior, size, args.seed)
            overrides = {f"model.{k}": v for k, v in sizes[size].items()}
            overrides.update({"prior.type": prior, "train.seed": args.seed, "train.max_steps": args.steps,
                              "train.device": args.device, "train.checkpoint_every": args.checkpoint_every,
                              "train.keep_checkpoints": args.steps // args.checkpoint_every + 1,
                              "train.validate_every": args.validate_every, **fast})
            cmd = [sys.executable, "-m", "priorgrad", "train", "--params", str(params_path),
                   "--set", f"profile={args.profile}",
                   "--features", str(args.features), "--stats", str(args.stats),
                   "--run-dir", str(Path(args.out) / "trials" / name)]
            for k, v in overrides.items():
                cmd += ["--set", f"{k}={json.dumps(v) if isinstance(v, bool) else v}"]
            for extra in args.overrides:
                cmd += ["--set", extra]
            trials.append({"trial": name, "prior": prior, "size": size, "seed": args.seed, "cmd": cmd})
    return {"params": str(params_path), "steps": args.steps, "deadline_s": args.deadline_s,
            "concurrent": len(trials), "trials": trials}


def run_trials(p: dict[str, Any], out: Path, deadline_s: float) -> dict[str, Any]:
    """Start every trial at once; stop the ones still running at the deadline (they keep their checkpoints)."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    procs = {}
    t0 = time.monotonic()
    for t in p["trials"]:
        logf = open(out / f"{t['trial']}.log", "w")
        procs[t["trial"]] = (subprocess.Popen(t["cmd"], cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT),
                             logf)
        log.info("started %s (pid %d)", t["trial"], procs[t["trial"]][0].pid)
    status = {}
    while procs:
        for name, (proc, logf) in list(procs.items()):
            rc = proc.poll()
            if rc is None and time.monotonic() - t0 > deadline_s:
                log.warning("%s: deadline of %.0f s reached; stopping it (its checkpoints stay)", name, deadline_s)
                proc.send_signal(signal.SIGTERM)
                try:
                    rc = proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    rc = proc.wait()
                status[name] = {"returncode": rc, "stopped_at_deadline": True}
            elif rc is not None:
                status[name] = {"returncode": rc, "stopped_at_deadline": False}
            if name in status:
                status[name]["wall_s"] = time.monotonic() - t0
                logf.close()
                del procs[name]
        time.sleep(2)
    return status


def checkpoint_steps(run_dir: Path) -> dict[int, Path]:
    return {int(p.stem.split("-")[1]): p for p in sorted((run_dir / "checkpoints").glob("step-*.pt"))}


def pack(p: dict[str, Any], out: Path, bring_back: Path, status: dict[str, Any]) -> dict[str, Any]:
    """Slim checkpoints at each size's common step, and the logs, into bring_back (within the limits)."""
    from priorgrad.core import checkpoint as ckpt_io

    bring_back.mkdir(parents=True, exist_ok=True)
    packed: dict[str, Any] = {"status": status, "trials": {}}
    for size in sorted({t["size"] for t in p["trials"]}):
        group = [t for t in p["trials"] if t["size"] == size]
        steps = [set(checkpoint_steps(out / "trials" / t["trial"])) for t in group]
        common = set.intersection(*steps) if steps else set()
        if not common:
            log.error("size %s: no checkpoint step reached by every prior; nothing packed for it", size)
            continue
        step = max(common)
        for t in group:
            ckpt = ckpt_io.load(checkpoint_steps(out / "trials" / t["trial"])[step])
            slim = {k: ckpt[k] for k in ("model", "params", "step", "prior_stats", "n_params") if k in ckpt}
            dest = ckpt_io.save(bring_back / f"{t['trial']}.pt", slim)
            if dest.stat().st_size > MAX_FILE_BYTES:
                raise RuntimeError(f"{dest}: {dest.stat().st_size} bytes, over the {MAX_FILE_BYTES} a file may weigh")
            packed["trials"][t["trial"]] = {**{k: t[k] for k in ("prior", "size", "seed")}, "step": step,
                                            "n_params": int(ckpt.get("n_params", 0)), "file": dest.name}
    (out / "packed.json").write_text(json.dumps({"plan": p, **packed}, indent=2, default=str))
    with tarfile.open(bring_back / "logs.tar.gz", "w:gz") as tar:
        tar.add(out / "packed.json", arcname="packed.json")
        for t in p["trials"]:
            run = out / "trials" / t["trial"]
            for rel in ("metrics.jsonl", "params.yaml", "result.json"):
                if (run / rel).exists():
                    tar.add(run / rel, arcname=f"{t['trial']}/{rel}")
            if (out / f"{t['trial']}.log").exists():
                tar.add(out / f"{t['trial']}.log", arcname=f"{t['trial']}/train.log")
    files = list(bring_back.iterdir())
    if len(files) > MAX_FILES:
        raise RuntimeError(f"{bring_back}: {len(files)} files, over the {MAX_FILES} that come back")
    return packed


def import_results(src: Path, dest: Path) -> Path:
    """Brought-back files -> a sweep-shaped directory that experiments.evaluate reads."""
    from experiments.convergence import final_metrics, write_tables

    logs = src / "logs.tar.gz"
    if not logs.exists():
        raise FileNotFoundError(f"{logs}: not found (the packed logs of a gpu_comparison run)")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(logs) as tar:
        tar.extractall(dest / "trials", filter="data")
    packed = json.loads((dest / "trials" / "packed.json").read_text())
    if not packed.get("trials"):
        raise ValueError(f"{logs}: the run packed no trial (see its status: {packed.get('status')})")
    results = []
    for name, t in packed["trials"].items():
        # names from the brought-back files become paths here: plain names only (no '..' or '/' escaping dest)
        for what, value in (("trial name", name), ("checkpoint file", t.get("file"))):
            if not isinstance(value, str) or value in ("", ".", "..") or any(c in value for c in "/\\\0"):
                raise ValueError(f"{logs}: packed.json: {what} {value!r} is not a plain file name")
        ckpt = src / t["file"]
        if not ckpt.exists():
            raise FileNotFoundError(f"{ckpt}: checkpoint of trial {name} not brought back")
        run_dir = dest / "trials" / name
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        target = run_dir / "checkpoints" / "last.pt"
        target.write_bytes(ckpt.read_bytes())
        metrics = run_dir / "metrics.jsonl"
        if not metrics.exists():
            raise FileNotFoundError(f"{metrics}: metrics of trial {name} missing from {logs}")
        # keep the curve up to the compared step (a trial may have run on past it)
        kept = [line for line in metrics.read_text().splitlines()
                if line.strip() and int(json.loads(line)["step"]) <= t["step"]]
        metrics.write_text("\n".join(kept) + "\n")
        last_valid = {}
        for line in kept:
            last_valid.update({k: v for k, v in json.loads(line).items() if k.startswith("valid/")})
        results.append(({"trial": name, "prior": t["prior"], "size": t["size"], "n_params": t["n_params"],
                         "system": SYSTEM[t["prior"]], "seed": t["seed"], "budget": t["step"], "step": t["step"],
                         "checkpoints": {str(t["step"]): str(target)}, "mlflow_run_id": None,
                         "mlflow_experiment": None, **last_valid}, run_dir))
    write_tables(results, dest)
    final_metrics(results, dest)
    return dest


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m experiments.gpu_comparison", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train every trial at once on this GPU and pack what evaluation needs")
    run.add_argument("--params", default=str(ROOT / "params.yaml"))
    run.add_argument("--profile", default="gpu", help="profile overlay applied to --params (default: gpu)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="an extra params override for every trial (repeatable), as `priorgrad train --set`")
    run.add_argument("--features", type=Path, required=True, help="features dir (priorgrad preprocess --out)")
    run.add_argument("--stats", type=Path, required=True, help="prior statistics JSON (priorgrad prior-stats)")
    run.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu_comparison", help="work dir on this machine")
    run.add_argument("--bring-back", type=Path, default=None, help="where the packed files go (default OUT/bring_back)")
    run.add_argument("--sizes", nargs="+", default=["base", "small"])
    # the paper's comparison (its baseline and proposed priors); a further prior (SpecGrad, role "alternative")
    # joins with --priors, since each one adds a full trial per size to the one GPU lease
    run.add_argument("--priors", nargs="+", default=[e.name for e in registry.PRIORS.values()
                                                     if e.role in ("baseline", "proposed")])
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--steps", type=int, default=20000, help="train.max_steps of every trial")
    run.add_argument("--deadline-s", type=float, default=1500.0, help="stop the trials after this many seconds")
    run.add_argument("--checkpoint-every", type=int, default=1000, help="steps between kept checkpoints")
    run.add_argument("--validate-every", type=int, default=1000, help="steps between validations")
    run.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    # off by default: four processes compiling at once cost minutes of the lease, and a compile failure
    # would lose every trial; turn it on once bench_gpu.py has shown it works and pays on this GPU
    run.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False)
    run.add_argument("--device", default="cuda")
    run.add_argument("--dry-run", action="store_true", help="print the plan and commands; run nothing")
    run.add_argument("--pack-only", action="store_true", help="train nothing; pack what the trials reached")
    imp = sub.add_parser("import", help="brought-back files -> a sweep directory for experiments.evaluate")
    imp.add_argument("--from", dest="src", type=Path, required=True)
    imp.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu_comparison" / "sweep")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "import":
            dest = import_results(args.src, args.out)
            print(f"imported into {dest}; next (with `profile: gpu` in params.yaml): python -m experiments.evaluate --params params.yaml "
                  f"--features data/features --sweep {dest} --out {dest.parent / 'eval'}")
            return 0
        p = plan(args)
        if args.dry_run:
            print(json.dumps({**p, "commands": [shlex.join(t["cmd"]) for t in p["trials"]]}, indent=2))
            return 0
        for path, what in ((args.features / "manifest.jsonl", "feature manifest"), (args.stats, "prior statistics")):
            if not path.exists():
                raise FileNotFoundError(f"{path}: {what} not found")
        if args.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise RuntimeError(f"--device {args.device}: CUDA is not available on this machine")
        t0 = time.time()
        status = {} if args.pack_only else run_trials(p, args.out, args.deadline_s)
        packed = pack(p, args.out, args.bring_back or args.out / "bring_back", status)
        print(json.dumps({"wall_s": time.time() - t0, **packed}, indent=2, default=str))
        return 0 if packed["trials"] else 1
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        log.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
