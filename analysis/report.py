"""Write the report folder: ``index.html``, ``report.md``, ``tables/*.csv``, ``figures/*``.

The study is loaded once (:class:`analysis.study.Study`) and handed to every topic of
:data:`analysis.sections.SECTIONS`. A topic that fails is never lost silently and never
loses the others: it becomes a box naming it and its error, its traceback goes to
``report.log`` in the report folder, and :func:`write_report` returns the failures (the CLI
exits 3). The page opens with at most :data:`MAX_FINDINGS` findings; per-seed and per-pair
detail sits in closed ``<details>``. Numbers format through :mod:`analysis.formatting`.
Paths are relative and the stylesheet inline, so the folder opens from disk, offline.
"""

from __future__ import annotations

import html
import itertools
import multiprocessing
import os
import re
import traceback
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits

from analysis.explore import unit_url
from analysis.formatting import column_header, format_cell, resolution_decimals
from analysis.load import AnalysisError
from analysis.sections import SECTIONS, Topic
from analysis.sections.base import Figure, Page, Section, Table
from analysis.study import Study
from sweep.kinds import KINDS

MAX_FINDINGS = 8
"""Most findings in the summary box ("What this study found")."""

FINDINGS_PER_SECTION = 2
"""Most findings one section adds to the summary box."""

LOG_NAME = "report.log"
"""The file in the report folder that holds the tracebacks of failed topics."""

_UNIT_NAMED = re.compile(
    r"unit (\d+) of layer (\d+) of ([\w.+-]+)/([\w.+-]+) seed (\d+)")
"""How the report's prose names a unit (``unit 3 of layer 1 of digits/nn_392 seed 0``)."""

READING_NOTE = (
    "An effect is the change of a network's accuracy when one neuron (or synapse, or set of "
    "units) is removed, in percentage points (pp): +1 pp is one more correct answer per 100 "
    "images. A neuron is harmful when its removal raises accuracy (effect > 0), helpful when "
    "it lowers it, neutral otherwise. Accuracies and shares are in %. A network is named "
    "dataset/model seed s, followed in brackets by the ablation mode and the split measured."
)
"""The paragraph under the title: units and names used throughout the report."""

UNIT_LINK_SCRIPT = (
    "if(location.protocol==='file:'){for(const a of document.querySelectorAll('a.unit'))"
    "{a.removeAttribute('href');}}"
)
"""Unit links only work when the explorer serves the page: opened from disk they are text."""

CONTEXT_COLUMNS: tuple[str, ...] = (
    "dataset", "model", "seed", "mode", "split", "scope", "stat_split"
)
"""Key columns a rendered table leaves out when they hold one value, named in its caption."""

STYLE = """
:root{--ink:#1f2328;--muted:#59636e;--rule:#d1d9e0;--band:#f6f8fa;--accent:#0b5cad;
--note:#fff8c5;--note-rule:#d4a72c}
*{box-sizing:border-box}
html{background:#eef1f4}
body{margin:0;color:var(--ink);font:17px/1.6 Charter,"Bitstream Charter","Iowan Old Style",
Georgia,"DejaVu Serif",serif}
main{max-width:76rem;margin:2rem auto;padding:2.5rem 2.5rem 3rem;background:#fff;
box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1,h2,h3,figcaption,nav,table,.lede,.note,.context{font-family:system-ui,-apple-system,
"Segoe UI",Roboto,"Helvetica Neue",Arial,"DejaVu Sans",sans-serif}
h1{font-size:2rem;line-height:1.2;margin:0 0 .6rem}
h2{font-size:1.35rem;margin:2.6rem 0 .8rem;padding-bottom:.3rem;border-bottom:1px solid var(--rule)}
h2 .num{color:var(--muted);margin-right:.2rem}
p,li{max-width:46rem}
.lede{color:var(--muted);font-size:.9rem;line-height:1.5}
.summary{background:#f1f6fc;border-left:4px solid var(--accent);padding:.4rem 1.4rem .8rem;
margin:1.6rem 0}
.summary h2{border:0;margin:.6rem 0 .2rem;font-size:1.15rem}
.summary li{margin:.35rem 0}
nav ol{columns:2;font-size:.95rem;padding-left:1.4rem}
a{color:var(--accent);text-decoration:none}
a:hover{text-decoration:underline}
figure{margin:1.8rem 0}
figure img{display:block;max-width:100%;height:auto}
figcaption{font-size:.88rem;line-height:1.45;color:var(--muted);max-width:52rem;margin:.6rem 0 0}
figcaption b,.note b{color:var(--ink)}
figure.table figcaption{margin:0 0 .5rem}
.context{font-style:italic}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.8rem;line-height:1.35;font-variant-numeric:tabular-nums}
th{font-weight:600;vertical-align:bottom;border-bottom:2px solid var(--ink);padding:.3rem .4rem}
td{padding:.22rem .4rem;border-bottom:1px solid var(--rule);white-space:nowrap}
th,td{text-align:left}
th.num,td.num{text-align:right}
tbody tr:nth-child(even){background:var(--band)}
.empty{font-style:italic;color:var(--muted);font-size:.9rem}
.failure{background:#ffebe9;border-left:4px solid #cf222e;padding:.5rem .9rem;font-size:.9rem}
details{margin:1rem 0}
details>summary{cursor:pointer;color:var(--accent);font-family:system-ui,sans-serif;font-size:.9rem}
.note{background:var(--note);border-left:4px solid var(--note-rule);padding:.5rem .9rem;
font-size:.88rem;line-height:1.45;max-width:none}
@media (max-width:50rem){main{margin:0;padding:1.2rem}nav ol{columns:1}}
@media print{html{background:#fff}main{box-shadow:none;margin:0;max-width:none}}
"""
"""The report's stylesheet, inline in ``index.html`` (no fonts or scripts from elsewhere)."""


# --------------------------------------------------------------------------- tables


def displayed(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The columns of a table the report prints, and a sentence naming the key columns left
    out because every row has the same value (the CSV keeps them)."""
    constant = [c for c in CONTEXT_COLUMNS
                if c in table.columns and len(table) and table[c].nunique(dropna=False) == 1]
    if len(constant) == len(table.columns):
        return table, ""
    context = ", ".join(f"{column_header(c)} {table[c].iloc[0]}" for c in constant)
    return table.drop(columns=constant), (f"In every row: {context}." if constant else "")


def _numeric(table: pd.DataFrame, column: str) -> bool:
    dtype = table[column].dtype
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _html_table(table: pd.DataFrame, decimals: int) -> str:
    classes = {c: ' class="num"' if _numeric(table, c) else "" for c in table.columns}
    head = "".join(f"<th{classes[c]}>{html.escape(column_header(c))}</th>" for c in table.columns)
    rows = [
        "<tr>" + "".join(f"<td{classes[c]}>{html.escape(format_cell(v, c, decimals))}</td>"
                         for c, v in zip(table.columns, row)) + "</tr>"
        for row in table.itertuples(index=False)
    ]
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _markdown_table(table: pd.DataFrame, decimals: int) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(cell(column_header(c)) for c in table.columns) + " |",
             "|" + "".join("---:|" if _numeric(table, c) else "---|" for c in table.columns)]
    lines += ["| " + " | ".join(cell(format_cell(v, c, decimals))
                                for c, v in zip(table.columns, row)) + " |"
              for row in table.itertuples(index=False)]
    return "\n".join(lines)


def _html_text(text: str) -> str:
    """Escaped prose with every unit it names linked to the explorer's view of it
    (:func:`analysis.explore.unit_url`; inert when the page is opened from disk)."""
    def link(match: re.Match[str]) -> str:
        unit, layer, dataset, model, seed = match.groups()
        url = unit_url(dataset, model, int(seed), int(layer), int(unit))
        return f'<a class="unit" href="{html.escape(url)}">{match.group(0)}</a>'

    return _UNIT_NAMED.sub(link, html.escape(text))


# --------------------------------------------------------------------------- rendering


def _numbered(sections: Sequence[Section]) -> Iterator[
    tuple[int, Section, list[tuple[int, str, Table]], list[tuple[int, Figure]]]
]:
    """Sections with their number, and their printed (non-empty) tables and figures with
    report-wide numbers."""
    tables, figures = itertools.count(1), itertools.count(1)
    for i, section in enumerate(sections, start=1):
        yield (i, section,
               [(next(tables), name, table) for name, table in section.tables.items()
                if len(table.frame)],
               [(next(figures), figure) for figure in section.figures])


def findings(sections: Sequence[Section]) -> list[str]:
    """The summary box: at most :data:`FINDINGS_PER_SECTION` findings of each section, at
    most :data:`MAX_FINDINGS` in all, in section order."""
    lines = [line for s in sections for line in s.summary[:FINDINGS_PER_SECTION]]
    return lines[:MAX_FINDINGS]


def render_markdown(title: str, sections: Sequence[Section], page: Page) -> str:
    """The report as Markdown, figure and CSV links relative to the report folder."""
    parts = [f"# {title}", READING_NOTE]
    summary = findings(sections)
    if summary:
        parts.append("## What this study found\n\n" + "\n".join(f"- {line}" for line in summary))
    for i, section, tables, figures in _numbered(sections):
        parts.append(f"## {i}. {section.title}")
        if section.failure:
            parts.append(f"> **This section failed:** {section.failure} (traceback in {LOG_NAME})")
        parts += section.paragraphs
        for n, name, table in tables:
            frame, context = displayed(table.frame)
            caption = " ".join(filter(None, [f"**Table {n}.** {table.caption}", context]))
            parts.append(f"{caption} ([CSV](tables/{name}.csv))")
            parts.append(_markdown_table(frame, page.decimals))
            if table.note:
                parts.append(f"> **Note.** {table.note}")
        for n, figure in figures:
            parts.append(f"![Figure {n}]({figure.path.relative_to(page.out_dir).as_posix()})\n\n"
                         f"**Figure {n}.** {figure.caption}")
    return "\n\n".join(parts) + "\n"


def _html_figure(n: int, figure: Figure, page: Page) -> str:
    esc = html.escape
    png = figure.path.relative_to(page.out_dir).as_posix()
    image = f'<img src="{esc(png)}" alt="Figure {n}">'
    svg = figure.path.with_suffix(".svg")
    if svg.exists():
        image = f'<a href="{esc(svg.relative_to(page.out_dir).as_posix())}">{image}</a>'
    return (f'<figure id="figure-{n}">{image}<figcaption><b>Figure {n}.</b> '
            f"{_html_text(figure.caption)}</figcaption></figure>")


def _html_table_block(n: int, name: str, table: Table, page: Page) -> str:
    esc = html.escape
    frame, context = displayed(table.frame)
    caption = (f"<b>Table {n}.</b> {_html_text(table.caption)}"
               + (f' <span class="context">{esc(context)}</span>' if context else "")
               + f' <a href="tables/{esc(name)}.csv">CSV</a>')
    body = (_html_table(frame, page.decimals)
            + (f'<p class="note"><b>Note.</b> {esc(table.note)}</p>' if table.note else ""))
    if table.collapsed:
        return (f'<details class="table" id="table-{n}"><summary>Table {n}: {esc(table.caption)}'
                f'</summary><figure class="table"><figcaption>{caption}</figcaption>{body}'
                "</figure></details>")
    return (f'<figure class="table" id="table-{n}"><figcaption>{caption}</figcaption>{body}'
            "</figure>")


def render_html(title: str, sections: Sequence[Section], page: Page) -> str:
    """The report as a standalone HTML page, figure and CSV links relative to the folder."""
    esc = html.escape
    body = [f"<header><h1>{esc(title)}</h1>", f'<p class="lede">{esc(READING_NOTE)}</p></header>']
    summary = findings(sections)
    if summary:
        body.append('<section class="summary"><h2>What this study found</h2><ul>'
                    + "".join(f"<li>{_html_text(line)}</li>" for line in summary)
                    + "</ul></section>")
    body.append("<nav><h2>Contents</h2><ol>"
                + "".join(f'<li><a href="#s{i}">{esc(s.title)}</a>'
                          + (" (failed)" if s.failure else "") + "</li>"
                          for i, s in enumerate(sections, start=1)) + "</ol></nav>")
    for i, section, tables, figures in _numbered(sections):
        body.append(f'<section id="s{i}"><h2><span class="num">{i}</span> '
                    f"{esc(section.title)}</h2>")
        if section.failure:
            body.append(f'<p class="failure"><b>This section failed:</b> {esc(section.failure)} '
                        f'(the traceback is in <a href="{LOG_NAME}">{LOG_NAME}</a>).</p>')
        body += [f"<p>{_html_text(p)}</p>" for p in section.paragraphs]
        body += [_html_table_block(n, name, table, page) for n, name, table in tables]
        shown = [_html_figure(n, f, page) for n, f in figures if not f.collapsed]
        hidden = [(n, f) for n, f in figures if f.collapsed]
        body += shown
        if hidden:
            span = f"{hidden[0][0]}" + (f"-{hidden[-1][0]}" if len(hidden) > 1 else "")
            body.append(f"<details><summary>Figure{'s' if len(hidden) > 1 else ''} {span}: "
                        f"{len(hidden)} more (per network)</summary>"
                        + "".join(_html_figure(n, f, page) for n, f in hidden) + "</details>")
        body.append("</section>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body><main>\n"
            + "\n".join(body) + f"\n</main><script>{UNIT_LINK_SCRIPT}</script></body></html>\n")


# --------------------------------------------------------------------------- building


@dataclass(frozen=True)
class ReportResult:
    """What :func:`write_report` wrote.

    Attributes
    ----------
    index : Path — ``index.html``
    failures : list of (topic name, error line) — topics that raised; empty when all built
    """

    index: Path
    failures: list[tuple[str, str]]


def _decimals(study: Study) -> int:
    """Decimals of pp and % values: those resolving one image of the largest test split."""
    for kind in ("neuron", "synapse", "cumulative", "pair", "pruning"):
        rows = study.rows(kind, "test") if study.has(kind) else pd.DataFrame()
        if "n_samples" in rows.columns and len(rows):
            return resolution_decimals(int(rows["n_samples"].max()))
    return resolution_decimals(None)


Built = tuple[list[Section], str]
"""A topic's sections and, when it failed, its traceback (else "")."""


def _build(topic: Topic, study: Study, page: Page) -> Built:
    """The topic's sections, or one failure box naming its error and the traceback."""
    try:
        with threadpool_limits(limits=1):  # small matrices: one BLAS thread each, topics in parallel
            return topic.build(study, page), ""
    except Exception as error:  # noqa: BLE001 — a failing topic must not lose the others
        line = f"{type(error).__name__}: {error}".splitlines()[0]
        return [Section(topic.title, failure=line)], traceback.format_exc()


_FORKED: tuple[Sequence[Topic], Study, Page] | None = None
"""What forked workers build from (set just before the pool forks; never pickled)."""


def _build_forked(index: int) -> Built:
    topics, study, page = _FORKED
    return _build(topics[index], study, page)


def _build_all(topics: Sequence[Topic], study: Study, page: Page, jobs: int) -> list[Built]:
    """Every topic, in ``jobs`` forked processes when the platform forks (rows read once in
    this process first, so the workers only compute and draw), else one after the other."""
    global _FORKED
    if jobs < 2 or len(topics) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [_build(topic, study, page) for topic in topics]
    for kind in KINDS:
        study.rows(kind)
    _FORKED = (topics, study, page)
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            return list(pool.map(_build_forked, range(len(topics))))
    finally:
        _FORKED = None


def write_report(
    results: str | os.PathLike[str] | Study,
    study: str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    topics: Sequence[Topic] | None = None,
    *,
    svg: bool = False,
    jobs: int = 1,
) -> ReportResult:
    """Build every topic's sections and write the report folder; a failing topic becomes a
    box naming it and its error, and is listed in the result.

    Parameters
    ----------
    results : path or URI of the results root, or an opened :class:`Study`
    study : str, optional — see :func:`analysis.load.resolve_study`
    out_dir : path, optional — default ``reports/<study>`` in the working directory
    topics : sequence of Topic, optional — default :data:`analysis.sections.SECTIONS`
    svg : bool — also write every figure as SVG (PNG only by default)
    jobs : int — topics built at once, each in a forked process (1: in this process)

    Returns
    -------
    ReportResult

    Raises
    ------
    AnalysisError
        If the study cannot be resolved or no topic produces a section.
    """
    opened = results if isinstance(results, Study) else Study.open(results, study, check=False)
    out = Path(out_dir if out_dir is not None else Path("reports") / opened.name).resolve()
    (out / "tables").mkdir(parents=True, exist_ok=True)
    page = Page(out, _decimals(opened), svg)
    chosen = list(SECTIONS if topics is None else topics)
    built = _build_all(chosen, opened, page, jobs)
    failures = [(topic.name, made[0].failure) for topic, (made, _) in zip(chosen, built)
                if len(made) == 1 and made[0].failure]
    (out / LOG_NAME).unlink(missing_ok=True)
    if failures:
        (out / LOG_NAME).write_text("".join(
            f"section {topic.name!r} failed: {made[0].failure}\n{trace}\n"
            for topic, (made, trace) in zip(chosen, built) if trace), encoding="utf-8")
    sections = [section for made, _ in built for section in made]
    if not sections:
        raise AnalysisError(f"study {opened.name!r} in {opened.root!r} has no results to report")
    for section in sections:
        for name, table in section.tables.items():
            table.frame.to_csv(out / "tables" / f"{name}.csv", index=False)
    title = f"Ablation study {opened.name}"
    (out / "report.md").write_text(render_markdown(title, sections, page), encoding="utf-8")
    index = out / "index.html"
    index.write_text(render_html(title, sections, page), encoding="utf-8")
    return ReportResult(index, failures)
