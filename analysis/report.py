"""Write the report folder: ``index.html``, ``report.md``, ``tables/*.csv``, ``figures/*``.

Sections come from the builders in :data:`SECTION_BUILDERS` (each
``(results_root, study, out_dir) -> list[Section]``); another module adds its own by
appending to that list. The report opens with the sections' headline findings ("What this
study found"), numbers sections, tables and figures, and prints each table's and figure's
caption. Paths in the HTML and Markdown are relative and the stylesheet is inline, so the
folder opens in a browser from disk, offline.
"""

from __future__ import annotations

import html
import itertools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from analysis import cumulative, pairs_report, pruning_report, reproductions
from analysis.load import AnalysisError, resolve_study
from analysis.sections import (
    Figure,
    Section,
    SectionBuilder,
    Table,
    harmful_neuron_sections,
    impact_sections,
    pruning_sections,
    stability_sections,
)

SECTION_BUILDERS: list[SectionBuilder] = [
    reproductions.report_sections,
    impact_sections,
    stability_sections,
    harmful_neuron_sections,
    pruning_sections,
    cumulative.report_sections,
    pruning_report.report_sections,
    pairs_report.report_sections,
]
"""Builders run in order by :func:`write_report`."""

READING_NOTE = (
    "An effect is the change of a network's accuracy when one neuron (or synapse, or set of "
    "units) is removed, in percentage points (pp): +1 pp is one more correct answer per 100 "
    "images. A neuron is harmful when its removal raises accuracy (effect > 0), helpful when "
    "it lowers it, neutral otherwise. Accuracies and shares are in %. A network is named "
    "dataset/model seed s, followed in brackets by the ablation mode and the split measured."
)
"""The paragraph under the title: units and names used throughout the report."""

CONTEXT_COLUMNS: tuple[str, ...] = (
    "dataset", "model", "seed", "mode", "split", "scope", "stat_split"
)
"""Key columns a rendered table leaves out when they hold one value, named in its caption."""

MISSING = "–"
"""How an empty cell (NaN, <NA>) is printed."""

STYLE = """
:root{--ink:#1f2328;--muted:#59636e;--rule:#d1d9e0;--band:#f6f8fa;--accent:#0b5cad;
--note:#fff8c5;--note-rule:#d4a72c}
*{box-sizing:border-box}
html{background:#eef1f4}
body{margin:0;color:var(--ink);font:17px/1.6 Charter,"Bitstream Charter","Iowan Old Style",
Georgia,"DejaVu Serif",serif}
main{max-width:64rem;margin:2rem auto;padding:2.5rem 2.5rem 3rem;background:#fff;
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
.note{background:var(--note);border-left:4px solid var(--note-rule);padding:.5rem .9rem;
font-size:.88rem;line-height:1.45;max-width:none}
@media (max-width:50rem){main{margin:0;padding:1.2rem}nav ol{columns:1}}
@media print{html{background:#fff}main{box-shadow:none;margin:0;max-width:none}}
"""
"""The report's stylesheet, inline in ``index.html`` (no fonts or scripts from elsewhere)."""


# --------------------------------------------------------------------------- tables


def column_header(name: str) -> str:
    """A table column's header: its CSV name with the unit spelled out and spaces for
    underscores (``max_effect_pp`` -> ``max effect (pp)``, ``pct_harmful`` -> ``harmful (%)``)."""
    unit = ""
    for suffix, label in (("_pp", "pp"), ("_pct", "%")):
        if name.endswith(suffix):
            name, unit = name.removesuffix(suffix), label
    if name.startswith("pct_"):
        name, unit = name.removeprefix("pct_"), "%"
    return name.replace("_", " ") + (f" ({unit})" if unit else "")


def _in_percent(name: str) -> bool:
    return name.endswith(("_pp", "_pct")) or name.startswith("pct_")


def format_cell(value: object, column: str) -> str:
    """A cell as printed: :data:`MISSING` when empty, 2 decimals for pp and %, 4 significant
    digits for other floats."""
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return MISSING
    if pd.api.types.is_float(value):
        return f"{value:.2f}" if _in_percent(column) else f"{value:.4g}"
    return str(value)


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


def _html_table(table: pd.DataFrame) -> str:
    classes = {c: ' class="num"' if _numeric(table, c) else "" for c in table.columns}
    head = "".join(f"<th{classes[c]}>{html.escape(column_header(c))}</th>" for c in table.columns)
    rows = [
        "<tr>" + "".join(f"<td{classes[c]}>{html.escape(format_cell(v, c))}</td>"
                         for c, v in zip(table.columns, row)) + "</tr>"
        for row in table.itertuples(index=False)
    ]
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _markdown_table(table: pd.DataFrame) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(cell(column_header(c)) for c in table.columns) + " |",
             "|" + "".join("---:|" if _numeric(table, c) else "---|" for c in table.columns)]
    lines += ["| " + " | ".join(cell(format_cell(v, c)) for c, v in zip(table.columns, row)) + " |"
              for row in table.itertuples(index=False)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- rendering


def _numbered(sections: Sequence[Section]) -> Iterator[
    tuple[int, Section, list[tuple[int, str, Table]], list[tuple[int, Figure]]]
]:
    """Sections with their number, and their tables and figures with report-wide numbers."""
    tables, figures = itertools.count(1), itertools.count(1)
    for i, section in enumerate(sections, start=1):
        yield (i, section,
               [(next(tables), name, table) for name, table in section.tables.items()],
               [(next(figures), figure) for figure in section.figures])


def render_markdown(title: str, sections: Sequence[Section], out_dir: Path) -> str:
    """The report as Markdown, figure and CSV links relative to ``out_dir``."""
    parts = [f"# {title}", READING_NOTE]
    summary = [line for section in sections for line in section.summary]
    if summary:
        parts.append("## What this study found\n\n" + "\n".join(f"- {line}" for line in summary))
    for i, section, tables, figures in _numbered(sections):
        parts.append(f"## {i}. {section.title}")
        parts += section.paragraphs
        for n, name, table in tables:
            frame, context = displayed(table.frame)
            caption = " ".join(filter(None, [f"**Table {n}.** {table.caption}", context]))
            parts.append(f"{caption} ([CSV](tables/{name}.csv))")
            parts.append(_markdown_table(frame) if len(frame) else "*No rows.*")
            if table.note:
                parts.append(f"> **Note.** {table.note}")
        for n, figure in figures:
            parts.append(f"![Figure {n}]({figure.path.relative_to(out_dir).as_posix()})\n\n"
                         f"**Figure {n}.** {figure.caption}")
    return "\n\n".join(parts) + "\n"


def render_html(title: str, sections: Sequence[Section], out_dir: Path) -> str:
    """The report as a standalone HTML page, figure and CSV links relative to ``out_dir``."""
    esc = html.escape
    body = [f"<header><h1>{esc(title)}</h1>", f'<p class="lede">{esc(READING_NOTE)}</p></header>']
    summary = [line for section in sections for line in section.summary]
    if summary:
        body.append('<section class="summary"><h2>What this study found</h2><ul>'
                    + "".join(f"<li>{esc(line)}</li>" for line in summary) + "</ul></section>")
    body.append("<nav><h2>Contents</h2><ol>"
                + "".join(f'<li><a href="#s{i}">{esc(s.title)}</a></li>'
                          for i, s in enumerate(sections, start=1)) + "</ol></nav>")
    for i, section, tables, figures in _numbered(sections):
        body.append(f'<section id="s{i}"><h2><span class="num">{i}</span> '
                    f"{esc(section.title)}</h2>")
        body += [f"<p>{esc(p)}</p>" for p in section.paragraphs]
        for n, name, table in tables:
            frame, context = displayed(table.frame)
            body.append(
                f'<figure class="table" id="table-{n}"><figcaption><b>Table {n}.</b> '
                f"{esc(table.caption)}"
                + (f' <span class="context">{esc(context)}</span>' if context else "")
                + f' <a href="tables/{esc(name)}.csv">CSV</a></figcaption>'
                + (_html_table(frame) if len(frame) else '<p class="empty">No rows.</p>')
                + (f'<p class="note"><b>Note.</b> {esc(table.note)}</p>' if table.note else "")
                + "</figure>"
            )
        for n, figure in figures:
            png = figure.path.relative_to(out_dir).as_posix()
            svg = figure.path.with_suffix(".svg").relative_to(out_dir).as_posix()
            body.append(
                f'<figure id="figure-{n}"><a href="{esc(svg)}"><img src="{esc(png)}" '
                f'alt="Figure {n}"></a><figcaption><b>Figure {n}.</b> {esc(figure.caption)}'
                "</figcaption></figure>"
            )
        body.append("</section>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body><main>\n"
            + "\n".join(body) + "\n</main></body></html>\n")
def write_report(
    results: str | os.PathLike[str],
    study: str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    builders: Sequence[SectionBuilder] | None = None,
) -> Path:
    """Build every section and write the report folder.

    Parameters
    ----------
    results : path or URI of the results root
    study : str, optional — see :func:`analysis.load.resolve_study`
    out_dir : path, optional — default ``reports/<study>`` in the working directory
    builders : sequence of SectionBuilder, optional — default :data:`SECTION_BUILDERS`

    Returns
    -------
    Path of ``index.html``.

    Raises
    ------
    AnalysisError
        If the study cannot be resolved or no builder produces a section.
    """
    results = os.fspath(results)
    study = resolve_study(results, study)
    out = Path(out_dir if out_dir is not None else Path("reports") / study).resolve()
    (out / "tables").mkdir(parents=True, exist_ok=True)
    chosen = SECTION_BUILDERS if builders is None else builders
    sections = [section for build in chosen for section in build(results, study, out)]
    if not sections:
        raise AnalysisError(f"study {study!r} in {results!r} has no results to report")
    for section in sections:
        for name, table in section.tables.items():
            table.frame.to_csv(out / "tables" / f"{name}.csv", index=False)
    title = f"Ablation study {study}"
    (out / "report.md").write_text(render_markdown(title, sections, out), encoding="utf-8")
    index = out / "index.html"
    index.write_text(render_html(title, sections, out), encoding="utf-8")
    return index
