"""The tools people use, opened in headless Chromium on the smoke profile's real `dvc repro` (smoke_repro).

- MLflow: a real `mlflow ui` on 127.0.0.1 over the project's mlflow.db; the experiment page lists the
  trials' runs with their data set, and a run's "Model metrics" page draws the validation curves.
- `dvc plots show`: the page written with the offline template draws one chart per metric with no
  network (every request other than the page itself is refused, so a CDN script could not load).

Chromium is Debian's `chromium` (.ci/install-chromium.sh installs it where it can); without it the
tests skip with that reason. Screenshots are kept in reports/screenshots/ (git-ignored) for people.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.browser import find_chromium, json_probe, keep_screenshots, open_page
from support.project import copy_project, project_env, run_in

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; .ci/install-chromium.sh)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_mlflow_ui(project: Path, port: int, log: Path) -> subprocess.Popen:
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [str(mlflow_bin), "ui", "--backend-store-uri", f"sqlite:///{project / 'mlflow.db'}", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            cwd=project, env={**project_env(project), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # faster start
            stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    import requests

    deadline = time.monotonic() + 180  # the server takes a while to start on a loaded 2-core machine
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mlflow ui exited (rc {proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(1.0)
    _stop(proc)
    raise AssertionError(f"mlflow ui did not answer on 127.0.0.1:{port} within 180 s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


# Plotly (MLflow's charts) draws each line as path.js-line inside an svg.main-svg.
LINES_JS = "document.querySelectorAll('svg.main-svg path.js-line').length"


def test_mlflow_ui_opens_on_the_runs_and_draws_the_curves(smoke_repro: Path, chromium: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from experiments.trackers import EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND

    client = MlflowClient(tracking_uri=f"sqlite:///{smoke_repro / 'mlflow.db'}")
    exp = next(e for e in client.search_experiments() if e.name.startswith("priorgrad-bench-smoke-"))
    assert exp.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"priorgrad-tiny-s0", "diffwave-tiny-s0"}
    run = runs["priorgrad-tiny-s0"]
    assert "PriorGrad" in run.data.tags["mlflow.note.content"] and "seed 0" in run.data.tags["mlflow.note.content"]
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["synthetic-features"]
    assert {a.path for a in client.list_artifacts(run.info.run_id, "figures")} == {
        "figures/convergence.png", "figures/test_quality_vs_t_infer_b15.png", "figures/test_quality_vs_t_infer_b30.png"}
    # one value per final metric; the interval details are in the table, not metric series
    assert not [k for k in run.data.metrics if k.endswith(("_n", "_n_failed", "_std", "_ci_low", "_ci_high"))]

    port = _free_port()
    server = _start_mlflow_ui(smoke_repro, port, tmp_path / "mlflow-ui.log")
    base = f"http://127.0.0.1:{port}/#/experiments/{exp.experiment_id}"
    try:
        # MLflow 3.17 picks GenAI or model-training pages per browser (sidebar switch, remembered in
        # localStorage; GenAI by default); ?workflowType=machine_learning is the link that opens runs.
        runs_page = open_page(
            chromium, f"{base}/runs?workflowType=machine_learning",
            wait_js="document.body && document.body.innerText.includes('diffwave-tiny-s0') && "
                    "document.body.innerText.includes('priorgrad-tiny-s0')",
            probe_js=json_probe("{text: document.body.innerText}"), shot=tmp_path / "mlflow-runs.png",
            work=tmp_path, width=1400, height=900)
        assert runs_page.ready, f"the runs list did not show both trials: {runs_page.probe['text'][:1500]}"
        text = runs_page.probe["text"]
        assert "Model training" in text and "synthetic-features" in text and "Training" in text
        assert "Traces\n0" not in text  # not the GenAI overview

        run_page = open_page(
            chromium, f"{base}/runs/{run.info.run_id}/model-metrics?workflowType=machine_learning",
            wait_js=f"{LINES_JS} >= 5", shot=tmp_path / "mlflow-run-metrics.png", work=tmp_path,
            probe_js=json_probe(f"{{lines: {LINES_JS}, text: document.body.innerText}}"), width=1400, height=2600)
        probe = run_page.probe
        assert run_page.ready, f"fewer than 5 curves drawn: {probe}"
        # sections: test/T6 and test/T12 (one bar per final score), train (loss), valid (loss, ls_mae, mrstft)
        for section in ("test/T6", "test/T12", "train", "valid"):
            assert section in probe["text"], section
        assert "ls_mae" in probe["text"] and "mrstft" in probe["text"]
    finally:
        _stop(server)
    kept = keep_screenshots([runs_page.screenshot, run_page.screenshot], "mlflow")
    print("screenshots:", *kept)


# Vega draws into a <canvas> (vega-embed's default renderer) or an <svg>; each chart is a .vega-embed.
VEGA_JS = ("(() => { const charts = [...document.querySelectorAll('.vega-embed')];"
           " return charts.filter(c => c.querySelector('canvas, svg.marks')).length; })()")


def test_dvc_plots_show_renders_offline(smoke_repro: Path, chromium: str, tmp_path: Path) -> None:
    project = copy_project(smoke_repro, tmp_path / "project", with_outputs=True)
    curves = sorted(p.stem for p in (project / "runs/sweep/convergence").glob("*.csv"))
    assert curves == ["train_loss", "valid_loss", "valid_ls_mae", "valid_mrstft"]  # one plot per metric
    acoustic = sorted(p.stem for p in (project / "runs/acoustic/sweep/convergence").glob("*.csv"))
    assert "valid_mel_l1" in acoustic  # the acoustic sweep's curves are DVC plots too
    assert run_in(project, [sys.executable, "-m", "experiments.plots_offline", "--check"]).returncode == 0
    shown = run_in(project, ["dvc", "plots", "show", "--json"]).stdout
    data = json.loads(shown)["data"]
    assert sorted(k for k in data if k.startswith("runs/sweep/convergence/")) == [
        f"runs/sweep/convergence/{m}.csv" for m in curves]
    assert sorted(k for k in data if k.startswith("runs/acoustic/sweep/convergence/")) == [
        f"runs/acoustic/sweep/convergence/{m}.csv" for m in acoustic]
    curves += acoustic
    run_in(project, ["dvc", "plots", "show"])
    page = project / "dvc_plots" / "index.html"
    html = page.read_text()
    assert "cdn.jsdelivr" not in html and "<script src=" not in html  # nothing to fetch
    assert html.count("vegaEmbed('#") == len(curves)

    # Opened with the network cut off: no host name resolves and every http(s) request goes to a
    # proxy that does not exist, so a CDN script could not load; only the file itself can.
    offline = ("--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>")
    result = open_page(chromium, page.as_uri(), wait_js=f"{VEGA_JS} >= {len(curves)}", extra_flags=offline,
                       probe_js=json_probe(
                           "{drawn: " + VEGA_JS + ", titles: [...document.querySelectorAll('.vega-embed')]"
                           ".map(e => e.querySelector('canvas, svg') ? e.getAttribute('id') : null),"
                           " errors: [...document.querySelectorAll('.vega-embed .error')].length}"),
                       shot=tmp_path / "dvc-plots.png", work=tmp_path, width=1200, height=1800)
    assert result.ready, f"charts drawn: {result.probe}"
    assert result.probe["errors"] == 0
    kept = keep_screenshots([result.screenshot], "dvc")
    print("screenshot:", *kept)
