"""Build reports/out: index.html, report.md, report.pdf, figures/ and audio/ from the pipeline outputs.

The whole output directory is built in a temporary sibling and swapped in at the end, so a failed
run never leaves a half-written report behind. Nothing in it depends on the clock or on dict/set
iteration order, so unchanged inputs give byte-identical files (and DVC sees no change downstream).
"""
from __future__ import annotations

import dataclasses
import json
import hashlib
import logging
import os
import shutil
from pathlib import Path

import jinja2
import pandas as pd
import matplotlib.pyplot as plt
from matplotlib.backends.backend_pdf import PdfPages

from eval.aggregate import SYSTEM_LABELS, aggregate, build_cube
from reports.claims import CLAIM_RULE, ClaimSettings, evaluate_claims
from reports.config import LEVEL, ReportConfig
from reports.figures import SAVE_METADATA, FigureFile, build_figures, report_style, save_figure, text_table_figure
from reports.inputs import RunData, load_runs
from reports.listening import build_listening
from reports.provenance import build_provenance
from reports.metrics_info import metric_info
from reports.tables import FLOOR_FLAG, MARK_BETTER, MARK_WORSE, ResultsTable, build_results_table, fmt_params

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
PDF_ROWS_PER_PAGE = 26


def _md_escape(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                             autoescape=jinja2.select_autoescape(["html.j2"]), trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["md"] = _md_escape
    env.filters["slug"] = lambda v: str(v).replace(" ", "-")
    return env


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)


def _table_pages(table: ResultsTable) -> list[plt.Figure]:
    header = ["system", "size", "steps", "T", "seeds"] + [m.heading for m in table.metrics]
    rows, bold = [], []
    for r in table.rows:
        label = r.system_label + (" \u2020" if r.flags else "")
        setting = ([label, "-", "-", "-"] if r.is_floor else
                   [label, f"{r.size} ({r.params_label})", str(r.budget), str(r.t_infer)])
        rows.append(setting + [str(r.n_seeds)] + [c.text + (f" {c.marker}" if c.marker else "") for c in r.cells])
        bold.append([False] * 5 + [c.best for c in r.cells])
    widths = [0.14, 0.1, 0.05, 0.03, 0.04] + [0.64 / max(1, len(table.metrics))] * len(table.metrics)
    pages = []
    n_pages = max(1, -(-len(rows) // PDF_ROWS_PER_PAGE))
    for p in range(n_pages):
        sl = slice(p * PDF_ROWS_PER_PAGE, (p + 1) * PDF_ROWS_PER_PAGE)
        pages.append(text_table_figure(
            f"Results: mean \u00b1 95% CI half-width (page {p + 1} of {n_pages})", header, rows[sl], bold[sl], widths,
            notes=[f"Bold: best in column. {MARK_BETTER} / {MARK_WORSE}: PriorGrad significantly better / worse than "
                   "DiffWave at the same setting (judged comparison, its own 95% two-level CI excludes 0; uncorrected, "
                   f"does not vote). \u2020: {FLOOR_FLAG} on a primary metric."]))
    return pages


def _claims_page(claims: list, rule: str) -> plt.Figure:
    import textwrap
    rows = [[textwrap.fill(c.title, 38), c.verdict, textwrap.fill(c.reason[:400], 70), textwrap.fill(c.scope, 40)]
            for c in claims]
    fig = text_table_figure("The paper's claims in these runs", ["claim", "verdict", "evidence", "scope"], rows,
                            col_widths=[0.25, 0.09, 0.42, 0.24], notes=[textwrap.fill(rule, 180)])
    for ax in fig.axes:
        for (i, _), cell in ax.tables[0].get_celld().items():
            if i > 0:
                cell.set_height(cell.get_height() * 3.2)
    return fig


def generate(eval_dir: Path, sweep_dir: Path, cfg: ReportConfig, out_dir: Path) -> Path:
    """Write the report to out_dir (replacing it); returns the path of index.html."""
    data: RunData = load_runs(eval_dir, sweep_dir)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    (stage / "figures").mkdir(parents=True)
    try:
        _build(data, cfg, stage)
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(stage, out_dir)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    log.info("report written to %s", out_dir / "index.html")
    return out_dir / "index.html"


def regime(table: ResultsTable, data_summary, cfg: ReportConfig, n_utts: int) -> list[str]:
    """The top of the report: what was run, in plain words, and whether any system beats its floor."""
    from reports.tables import models, size_order

    m = models(data_summary)
    sizes = size_order(data_summary)
    n_params = m.groupby("size")["n_params"].max()
    seeds = m.groupby("system")["n_seeds"].max()
    lines = [
        f"Networks: {', '.join(f'{s} ({fmt_params(int(n_params[s]))} parameters)' for s in sizes)}. "
        f"Training steps (checkpoints of one run per seed): {sorted(int(b) for b in m['budget'].unique())}. "
        f"Seeds per system: {', '.join(f'{SYSTEM_LABELS.get(k, k)} {int(v)}' for k, v in sorted(seeds.items()))}. "
        f"T_infer: {sorted(int(t) for t in m['t_infer'].unique())}. Test utterances: {n_utts}. "
        f"Primary metrics (they decide the verdicts): "
        f"{', '.join(metric_info(k, bool(m.loc[m['metric'] == k, 'higher_is_better'].iloc[0]) if k in set(m['metric']) else None).label for k in cfg.primary_metrics)}.",
    ]
    n_models = len([r for r in table.rows if not r.is_floor])
    if table.floor_beaten:
        lines.append(f"{len(table.floor_beaten)} of {n_models} system settings beat their own prior's noise (the "
                     "prior sample scored without denoising) on every primary metric; "
                     f"{len(table.floor_not_beaten)} do not ({FLOOR_FLAG}, marked \u2020), "
                     f"{len(table.floor_not_judged)} are not judged.")
    elif table.floor_not_beaten:
        lines.append(f"No system beats its own prior's noise on every primary metric ({len(table.floor_not_beaten)} "
                     f"of {n_models} settings are {FLOOR_FLAG}, marked \u2020; {len(table.floor_not_judged)} not "
                     "judged): these networks do not yet produce better audio than the noise they start from, so the "
                     "claims below compare systems in that regime, not trained vocoders.")
    elif not any(r.is_floor for r in table.rows):
        lines.append("No prior-noise floor was scored (scores.csv has no prior_noise rows), so nothing here says "
                     "whether these systems do better than the noise they start from.")
    else:
        lines.append(f"Whether any system beats its prior-noise floor is not judged here: the comparisons of all "
                     f"{len(table.floor_not_judged)} system settings with their floors break the rule (too few seeds "
                     "or utterances).")
    return lines


def _build(data: RunData, cfg: ReportConfig, out: Path) -> None:
    from reports.tables import metric_directions

    higher = metric_directions(data.summary)
    rule = cfg.rule()
    cube = build_cube(data.scores, higher)
    # the summary and comparisons are recomputed from the scores with this report's rule (the same code
    # the evaluate stage ran), so the page and its rule cannot disagree
    summary_rows, comparison_rows = aggregate(cube, higher, rule)
    summary, comparisons = pd.DataFrame(summary_rows), pd.DataFrame(comparison_rows)
    table = build_results_table(summary, comparisons, cfg.metrics, cfg.primary_metrics)
    conv_metric = next((m for m in cfg.convergence_metrics
                        if m in set(data.convergence["metric"].str.removeprefix("valid/"))), None)
    shown = [i.key for i in table.metrics]
    cs = ClaimSettings(primary_metrics=list(cfg.primary_metrics),
                       secondary_metrics=[m for m in shown if m not in cfg.primary_metrics],
                       few_steps=list(cfg.few_steps), margins=dict(cfg.equivalence_margins), rule=rule)
    claims = evaluate_claims(cube, cs, comparisons, data.convergence, conv_metric)
    rule_text = CLAIM_RULE.format(
        rule_text=rule.text(), primary=", ".join(metric_info(m, higher.get(m)).label for m in cfg.primary_metrics),
        alpha=f"{1 - LEVEL:.2f}", margins=", ".join(f"{metric_info(m, higher.get(m)).label} \u00b1{cfg.equivalence_margins[m]:g}"
                                                    for m in cfg.primary_metrics),
        secondary=", ".join(metric_info(m, higher[m]).label for m in cs.secondary_metrics) or "none")
    n_utts = len(cube.utts)

    figures: list[FigureFile] = []
    with report_style(cfg.dpi):
        built = build_figures(data.convergence, summary, data.rtf, table.metrics, cfg.convergence_metrics)
        pdf_tmp = out / ".report.pdf.tmp"
        with PdfPages(pdf_tmp, metadata=SAVE_METADATA["pdf"]) as pdf:
            for page in _table_pages(table) + [_claims_page(claims, rule_text)]:
                pdf.savefig(page)
                plt.close(page)
            for key, title, caption, fig in built:
                rel = f"figures/{key}.{cfg.figure_format}"
                save_figure(fig, out / rel, cfg.figure_format)
                pdf.savefig(fig)
                plt.close(fig)
                figures.append(FigureFile(key, rel, title, caption))
        os.replace(pdf_tmp, out / "report.pdf")

    listening, listening_notes = build_listening(data, out, cfg.n_listening, cfg.listening_metrics)
    report_hash = hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True).encode()).hexdigest()[:12]
    context = {
        "title": cfg.title,
        "eval_dir": data.eval_dir.as_posix(), "sweep_dir": data.sweep_dir.as_posix(),
        "claims": claims, "claim_rule": rule_text, "regime": regime(table, summary, cfg, n_utts),
        "table": table, "mark_better": MARK_BETTER, "mark_worse": MARK_WORSE, "floor_flag": FLOOR_FLAG,
        "figures": figures, "listening": listening, "listening_notes": listening_notes,
        "provenance": build_provenance(data.provenance, data.input_files(), report_hash, data.trials),
    }
    env = _env()
    _write_text(out / "index.html", env.get_template("index.html.j2").render(**context))
    _write_text(out / "report.md", env.get_template("report.md.j2").render(**context))
