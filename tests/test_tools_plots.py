"""`dvc plots show` inputs: one curve file per metric, and the offline page template (fast checks;
tests/test_tools_browser.py draws the real page in Chromium)."""
from __future__ import annotations

import csv
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def test_one_curve_file_per_metric_with_the_metric_last(tmp_path):
    from experiments.convergence import convergence_rows, write_metric_curves
    from priorgrad.core.tracking import JsonlTracker

    log = JsonlTracker(tmp_path / "metrics.jsonl")  # what the trainer writes
    log.log_metrics({"train/loss": 0.9, "train/steps_per_s": 3.0}, step=2)
    log.log_metrics({"valid/loss": 0.8, "valid/ls_mae": 1.5, "valid/mrstft": float("nan")}, step=2)
    log.log_metrics({"valid/loss": 0.7, "valid/ls_mae": 1.4, "valid/mrstft": 9.0}, step=4)
    result = {"trial": "priorgrad-tiny-s0-b4", "prior": "energy", "size": "tiny", "n_params": 1, "seed": 0,
              "budget": 4}
    rows = convergence_rows(result, tmp_path / "metrics.jsonl")
    out = tmp_path / "convergence"
    out.mkdir()
    (out / "valid_old_metric.csv").write_text("stale\n")
    written = write_metric_curves(rows, out)
    assert sorted(p.name for p in written) == sorted(p.name for p in out.iterdir()) == [
        "train_loss.csv", "valid_loss.csv", "valid_ls_mae.csv", "valid_mrstft.csv"]
    with open(out / "valid_ls_mae.csv", newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["trial", "prior", "size", "seed", "budget", "step", "valid_ls_mae"]  # DVC's y: last
    assert [(r[5], float(r[6])) for r in table[1:]] == [("2", 1.5), ("4", 1.4)]
    with open(out / "valid_mrstft.csv", newline="") as f:
        assert len(list(csv.reader(f))) == 2  # the NaN validation is not a point on the curve


def test_offline_template_is_current_and_self_contained():
    from experiments.plots_offline import DEFAULT_OUT, main, render_template

    page = render_template()
    assert "{plot_divs}" in page and "{refresh_tag}" in page
    assert "{scripts}" not in page  # DVC would put its CDN <script src> tags there
    assert "<script src" not in page and "cdn.jsdelivr" not in page
    assert page.count("<script>") == 3 and "vegaEmbed" in page
    committed = ROOT / DEFAULT_OUT
    assert committed.read_text(encoding="utf-8") == page, (
        "the committed .dvc/plots/offline.html differs from the installed package's libraries: "
        "run python -m experiments.plots_offline")
    assert main(["--check", "--out", str(committed)]) == 0
    cfg = (ROOT / ".dvc" / "config").read_text()
    assert "html_template = plots/offline.html" in cfg


def test_convergence_figure_has_one_panel_per_curve(tmp_path):
    from experiments.convergence import convergence_figure

    fig = convergence_figure([{"step": 0, "valid/ls_mae": 2.0, "train/loss": 1.0},
                              {"step": 10, "valid/ls_mae": 1.5, "train/loss": None}], title="t")
    assert [ax.get_title() for ax in fig.axes] == ["ls_mae", "train_loss"]
    assert all(ax.get_xlabel() == "training step" for ax in fig.axes)
    assert len(fig.axes[0].lines[0].get_xdata()) == 2 and len(fig.axes[1].lines[0].get_xdata()) == 1
