"""Figures of the report (matplotlib + seaborn), saved byte-reproducibly.

Determinism: a fixed style and font (DejaVu Sans ships with matplotlib), a fixed SVG hash salt, no
timestamps or software strings in the file metadata, every category in an explicit order, and seed
bands drawn as the min-max range over seeds (a percentile interval, no bootstrap resampling).
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import matplotlib

matplotlib.use("Agg")  # headless; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from reports.metrics_info import MetricInfo, metric_info  # noqa: E402
from eval.aggregate import FLOOR  # noqa: E402
from reports.tables import SYSTEM_LABELS, fmt_params, models, size_order  # noqa: E402
from priorgrad.core import registry  # noqa: E402

log = logging.getLogger(__name__)

# names, labels and colours: the one registry (priorgrad.core.registry), baselines first. Prior names repeat
# across families ("standard" is DiffWave's and B1's), so prior-keyed tables are built per family.
SYSTEMS = registry.system_names("vocoder")
SYSTEM_COLORS = {s: registry.system(s).colour for s in registry.system_names()}   # every family's systems
FLOOR_COLOUR = "#555555"
LINESTYLES = ["-", "--", ":", "-."]
MARKERS = ["o", "s", "^", "D", "v", "P"]


def family_priors(family: str) -> list[str]:
    """A family's prior names in table order (baselines first)."""
    return [registry.system(s).name for s in registry.system_names(family)]


def t_interval(values) -> tuple[float, float]:
    """95% t-interval of a mean over seeds (seaborn errorbar callable; deterministic, unlike a bootstrap)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if v.size < 2:
        return m, m
    half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m - half, m + half


# Everything that could otherwise vary between runs or machines.
DETERMINISTIC_RC = {
    "font.family": "DejaVu Sans",
    "svg.hashsalt": "priorgrad-bench-report",
    "svg.fonttype": "path",
    "path.simplify": True,
    "axes.formatter.useoffset": False,
}
SAVE_METADATA = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None},
}


@dataclass
class FigureFile:
    key: str          # e.g. "convergence_ls_mae"
    file: str         # path relative to the output dir, e.g. "figures/convergence_ls_mae.png"
    title: str
    caption: str


@contextmanager
def report_style(dpi: int) -> Iterator[None]:
    """Seaborn's theme plus the deterministic settings, restored afterwards."""
    with matplotlib.rc_context():
        sns.set_theme(style="whitegrid", context="paper")
        matplotlib.rcParams.update(DETERMINISTIC_RC)
        matplotlib.rcParams.update({"figure.dpi": dpi, "savefig.dpi": dpi})
        yield


def save_figure(fig: Figure, path: Path, fmt: str) -> None:
    """Save atomically with metadata stripped of dates and versions."""
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format=fmt, metadata=SAVE_METADATA[fmt], bbox_inches=None)
    os.replace(tmp, path)


def _grid(n: int, max_cols: int = 4, w: float = 3.6, h: float = 3.0) -> tuple[Figure, list]:
    cols = min(n, max_cols)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(w * cols, h * rows + 0.6), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def convergence_figure(conv: pd.DataFrame, metric: str, info: MetricInfo, sizes: list[str],
                       family: str = "vocoder") -> Figure:
    """Metric vs training step, one panel per size, every prior of the family. Vocoder: band = range over
    seeds; acoustic: band = 95% t-interval of the seed mean, and the mu-alone floor the trainer logs
    (convergence metric "floor_<metric>") as a dashed line."""
    priors = family_priors(family)
    labels = {p: registry.prior(p, family).label for p in priors}
    colours = {p: registry.prior(p, family).colour for p in priors}
    acoustic = family != "vocoder"
    df = conv[conv["metric"].str.removeprefix("valid/") == metric].copy()
    floor = conv[conv["metric"] == f"floor_{metric}"]
    # Column names double as legend titles.
    df["system"] = df["prior"].map(labels)
    budgets = sorted(df["budget"].unique())
    df["training budget"] = df["budget"].map(lambda b: f"{b} steps")
    panels = [s for s in sizes if s in set(df["size"])]
    fig, axes = _grid(len(panels), max_cols=3, w=4.2 if len(panels) > 1 else 6.0, h=3.2)
    n_params = df.groupby("size")["n_params"].max()
    for ax, size in zip(axes, panels):
        d = df[df["size"] == size].sort_values(["prior", "budget", "seed", "step"], kind="mergesort")
        present = [p for p in priors if p in set(d["prior"])]
        sns.lineplot(data=d, x="step", y="value", hue="system",
                     hue_order=[labels[p] for p in present],
                     palette=[colours[p] for p in present],
                     style="training budget" if len(budgets) > 1 else None,
                     style_order=[f"{b} steps" for b in budgets] if len(budgets) > 1 else None,
                     estimator="mean", errorbar=t_interval if acoustic else ("pi", 100), marker="o", markersize=3,
                     ax=ax, legend="auto" if ax is axes[0] else False)
        f = floor[floor["size"] == size]
        if acoustic and not f.empty:
            ax.axhline(float(f["value"].mean()), color=FLOOR_COLOUR, linestyle=(0, (2, 2)), linewidth=1,
                       label="mu alone (mean reference)")
        n_seeds = d.groupby(["prior", "budget"])["seed"].nunique().max()
        ax.set_title(f"{size} ({fmt_params(int(n_params[size]))} params), {n_seeds} seed(s)")
        ax.set_xlabel("training step")
        ax.set_ylabel(info.heading)
    if axes and acoustic:
        axes[0].legend(fontsize=7, loc="best")   # again, so the floor line is listed
    elif axes and axes[0].get_legend() is not None:
        sns.move_legend(axes[0], "best", fontsize=7)
    band = "95% CI of the seed mean; dashed: mu alone, the mean reference" if acoustic else "min-max over seeds"
    what = f"E1 {info.label}" if acoustic else info.label   # the acoustic trainer validates under E1
    _suptitle(fig, f"Convergence: validation {what} vs training step (line: seed mean, band: {band})")
    fig.tight_layout()
    return fig


def _suptitle(fig: Figure, text: str) -> None:
    """Figure title wrapped to the figure's width (a one-panel figure is narrow)."""
    import textwrap

    width = max(30, int(fig.get_figwidth() * 13))   # about 13 characters per inch at 9 pt
    fig.suptitle(textwrap.fill(text, width), fontsize=9)


def _errorbar(ax, x, y, lo, hi, **kw) -> None:
    y, lo, hi = np.asarray(y, float), np.asarray(lo, float), np.asarray(hi, float)
    ax.errorbar(x, y, yerr=np.vstack([y - lo, hi - y]), capsize=3, **kw)


def _final_budget(summary: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    b = int(summary["budget"].max())
    return summary[summary["budget"] == b], b


def _floor_line(ax, floors: pd.DataFrame | None, metric: str) -> None:
    """The acoustic mean reference (mu alone, the same for every system) as one dashed line: its rows' mean."""
    if floors is None:
        return
    f = floors[floors["metric"] == metric]["mean"].dropna()
    if not f.empty:
        ax.axhline(float(f.mean()), color=FLOOR_COLOUR, linestyle=(0, (2, 2)), linewidth=1,
                   label="mu alone (mean reference)")


def quality_vs_tinfer(summary: pd.DataFrame, infos: list[MetricInfo], sizes: list[str],
                      systems: list[str] = SYSTEMS, floors: pd.DataFrame | None = None) -> Figure:
    s, budget = _final_budget(summary)
    fig, axes = _grid(len(infos))
    for ax, info in zip(axes, infos):
        d = s[s["metric"] == info.key]
        _floor_line(ax, floors, info.key)
        for i, size in enumerate(sizes):
            for system in systems:
                g = d[(d["size"] == size) & (d["system"] == system)].sort_values("t_infer")
                if g.empty:
                    continue
                _errorbar(ax, g["t_infer"], g["mean"], g["ci_low"], g["ci_high"],
                          color=SYSTEM_COLORS[system], linestyle=LINESTYLES[i % 4], marker=MARKERS[i % 6],
                          markersize=4, label=f"{SYSTEM_LABELS[system]}, {size}")
        ts = sorted(d["t_infer"].unique())
        ax.set_xscale("log")
        ax.set_xticks(ts, [str(t) for t in ts])
        ax.minorticks_off()
        ax.set_xlabel("inference steps T_infer")
        ax.set_ylabel(info.heading)
    axes[0].legend(fontsize=6)
    _suptitle(fig, f"Quality vs inference steps (training budget {budget} steps; bars: 95% CI)")
    fig.tight_layout()
    return fig


def quality_vs_size(summary: pd.DataFrame, infos: list[MetricInfo], systems: list[str] = SYSTEMS,
                    floors: pd.DataFrame | None = None) -> Figure:
    s, budget = _final_budget(summary)
    ts = sorted(int(t) for t in s["t_infer"].unique())
    fig, axes = _grid(len(infos))
    for ax, info in zip(axes, infos):
        d = s[s["metric"] == info.key]
        _floor_line(ax, floors, info.key)
        for i, t in enumerate(ts):
            for system in systems:
                g = d[(d["t_infer"] == t) & (d["system"] == system)].sort_values("n_params")
                if g.empty:
                    continue
                _errorbar(ax, g["n_params"], g["mean"], g["ci_low"], g["ci_high"],
                          color=SYSTEM_COLORS[system], linestyle=LINESTYLES[i % 4], marker=MARKERS[i % 6],
                          markersize=4, label=f"{SYSTEM_LABELS[system]}, T={t}")
        ns = sorted(int(n) for n in d["n_params"].unique())
        ax.set_xscale("log")
        ax.set_xticks(ns, [fmt_params(n) for n in ns])
        ax.minorticks_off()
        ax.set_xlabel("network parameters" if systems == SYSTEMS else "decoder parameters")
        ax.set_ylabel(info.heading)
    axes[0].legend(fontsize=6)
    _suptitle(fig, f"Quality vs network size (training budget {budget} steps; bars: 95% CI)")
    fig.tight_layout()
    return fig


def quality_vs_rtf(summary: pd.DataFrame, rtf: pd.DataFrame, infos: list[MetricInfo], sizes: list[str]) -> Figure:
    """Each point is one system/size/T_infer: its real-time factor against its quality."""
    s, budget = _final_budget(summary)
    r = rtf.groupby(["system", "size", "t_infer"])["rtf"].median()
    devices = ", ".join(sorted(set(rtf["device"])))
    fig, axes = _grid(len(infos))
    for ax, info in zip(axes, infos):
        d = s[s["metric"] == info.key]
        for i, size in enumerate(sizes):
            for system in SYSTEMS:
                g = d[(d["size"] == size) & (d["system"] == system)].sort_values("t_infer")
                keys = [(system, size, int(t)) for t in g["t_infer"]]
                have = [k in r.index for k in keys]
                g = g[have]
                if g.empty:
                    continue
                x = [r[(system, size, int(t))] for t in g["t_infer"]]
                _errorbar(ax, x, g["mean"], g["ci_low"], g["ci_high"], color=SYSTEM_COLORS[system],
                          linestyle="none", marker=MARKERS[i % 6], markersize=4,
                          label=f"{SYSTEM_LABELS[system]}, {size}")
                for xi, yi, t in zip(x, g["mean"], g["t_infer"]):
                    ax.annotate(f"T{int(t)}", (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=6)
        ax.set_xscale("log")
        # plain numbers at 1-2-5 steps on the log axis; minor labels off (they collide on a short range)
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(f"real-time factor (log; {devices})")
        ax.set_ylabel(info.heading)
    axes[0].legend(fontsize=6)
    _suptitle(fig, f"Quality vs synthesis speed (training budget {budget} steps; lower RTF = faster)")
    fig.tight_layout()
    return fig


def quality_vs_budget(summary: pd.DataFrame, infos: list[MetricInfo], sizes: list[str]) -> Figure:
    """Test-set score against training steps (the checkpoints of the ladder), per system, size and T_infer,
    with each prior's noise floor as a dashed line."""
    full = summary
    s = models(summary)
    ts = sorted(int(t) for t in s["t_infer"].unique())
    fig, axes = _grid(len(infos))
    for ax, info in zip(axes, infos):
        d = s[s["metric"] == info.key]
        for i, size in enumerate(sizes):
            for j, t in enumerate(ts):
                for system in SYSTEMS:
                    g = d[(d["size"] == size) & (d["system"] == system) & (d["t_infer"] == t)].sort_values("budget")
                    if g.empty:
                        continue
                    _errorbar(ax, g["budget"], g["mean"], g["ci_low"], g["ci_high"], color=SYSTEM_COLORS[system],
                              linestyle=LINESTYLES[(i * len(ts) + j) % 4], marker=MARKERS[j % 6], markersize=4,
                              label=f"{SYSTEM_LABELS[system]}, {size}, T={t}")
        if "kind" in full.columns:
            fl = full[(full["kind"] == FLOOR) & (full["metric"] == info.key)]
            for _, r in fl.sort_values("system").iterrows():
                if not pd.isna(r["mean"]):
                    ax.axhline(r["mean"], color=SYSTEM_COLORS[r["system"]], linestyle=(0, (2, 2)), linewidth=1,
                               label=f"{SYSTEM_LABELS[r['system']]} prior noise")
        bs = sorted(int(b) for b in d["budget"].unique())
        ax.set_xticks(bs, [str(b) for b in bs])
        ax.set_xlabel("training steps (checkpoint)")
        ax.set_ylabel(info.heading)
    axes[0].legend(fontsize=5)
    _suptitle(fig, "Test-set quality across the training-step ladder (bars: 95% CI over seeds and utterances; "
                   "dashed: prior noise)")
    fig.tight_layout()
    return fig


def build_figures(conv: pd.DataFrame, summary: pd.DataFrame, rtf: pd.DataFrame, table_infos: list[MetricInfo],
                  convergence_metrics: list[str], family: str = "vocoder") -> list[tuple[str, str, str, Figure]]:
    """(key, title, caption, figure) for every figure, in report order. Call inside report_style().
    The acoustic family's: convergence (with the floor), quality vs sampling steps and vs decoder size."""
    sizes = size_order(summary)
    full = summary
    summary = models(summary)
    out: list[tuple[str, str, str, Figure]] = []
    conv_present = set(conv["metric"].str.removeprefix("valid/"))
    directions = dict(zip(summary["metric"], summary["higher_is_better"].astype(bool)))
    missing = [m for m in convergence_metrics if m not in conv_present]
    if missing:
        log.warning("convergence.csv has no curves for %s (has %s)", missing, sorted(conv_present))
    if family != "vocoder":
        return out + _acoustic_figures(conv, full, table_infos, [m for m in convergence_metrics if m in conv_present],
                                       sizes, family)
    for m in [m for m in convergence_metrics if m in conv_present]:
        info = metric_info(m, directions.get(m))
        out.append((f"convergence_{m}", f"Convergence of {info.label}",
                    f"Validation {info.label} against training step for both priors, one panel per network size. "
                    "Line: mean over seeds; band: min-max over seeds.",
                    convergence_figure(conv, m, info, sizes)))
    out.append(("quality_vs_budget", "Quality across the training-step ladder",
                "Mean test-set score with its 95% two-level bootstrap CI at each checkpoint of the budget ladder "
                "(the same training runs, evaluated at each budget), per system, size and T_infer; dashed lines: "
                "each prior's own noise sample scored without denoising.",
                quality_vs_budget(full, table_infos, sizes)))
    out.append(("quality_vs_tinfer", "Quality vs inference steps",
                "Mean test-set score with its 95% CI per system and size against the number of inference steps.",
                quality_vs_tinfer(summary, table_infos, sizes)))
    out.append(("quality_vs_size", "Quality vs network size",
                "Mean test-set score with its 95% CI per system and T_infer against the number of parameters.",
                quality_vs_size(summary, table_infos)))
    out.append(("quality_vs_rtf", "Quality vs real-time factor",
                "Mean test-set score with its 95% CI against the measured real-time factor of synthesis "
                "(median over rtf.csv rows); labels give T_infer.",
                quality_vs_rtf(summary, rtf, table_infos, sizes)))
    return out


def _acoustic_figures(conv: pd.DataFrame, full: pd.DataFrame, infos: list[MetricInfo], conv_metrics: list[str],
                      sizes: list[str], family: str) -> list[tuple[str, str, str, Figure]]:
    systems = registry.system_names(family)
    # the dashed line: the mean (regression) reference mu alone (kind mean_reference; the per-system floors are
    # each system's own prior draw, in the results table and flags, too far above to share an axis)
    floors = full[full["kind"] == "mean_reference"] if "kind" in full.columns else None
    summary = models(full)
    out: list[tuple[str, str, str, Figure]] = []
    for m in conv_metrics:
        info = metric_info(m)
        out.append((f"{family}_convergence_{m}", f"Acoustic model: convergence of validation E1 {info.label}",
                    f"Validation {info.label} under condition E1 (ground-truth durations, f0 and energy) against "
                    "training step, per system, one panel per decoder size. Line: mean over seeds; band: 95% "
                    "t-interval of that mean; dashed: mu alone (phoneme means over ground-truth durations, no "
                    "decoder), a mean (regression) reference that L1 favours, not a sampler's floor.", convergence_figure(conv, m, info, sizes, family)))
    out.append((f"{family}_quality_vs_tinfer", "Acoustic model: quality vs sampling steps",
                "Mean test-set score with its 95% two-level CI per system and decoder size against the number of "
                "sampling steps T_infer (largest training budget); dashed: mu alone (the mean reference, not a floor).",
                quality_vs_tinfer(summary, infos, sizes, systems, floors)))
    out.append((f"{family}_quality_vs_size", "Acoustic model: quality vs decoder size",
                "Mean test-set score with its 95% CI per system and T_infer against the decoder's parameter count "
                "(largest training budget); dashed: mu alone (the mean reference, not a floor).",
                quality_vs_size(summary, infos, systems, floors)))
    return out


def text_table_figure(title: str, header: list[str], rows: list[list[str]], bold: list[list[bool]] | None = None,
                      col_widths: list[float] | None = None, notes: list[str] = ()) -> Figure:
    """A table rendered as a (landscape A4) matplotlib figure for the PDF."""
    fig = plt.figure(figsize=(11.69, 8.27))
    fig.text(0.03, 0.96, title, fontsize=11, weight="bold", va="top")
    ax = fig.add_axes((0.03, 0.08, 0.94, 0.84))
    ax.axis("off")
    tab = ax.table(cellText=rows or [[""] * len(header)], colLabels=header, loc="upper center",
                   cellLoc="center", colWidths=col_widths)
    tab.auto_set_font_size(False)
    tab.set_fontsize(6.5 if len(header) > 8 else 7.5)
    tab.scale(1.0, 1.25)
    for j in range(len(header)):
        tab[0, j].set_text_props(weight="bold")
    if bold:
        for i, brow in enumerate(bold):
            for j, b in enumerate(brow):
                if b:
                    tab[i + 1, j].set_text_props(weight="bold")
    for k, note in enumerate(notes):
        fig.text(0.03, 0.06 - 0.018 * k, note, fontsize=7, va="top")
    return fig
