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
import matplotlib.pyplot as plt
from matplotlib.backends.backend_pdf import PdfPages

from reports.claims import evaluate_claims
from reports.config import ReportConfig
from reports.figures import SAVE_METADATA, FigureFile, build_figures, report_style, save_figure, text_table_figure
from reports.inputs import RunData, load_runs
from reports.listening import build_listening
from reports.provenance import build_provenance
from reports.tables import MARK_BETTER, MARK_WORSE, ResultsTable, build_results_table

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
CLAIM_RULE = ("Each claim is judged on paired comparisons PriorGrad - DiffWave (same utterances, equal size, "
              "training steps and T_infer). A comparison counts only when its 95% CI excludes 0. Supported: at "
              "least {pct:.0f}% of the comparisons (and at least one) favour PriorGrad and none favour DiffWave; "
              "refuted: the mirror image; inconclusive: otherwise. Comparisons over fewer than {min_n} utterances "
              "are not judged (a bootstrap CI over so few is too narrow). No multiple-comparison correction.")
PDF_ROWS_PER_PAGE = 26


def _md_escape(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                             autoescape=jinja2.select_autoescape(["html.j2"]), trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["md"] = _md_escape
    return env


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)


def _table_pages(table: ResultsTable) -> list[plt.Figure]:
    header = ["system", "size", "steps", "T"] + [m.heading for m in table.metrics]
    rows, bold = [], []
    for r in table.rows:
        rows.append([r.system_label, f"{r.size} ({r.params_label})", str(r.budget), str(r.t_infer)] +
                    [c.text + (f" {c.marker}" if c.marker else "") for c in r.cells])
        bold.append([False] * 4 + [c.best for c in r.cells])
    widths = [0.08, 0.11, 0.06, 0.04] + [0.71 / max(1, len(table.metrics))] * len(table.metrics)
    pages = []
    n_pages = max(1, -(-len(rows) // PDF_ROWS_PER_PAGE))
    for p in range(n_pages):
        sl = slice(p * PDF_ROWS_PER_PAGE, (p + 1) * PDF_ROWS_PER_PAGE)
        pages.append(text_table_figure(
            f"Results: mean \u00b1 95% CI half-width (page {p + 1} of {n_pages})", header, rows[sl], bold[sl], widths,
            notes=[f"Bold: best in column. {MARK_BETTER} / {MARK_WORSE}: PriorGrad significantly better / worse than "
                   "DiffWave at the same setting (paired 95% CI excludes 0)."]))
    return pages


def _claims_page(claims: list, rule: str) -> plt.Figure:
    import textwrap
    rows = [[textwrap.fill(c.title, 38), c.verdict, textwrap.fill(c.reason, 70), textwrap.fill(c.scope, 40)]
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


def _build(data: RunData, cfg: ReportConfig, out: Path) -> None:
    table = build_results_table(data.summary, data.comparisons, cfg.metrics)
    claim_metrics = [m for m in (cfg.claim_metrics or cfg.metrics) if m in {i.key for i in table.metrics}]
    conv_metric = next((m for m in cfg.convergence_metrics
                        if m in set(data.convergence["metric"].str.removeprefix("valid/"))), None)
    claims = evaluate_claims(data.comparisons, data.summary, data.convergence, claim_metrics or cfg.metrics,
                             cfg.few_steps, cfg.claim_min_fraction, conv_metric, cfg.claim_min_n)

    figures: list[FigureFile] = []
    with report_style(cfg.dpi):
        built = build_figures(data.convergence, data.summary, data.rtf, table.metrics, cfg.convergence_metrics)
        pdf_tmp = out / ".report.pdf.tmp"
        with PdfPages(pdf_tmp, metadata=SAVE_METADATA["pdf"]) as pdf:
            rule = CLAIM_RULE.format(pct=100 * cfg.claim_min_fraction, min_n=cfg.claim_min_n)
            for page in _table_pages(table) + [_claims_page(claims, rule)]:
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
        "claims": claims, "claim_rule": CLAIM_RULE.format(pct=100 * cfg.claim_min_fraction, min_n=cfg.claim_min_n),
        "table": table, "mark_better": MARK_BETTER, "mark_worse": MARK_WORSE,
        "figures": figures, "listening": listening, "listening_notes": listening_notes,
        "provenance": build_provenance(data.provenance, data.input_files(), report_hash, data.trials),
    }
    env = _env()
    _write_text(out / "index.html", env.get_template("index.html.j2").render(**context))
    _write_text(out / "report.md", env.get_template("report.md.j2").render(**context))
