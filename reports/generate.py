"""Build reports/out: index.html, report.md, report.pdf, figures/ and audio/ from the pipeline outputs.

A report has one section per family (registry.FAMILIES): the vocoder's (runs/eval, runs/sweep) always,
the acoustic model's (runs/acoustic/eval, runs/acoustic/sweep) when given. Both are built by the same
functions (_section: the cube, the one rule, the results table, the claims, the figures, the listening
examples), parametrised by the family's settings (ReportConfig.family) and registry pairs.

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
from typing import Any

import jinja2
import pandas as pd
import matplotlib.pyplot as plt
from matplotlib.backends.backend_pdf import PdfPages

from eval.aggregate import SYSTEM_LABELS, aggregate, build_cube
from priorgrad.core import registry
from reports.claims import CLAIM_RULE, ClaimSettings, evaluate_claims
from reports.config import LEVEL, FamilyReport, ReportConfig
from reports.figures import SAVE_METADATA, FigureFile, build_figures, report_style, save_figure, text_table_figure
from reports.inputs import RunData, load_runs
from reports.listening import build_listening
from reports.provenance import build_provenance
from reports.metrics_info import metric_info
from reports.tables import (FLOOR_FLAG, MARK_BETTER, MARK_WORSE, PAIR_MARKS, ResultsTable, build_results_table,
                            fmt_params)

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


def _marks_note(table: ResultsTable) -> str:
    """The results table's marker legend, one clause per pair of the family."""
    parts = []
    for (better, worse), (a, b) in zip(PAIR_MARKS, table.pairs):
        parts.append(f"{better} / {worse}: {SYSTEM_LABELS[a]} significantly better / worse than {SYSTEM_LABELS[b]}")
    return "; ".join(parts)


def _table_pages(table: ResultsTable, title: str = "Results") -> list[plt.Figure]:
    header = ["system", "size", "steps", "T", "seeds"] + [m.heading for m in table.metrics]
    rows, bold = [], []
    for r in table.rows:
        label = r.system_label + (" \u2020" if r.flags else "")
        setting = ([label, "-", "-", "-"] if r.is_floor else
                   [label, f"{r.size} ({r.params_label})", str(r.budget), str(r.t_infer)])
        rows.append(setting + [str(r.n_seeds)] + [c.text + "".join(f" {m}" for m in [c.marker, *c.other_markers] if m)
                                                  for c in r.cells])
        bold.append([False] * 5 + [c.best for c in r.cells])
    widths = [0.14, 0.1, 0.05, 0.03, 0.04] + [0.64 / max(1, len(table.metrics))] * len(table.metrics)
    pages = []
    n_pages = max(1, -(-len(rows) // PDF_ROWS_PER_PAGE))
    for p in range(n_pages):
        sl = slice(p * PDF_ROWS_PER_PAGE, (p + 1) * PDF_ROWS_PER_PAGE)
        pages.append(text_table_figure(
            f"{title}: mean \u00b1 95% CI half-width (page {p + 1} of {n_pages})", header, rows[sl], bold[sl], widths,
            notes=[f"Bold: best in column. {_marks_note(table)} at the same setting (judged comparison, its own 95% "
                   f"two-level CI excludes 0, estimate beyond the equivalence margin; uncorrected, does not vote). "
                   f"\u2020: {table.floor_flag} on a primary "
                   "metric."]))
    return pages


def _claims_page(claims: list, rule: str, title: str = "The paper's claims in these runs") -> plt.Figure:
    import textwrap
    rows = [[textwrap.fill(c.title, 38), textwrap.fill(c.verdict_text, 16), textwrap.fill(c.reason[:400], 70),
             textwrap.fill(c.scope, 40)]
            for c in claims]
    fig = text_table_figure(title, ["claim", "verdict", "evidence", "scope"], rows,
                            col_widths=[0.25, 0.09, 0.42, 0.24], notes=[textwrap.fill(rule, 180)])
    for ax in fig.axes:
        for (i, _), cell in ax.tables[0].get_celld().items():
            if i > 0:
                cell.set_height(cell.get_height() * 3.2)
    return fig


def generate(eval_dir: Path, sweep_dir: Path, cfg: ReportConfig, out_dir: Path,
             acoustic_eval: Path | None = None, acoustic_sweep: Path | None = None) -> Path:
    """Write the report to out_dir (replacing it); returns the path of index.html. With acoustic_eval and
    acoustic_sweep (both or neither) it has the acoustic model's section too."""
    if (acoustic_eval is None) != (acoustic_sweep is None):
        raise ValueError("the acoustic section needs both --acoustic-eval and --acoustic-sweep (got only "
                         f"{'--acoustic-eval' if acoustic_sweep is None else '--acoustic-sweep'})")
    data: RunData = load_runs(eval_dir, sweep_dir)
    acoustic = load_runs(acoustic_eval, acoustic_sweep, family="acoustic") if acoustic_eval is not None else None
    if acoustic is not None and cfg.acoustic is None:
        raise ValueError("acoustic runs given but the report config has no acoustic_report: section")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    (stage / "figures").mkdir(parents=True)
    try:
        _build(data, cfg, stage, acoustic)
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


def regime(table: ResultsTable, data_summary, cfg: ReportConfig | FamilyReport, n_utts: int,
           family: str = "vocoder") -> list[str]:
    """The top of a section: what was run, in plain words, and whether any system beats its floor."""
    from reports.tables import models, size_order

    m = models(data_summary)
    sizes = size_order(data_summary)
    n_params = m.groupby("size")["n_params"].max()
    seeds = m.groupby("system")["n_seeds"].max()
    order = {s: i for i, s in enumerate(registry.system_names(family))}
    nets = "Networks" if family == "vocoder" else "Acoustic model sizes"
    lines = [
        f"{nets}: {', '.join(f'{s} ({fmt_params(int(n_params[s]))} parameters)' for s in sizes)}. "
        f"Training steps (checkpoints of one run per seed): {sorted(int(b) for b in m['budget'].unique())}. "
        f"Seeds per system: {', '.join(f'{SYSTEM_LABELS.get(k, k)} {int(v)}' for k, v in sorted(seeds.items(), key=lambda kv: (order.get(kv[0], 9), kv[0])))}. "
        f"T_infer: {sorted(int(t) for t in m['t_infer'].unique())}. Test utterances: {n_utts}. "
        f"Primary metrics (they decide the verdicts): "
        f"{', '.join(metric_info(k, bool(m.loc[m['metric'] == k, 'higher_is_better'].iloc[0]) if k in set(m['metric']) else None).label for k in cfg.primary_metrics)}.",
    ]
    n_models = len([r for r in table.rows if not r.is_floor])
    flag = table.floor_flag
    if family == "vocoder":
        floor, what, outcome = ("their own prior's noise (the prior sample scored without denoising)",
                                "its own prior's noise",
                                "these networks do not yet produce better audio than the noise they start from, so the "
                                "claims below compare systems in that regime, not trained vocoders.")
        none_scored = ("No prior-noise floor was scored (scores.csv has no prior_noise rows), so nothing here says "
                       "whether these systems do better than the noise they start from.")
        what_nj = "its prior-noise floor"
    else:
        floor, what, outcome = ("their floor (their own prior draw: mu_ph + s_ph n, learned mean + n, n; no decoder)",
                                "its floor (its own prior draw)",
                                "these decoders do not yet produce better mels than the prior draws they start "
                                "from, so the acoustic claims below compare systems in that regime, not trained "
                                "acoustic models. The CPU default is too short for that; the cpu-long profile "
                                "(`dvc exp run -S profile=cpu-long`: a wider decoder, tiny_c256, to 400 steps, "
                                "sampled under the searched protocol) was run once end to end (its report: "
                                "reports/results/cpu-long/, 1 h 42 min on a shared 2-core machine): there PriorGrad-AM "
                                "passes its floor on E1 mel CD at 5 of its 6 settings, B2 at 3 (every T at 400 "
                                "steps), B1 at 1 (400 steps, T=2), and no system passes its floor on E1 PESQ-WB.")
        none_scored = ("No prior-draw floor was scored (scores.csv has no prior_noise rows), so nothing here says "
                       "whether these systems do better than the prior draws they start from.")
        what_nj = what
    if table.floor_beaten:
        lines.append(f"{len(table.floor_beaten)} of {n_models} system settings beat {floor} on every primary metric; "
                     f"{len(table.floor_not_beaten)} do not ({flag}, marked \u2020), "
                     f"{len(table.floor_not_judged)} are not judged.")
    elif table.floor_not_beaten:
        lines.append(f"No system beats {what} on every primary metric ({len(table.floor_not_beaten)} "
                     f"of {n_models} settings are {flag}, marked \u2020; {len(table.floor_not_judged)} not "
                     f"judged): {outcome}")
    elif not any(r.is_floor and not r.is_reference for r in table.rows):
        lines.append(none_scored)
    else:
        lines.append(f"Whether any system beats {what_nj} is not judged here: the comparisons of all "
                     f"{len(table.floor_not_judged)} system settings with their floors break the rule (too few seeds "
                     "or utterances).")
    return lines


# what the floor rows of each family's results table are (the vocoder's sentence keeps its line break)
FLOOR_NOTES = {
    "vocoder": "The prior-noise rows score each prior's own sample\nwithout denoising (the floor a vocoder must beat).",
    "acoustic": "The floor rows score each system's own prior draw (mu_ph + s_ph n for PriorGrad-AM, the learned mean + "
                "n for B2, n for B1; draw 0 is the x_S its sampler starts from): what each acoustic model must beat. "
                "The mean (regression) reference row scores mu alone (the phoneme means over the ground-truth "
                "durations): L1 and cepstral distances favour a mean over any sampler, so it is shown, never a floor.",
}
ACOUSTIC_TITLE = "PriorGrad-AM (phoneme prior) against B1 (N(0, I)) and B2 (trainable prior)"
ACOUSTIC_INTRO = (
    "The acoustic model (text to mel) with PriorGrad's phoneme-level prior N(mu_ph, diag(s_ph^2)) against the same "
    "decoder with the standard prior N(0, I) (B1) and with a trainable prior (B2), scored in the mel domain and, "
    "vocoded, against vocoder(ground-truth mel) and against the recording. Metric names carry the synthesis "
    "condition (E1: ground-truth durations, f0 and energy; E2: ground-truth durations, predicted f0 and energy). "
    "Claims 1-4 compare PriorGrad-AM with B1, claim 5 with B2, by the same rule as the vocoder's.")
PROTOCOL_WORDS = {
    "strided": "the strided protocol (every schedule starts at t = 399, where each prior's start lies ~0 noise SDs "
               "from where the data's x_t lie: neutral between priors, harsher than the official code)",
    "official": "the official protocol (the official code's 6-step config betas, start t~ = 197)",
    "searched": "the searched protocol (the official grid search per model on a held-out validation utterance, "
                "starts t~ 57-315)",
    "uniform": "uniformly strided schedules (start t = 399)",
}


def acoustic_protocol_note(provenance: dict[str, Any]) -> str:
    """One sentence on the few-step protocol of these numbers and what the protocols' difference means."""
    ac = provenance.get("acoustic") or {}
    kind = str(ac.get("schedule", "strided"))
    clip = ac.get("clip_x0")
    clip_words = {"data_range": "; the sampler clips its x0 estimate to the training mels' range",
                  "none": "; no x0 clip (the official sampler)"}.get(str(clip), "")
    return (f"Sampling steps T_infer use {PROTOCOL_WORDS.get(kind, kind)}{clip_words}. The protocol matters for "
            "claim 3: the official code's late starts (t~ 57-315) begin B1 (prior mean 0) about 2.6 noise SDs "
            "from the data while PriorGrad-AM starts at the phoneme means, so a few-step advantage under the "
            "official or searched protocol mixes the prior's benefit with that start mismatch; the strided "
            "protocol has none (docs/acoustic-model.md).")


CONDITION_WORDS = {"E1": "ground-truth durations, f0 and energy", "E2": "ground-truth durations, predicted f0 and "
                   "energy", "E3": "durations, f0 and energy all predicted"}   # spec priorgrad-acoustic.md section 11
SECTION_TITLES = {"vocoder": "The paper's claims in these runs",
                  "acoustic": "Acoustic model: the paper's claims in these runs"}


@dataclasses.dataclass
class Section:
    """One family's part of the report: everything its templates and PDF pages show."""
    family: str
    data: RunData
    fcfg: FamilyReport
    summary: pd.DataFrame
    table: ResultsTable
    claims: list
    claim_rule: str
    regime: list[str]
    figures: list[FigureFile] = dataclasses.field(default_factory=list)
    listening: list = dataclasses.field(default_factory=list)
    listening_notes: list[str] = dataclasses.field(default_factory=list)
    # (anchor prefix, heading, table) per synthesis condition (acoustic); the vocoder has one, `table`
    tables: list[tuple[str, str, ResultsTable]] = dataclasses.field(default_factory=list)

    @property
    def systems(self) -> list[tuple[str, str]]:
        """(system, label) in table order: the listening section's columns."""
        return [(s, SYSTEM_LABELS[s]) for s in self.data.systems_run]

    @property
    def versus(self) -> str:
        """The section's heading pair, 'PriorGrad vs DiffWave', naming further systems that were run
        ('(and SpecGrad)') so the heading does not hide a claim about them."""
        head = self.table.pairs[0] if self.table.pairs else registry.comparisons(self.family)[0]
        others = [SYSTEM_LABELS[s] for s in self.data.systems_run if s not in head]
        return (f"{SYSTEM_LABELS[head[0]]} vs {SYSTEM_LABELS[head[1]]}"
                + (f" (and {', '.join(others)})" if others else ""))

    @property
    def marks(self) -> list[tuple[str, str, str, str]]:
        """(better mark, worse mark, treatment label, baseline label) per pair, for the table's legend."""
        return [(b, w, SYSTEM_LABELS[t], SYSTEM_LABELS[base]) for (b, w), (t, base) in zip(PAIR_MARKS, self.table.pairs)]

    def verdicts(self) -> str:
        """The claims' verdicts in one line (the report's top summary)."""
        return "; ".join(f"{i + 1}. {c.title.split(':')[0]}: {c.verdict_text}" for i, c in enumerate(self.claims))

    def held_back(self) -> str:
        """Per claim, what kept it from a verdict, so a reader sees what a bigger run would need."""
        need = {"too few seeds": "more training seeds per system (report.min_seeds)",
                "too few utterances": "more test utterances (report.claim_min_n)",
                "one size": "a second network size", "one training budget": "a ladder of training budgets",
                "no few-step schedule": "a few-step T_infer run", "at floor": "systems that beat their own floor",
                "negligible": "nothing: the difference is real but inside the equivalence margin",
                "CI too wide": "more seeds or utterances (narrower CIs)"}
        parts = []
        for i, c in enumerate(self.claims):
            if c.verdict in ("supported", "refuted") or not c.held_back:
                continue
            words = ", ".join(c.held_back)
            parts.append(f"{i + 1}. {c.title.split(':')[0]}: {words} (needs {'; '.join(need.get(h, h) for h in c.held_back)})")
        if not parts:
            return ""
        return "What kept each claim from a verdict: " + "; ".join(parts) + "."


def _section(data: RunData, fcfg: FamilyReport, rule) -> Section:
    """The cube, the one rule's summary and comparisons, the results table, the claims and the regime of one family."""
    from reports.tables import metric_directions

    family = data.family
    higher = metric_directions(data.summary)
    cube = build_cube(data.scores, higher)
    # the summary and comparisons are recomputed from the scores with this report's rule (the same code
    # the evaluate stage ran), so the page and its rule cannot disagree
    summary_rows, comparison_rows = aggregate(cube, higher, rule, family=family)
    summary, comparisons = pd.DataFrame(summary_rows), pd.DataFrame(comparison_rows)
    table = build_results_table(summary, comparisons, fcfg.metrics, fcfg.primary_metrics, family=family)
    conv_metric = next((m for m in fcfg.convergence_metrics
                        if m in set(data.convergence["metric"].str.removeprefix("valid/"))), None)
    shown = [i.key for i in table.metrics]
    cs = ClaimSettings(primary_metrics=list(fcfg.primary_metrics),
                       secondary_metrics=[m for m in shown if m not in fcfg.primary_metrics],
                       few_steps=list(fcfg.few_steps), margins=dict(fcfg.equivalence_margins), rule=rule,
                       family=family)
    claims = evaluate_claims(cube, cs, comparisons, data.convergence, conv_metric)
    treatment, baseline = registry.comparisons(family)[0]
    # the further pairs' claims (acoustic: vs B2; vocoder: SpecGrad - PriorGrad, only when SpecGrad was run)
    others = [(t, b) for t, b in table.pairs[1:] if any(c.pair == (t, b) for c in claims)]
    base_words = SYSTEM_LABELS[baseline] + "".join(
        f" ({SYSTEM_LABELS[b]} in the claim that names it)" if t == treatment else
        f" ({SYSTEM_LABELS[t]} and {SYSTEM_LABELS[b]} in the claim that names them)" for t, b in others)
    rule_text = CLAIM_RULE.format(
        rule_text=rule.text(), primary=", ".join(metric_info(m, higher.get(m)).label for m in fcfg.primary_metrics),
        alpha=f"{1 - LEVEL:.2f}", margins=", ".join(f"{metric_info(m, higher.get(m)).label} \u00b1{fcfg.equivalence_margins[m]:g}"
                                                    for m in fcfg.primary_metrics),
        secondary=", ".join(metric_info(m, higher[m]).label for m in cs.secondary_metrics) or "none",
        treatment=SYSTEM_LABELS[treatment], baseline=base_words)
    sec = Section(family, data, fcfg, summary, table, claims, rule_text,
                  regime(table, summary, fcfg, len(cube.utts), family))
    sec.tables = [("", "Results", table)] if family == "vocoder" else _condition_tables(summary, comparisons, fcfg)
    return sec


def _condition_tables(summary: pd.DataFrame, comparisons: pd.DataFrame, fcfg: FamilyReport
                      ) -> list[tuple[str, str, ResultsTable]]:
    """One results table per synthesis condition (acoustic_report.metrics grouped by their condition, in
    order), each with its floor rows; the floor flags follow every primary metric, as in the full table."""
    from eval.contract import split_metric
    from reports.tables import metric_directions

    scored = metric_directions(summary)
    conditions: dict[str, list[str]] = {}
    for m in fcfg.metrics:
        if m in scored:
            conditions.setdefault(split_metric(m)[0], []).append(m)
    out = []
    for i, (cond, metrics) in enumerate(conditions.items()):
        words = CONDITION_WORDS.get(cond, cond)
        out.append(("acoustic-" if i == 0 else f"acoustic-{cond}-", f"Acoustic model: results, {cond} ({words})",
                    build_results_table(summary, comparisons, metrics, fcfg.primary_metrics, family="acoustic")))
    return out


def _build(data: RunData, cfg: ReportConfig, out: Path, acoustic: RunData | None = None) -> None:
    sections = [_section(data, cfg.family("vocoder"), cfg.rule("vocoder"))]
    if acoustic is not None:
        sections.append(_section(acoustic, cfg.family("acoustic"), cfg.rule("acoustic")))

    with report_style(cfg.dpi):
        pdf_tmp = out / ".report.pdf.tmp"
        with PdfPages(pdf_tmp, metadata=SAVE_METADATA["pdf"]) as pdf:
            for sec in sections:
                voc = sec.family == "vocoder"
                built = build_figures(sec.data.convergence, sec.summary, sec.data.rtf, sec.table.metrics,
                                      sec.fcfg.convergence_metrics, family=sec.family)
                pages = [page for _, heading, table in sec.tables for page in _table_pages(table, heading)] + \
                    [_claims_page(sec.claims, sec.claim_rule, SECTION_TITLES[sec.family])]
                for page in pages:
                    pdf.savefig(page)
                    plt.close(page)
                for key, title, caption, fig in built:
                    rel = f"figures/{key}.{cfg.figure_format}"
                    save_figure(fig, out / rel, cfg.figure_format)
                    pdf.savefig(fig)
                    plt.close(fig)
                    sec.figures.append(FigureFile(key, rel, title, caption))
        os.replace(pdf_tmp, out / "report.pdf")

    for sec in sections:
        sec.listening, sec.listening_notes = build_listening(
            sec.data, out, sec.fcfg.n_listening, sec.fcfg.listening_metrics,
            "audio" if sec.family == "vocoder" else f"audio/{sec.family}")
    hashed = dataclasses.asdict(cfg)
    if acoustic is None:   # a vocoder-only report does not depend on acoustic_report:
        hashed.pop("acoustic", None)
    report_hash = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:12]
    voc = sections[0]
    inputs = data.input_files() + (acoustic.input_files() if acoustic is not None else [])
    context = {
        "title": cfg.title,
        "eval_dir": data.eval_dir.as_posix(), "sweep_dir": data.sweep_dir.as_posix(),
        "claims": voc.claims, "claim_rule": voc.claim_rule, "regime": voc.regime,
        "table": voc.table, "mark_better": MARK_BETTER, "mark_worse": MARK_WORSE, "floor_flag": FLOOR_FLAG,
        "figures": voc.figures, "listening": voc.listening, "listening_notes": voc.listening_notes,
        "vocoder": voc, "acoustic": sections[1] if acoustic is not None else None,
        "worse_marks": [w for _, w in PAIR_MARKS], "vocoder_floor_note": FLOOR_NOTES["vocoder"],
        "vocoder_floor_note_md": FLOOR_NOTES["vocoder"].replace("sample\nwithout ", "sample without\n"),
        "acoustic_floor_note": FLOOR_NOTES["acoustic"], "acoustic_title": ACOUSTIC_TITLE,
        "acoustic_intro": ACOUSTIC_INTRO + (" " + acoustic_protocol_note(acoustic.provenance)
                                            if acoustic is not None else ""),
        "provenance": build_provenance(data.provenance, inputs, report_hash, data.trials,
                                       acoustic.provenance if acoustic is not None else None,
                                       acoustic.trials if acoustic is not None else None),
    }
    env = _env()
    _write_text(out / "index.html", env.get_template("index.html.j2").render(**context))
    _write_text(out / "report.md", env.get_template("report.md.j2").render(**context))
