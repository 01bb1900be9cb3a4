"""The sweep on an EXISTING Ray cluster (RAY_ADDRESS): a real local cluster started with `ray start`.

The cluster is a head node on 127.0.0.1 with its own temporary directory, 2 CPUs and one logical GPU
(a GPU resource Ray schedules; the trials still train on the CPU here), so that
``sweep.gpus_per_trial: 0.5`` is exercised by the real scheduler: two trials share the one GPU.
It is started with ``--block`` in its own process group and stopped by signalling that group, not
with ``ray stop`` (which stops every Ray process of the user on the machine, other people's too).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from priorgrad.core.schema import read_params
from support.project import write_params

from support.project import project_env

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"`ray start` exited early (rc {proc.returncode}):\n{proc.stdout.read()[-4000:]}")
        with socket.socket() as s:
            s.settimeout(1.0)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"the Ray head did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the cluster's process group (`ray start --block` then stops what it started), then SIGKILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # anything of this group still alive (workers, raylet)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def test_smoke_sweep_runs_on_an_existing_cluster_with_gpu_fractions(tiny_features, tmp_path):
    features, stats = tiny_features
    ray_bin = Path(sys.executable).parent / "ray"
    if not ray_bin.exists():
        pytest.skip(f"the ray command line is not installed next to {sys.executable}")
    params = read_params(ROOT / "params.yaml", profile="smoke")
    params["sweep"].update(backend="ray", budgets=[2, 4], seeds=[0], gpus_per_trial=0.5, cpus_per_trial=1,
                           max_concurrent_trials=2)
    params["train"].update(validate_every=2, checkpoint_every=2, log_every=2)
    params["tracking"].update(enabled=False)
    write_params(tmp_path, params)
    out = tmp_path / "runs" / "sweep"

    # Ray's unix sockets live under the temp dir and must stay < 107 bytes: a short path in /tmp
    temp_dir = Path(tempfile.mkdtemp(prefix="rayc", dir="/tmp"))
    port = _free_port()
    env = project_env(ROOT)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # On Linux, Ray rewrites a 127.0.0.1 address to the machine's network IP before connecting (so a
    # cluster on 127.0.0.1 would be unreachable); with clusters "disabled" it keeps everything on the
    # loopback interface, as it does on macOS. Test-only: a real cluster's head has a network address.
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
         f"--temp-dir={temp_dir}", "--num-cpus=2", "--num-gpus=1", "--include-dashboard=false",
         "--object-store-memory=100000000", "--disable-usage-stats"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _wait_for_port(port, head, timeout_s=90)
        sweep_env = {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "experiments.sweep", "--params", str(tmp_path / "params.yaml"),
             "--features", str(features), "--stats", str(stats), "--out", str(out)],
            cwd=ROOT, env=sweep_env, capture_output=True, text=True, timeout=300)
        seconds = time.monotonic() - t0
        log = proc.stdout + proc.stderr
        assert proc.returncode == 0, log[-6000:]
        assert f"connecting to the cluster at 127.0.0.1:{port}" in log

        trials = json.loads((out / "trials.json").read_text())
        assert sorted(t["trial"] for t in trials) == ["diffwave-tiny-s0", "priorgrad-tiny-s0"]

        # the trials ran on THIS cluster: each trial's worker (its pid, as Tune reported it) has its
        # log files in the cluster's session directory, as a `_trainable` actor of the sweep's job
        sessions = [p for p in temp_dir.glob("session_*") if p.is_dir() and not p.is_symlink()]
        assert len(sessions) == 1, sessions
        logs = sessions[0] / "logs"
        results = sorted((out / "tune").glob("*/*/result.json"))
        assert len(results) == 2, [str(p) for p in (out / "tune").rglob("*")][:30]
        for res in results:
            last = json.loads(res.read_text().splitlines()[-1])
            assert last["node_ip"] == "127.0.0.1", last
            worker_logs = list(logs.glob(f"worker-*-{last['pid']}.*"))
            assert worker_logs, f"no log of worker pid {last['pid']} ({res.parent.name}) in {logs}"
            assert any(":actor_name:_trainable" in p.read_text(errors="replace") for p in worker_logs)

        # Half a GPU per trial on a one-GPU cluster: the scheduler ran the two trials at the same time
        # (with a whole GPU each, the second would have waited for the first to finish)
        spans = []
        for res in results:
            rows = [json.loads(line) for line in res.read_text().splitlines() if line.strip()]
            spans.append((rows[0]["timestamp"] - rows[0]["time_total_s"], rows[-1]["timestamp"]))
        (s0, e0), (s1, e1) = spans
        assert max(s0, s1) < min(e0, e1), f"the trials did not overlap: {spans}"

        print(f"sweep on the cluster: {seconds:.1f} s")
    finally:
        _stop(head)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert head.returncode is not None
