"""Where a `dvc repro` spends its time, and how much of the machine it uses (issue 21, point 1).

Clones the project (HEAD, or the working tree with ``--worktree``) into a scratch directory, points it
at a profile, and runs the pipeline one stage at a time (``dvc repro --single-item STAGE`` in the
order of dvc.yaml's DAG), recording per stage:

- wall time;
- CPU time (user, system) of the stage's process tree, from ``getrusage(RUSAGE_CHILDREN)``. This
  process makes itself a child subreaper (Linux ``prctl``) so that processes a stage leaves behind
  (Ray's raylet and workers are reparented when the driver exits) are reaped here and counted;
- the same from sampling every descendant's own CPU time with psutil every 0.25 s (a process that lives
  shorter than that is missed; Ray's workers, which outlive the stage's driver or are reaped by a daemon
  that is itself killed, are caught), and the larger of the two as the stage's CPU time;
- the machine's busy CPU time from ``/proc/stat`` over the same interval (everything that ran,
  including anything else on the machine: check ``load_avg_start`` on a shared machine);
- CPU utilisation = CPU time / (wall x cores), the number the issue's 85% target is about.

The JSON (``--out``) holds the machine, the profile, the commit and every stage, plus the totals:

    python benchmarks/bench_pipeline.py --profile smoke --out benchmarks/results/pipeline_smoke_cpu.json
    python benchmarks/bench_pipeline.py --profile default --out benchmarks/results/pipeline_default_cpu.json

Stages run with the same ``.venv`` as this script (its ``bin`` first on PATH, the clone first on
PYTHONPATH), so the install is not timed.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_core import machine  # noqa: E402
from priorgrad.core.fileio import write_text_atomic  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Orphans of the stages (Ray's daemons) are reparented to this process, so their CPU time is counted."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans() -> None:
    """Wait for every reparented child that has exited (their rusage is added to RUSAGE_CHILDREN)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def machine_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def stage_order(dvc_yaml: Path) -> list[str]:
    """dvc.yaml's stages in dependency order (a stage after every stage whose outputs it reads)."""
    stages: dict[str, Any] = yaml.safe_load(dvc_yaml.read_text())["stages"]
    outs = {name: [str(o if isinstance(o, str) else next(iter(o))) for o in s.get("outs", []) + s.get("metrics", [])
                   + s.get("plots", []) if isinstance(o, (str, dict))] for name, s in stages.items()}

    def needs(name: str) -> set[str]:
        deps = [str(d) for d in stages[name].get("deps", [])]
        return {other for other, os_ in outs.items() if other != name
                and any(d == o or d.startswith(o.rstrip("/") + "/") for d in deps for o in os_)}

    order: list[str] = []
    pending = list(stages)
    while pending:
        ready = [s for s in pending if needs(s) <= set(order)]
        if not ready:
            raise ValueError(f"{dvc_yaml}: the stages {pending} depend on each other in a circle")
        order.append(ready[0])
        pending.remove(ready[0])
    return order


def clone(dest: Path, worktree: bool) -> str:
    """A fresh clone of HEAD at dest (plus the working tree's uncommitted files with ``worktree``)."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    if worktree:
        files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                               capture_output=True, check=True).stdout.decode().split("\0")
        for rel in filter(None, files):
            if (ROOT / rel).is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, dest / rel)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def set_profile(project: Path, profile: str) -> None:
    params = project / "params.yaml"
    text, n = re.subn(r"(?m)^profile: *\S+", f"profile: {profile}", params.read_text())
    if n != 1:
        raise ValueError(f"{params}: no top-level `profile:` key")
    params.write_text(text)
    if not (project / "profiles" / f"{profile}.yaml").exists():
        raise FileNotFoundError(f"{project / 'profiles' / (profile + '.yaml')}: no such profile")


class TreeSampler:
    """Own CPU time (user, system) of every descendant of this process, last value seen per pid."""

    def __init__(self, period: float = 0.25):
        self.period, self.seen, self._stop = period, {}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for proc in psutil.Process().children(recursive=True):
            try:
                ct = proc.cpu_times()
                self.seen[(proc.pid, proc.create_time())] = (ct.user, ct.system)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._sample()

    def __enter__(self) -> "TreeSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sample()
        self._stop.set()
        self._thread.join()

    def totals(self) -> tuple[float, float]:
        return sum(u for u, _ in self.seen.values()), sum(s for _, s in self.seen.values())


def run_stage(project: Path, stage: str, env: dict[str, str], log: Path) -> dict[str, Any]:
    before_ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, t0 = machine_busy_seconds(), time.perf_counter()
    with log.open("a") as fh, TreeSampler() as sampler:
        fh.write(f"\n===== {stage}\n")
        fh.flush()
        proc = subprocess.run(["dvc", "repro", "--single-item", stage], cwd=project, env=env, stdout=fh,
                              stderr=subprocess.STDOUT)
        time.sleep(0.5)  # let Ray's daemons exit after the driver
        reap_orphans()
    wall = time.perf_counter() - t0
    busy = machine_busy_seconds() - busy0
    after_ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    ru_user, ru_system = after_ru.ru_utime - before_ru.ru_utime, after_ru.ru_stime - before_ru.ru_stime
    sampled_user, sampled_system = sampler.totals()
    user, system = ((ru_user, ru_system) if ru_user + ru_system >= sampled_user + sampled_system
                    else (sampled_user, sampled_system))
    cores = os.cpu_count() or 1
    if proc.returncode != 0:
        raise RuntimeError(f"stage {stage} failed ({proc.returncode}); its log: {log}")
    return {"stage": stage, "wall_s": round(wall, 2), "user_s": round(user, 2), "system_s": round(system, 2),
            "rusage_cpu_s": round(ru_user + ru_system, 2), "sampled_cpu_s": round(sampled_user + sampled_system, 2),
            "cpu_utilisation": round((user + system) / (wall * cores), 3),
            "machine_busy_s": round(busy, 2), "machine_utilisation": round(busy / (wall * cores), 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="smoke", help="profiles/<name>.yaml to run (default: smoke)")
    ap.add_argument("--out", type=Path, required=True, help="JSON to write")
    ap.add_argument("--worktree", action="store_true", help="include the working tree's uncommitted files")
    ap.add_argument("--keep", type=Path, default=None, help="run in this directory and keep it (default: a temp dir)")
    args = ap.parse_args(argv)

    subreaper = become_subreaper()
    scratch = Path(tempfile.mkdtemp(prefix="bench_pipeline_")) if args.keep is None else args.keep
    project = scratch / "project"
    commit = clone(project, args.worktree)
    set_profile(project, args.profile)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(project)  # the clone's code, not the editable install's checkout
    env["DVC_NO_ANALYTICS"] = "1"
    for var in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        env.pop(var, None)
    load_start = list(os.getloadavg())
    log = scratch / "bench_pipeline.log"
    rows = []
    t0 = time.perf_counter()
    for stage in stage_order(project / "dvc.yaml"):
        rows.append(run_stage(project, stage, env, log))
        print(json.dumps(rows[-1]), flush=True)
    wall = time.perf_counter() - t0
    cores = os.cpu_count() or 1
    user, system = sum(r["user_s"] for r in rows), sum(r["system_s"] for r in rows)
    busy = sum(r["machine_busy_s"] for r in rows)
    result = {
        "benchmark": "dvc repro, stage by stage: wall, CPU time and utilisation",
        "machine": machine(torch.device("cpu")), "cores": cores, "profile": args.profile, "commit": commit,
        "uncommitted_files_included": args.worktree, "subreaper": subreaper,
        "load_avg_start": load_start, "load_avg_end": list(os.getloadavg()),
        "stages": rows,
        "total": {"wall_s": round(wall, 1), "user_s": round(user, 1), "system_s": round(system, 1),
                  "cpu_utilisation": round((user + system) / (wall * cores), 3),
                  "machine_utilisation": round(busy / (wall * cores), 3)},
        "note": "install not timed (the stages run with this script's .venv); cpu_utilisation counts the stage's "
                "own process tree, machine_utilisation everything on the machine over the same interval",
    }
    write_text_atomic(args.out, json.dumps(result, indent=1) + "\n")
    if args.keep is None:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(result["total"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
