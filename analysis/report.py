"""Write the report folder: ``index.html``, ``report.md``, ``tables/*.csv``, ``figures/*``.

Sections come from the builders in :data:`SECTION_BUILDERS` (each
``(results_root, study, out_dir) -> list[Section]``); another module adds its own by
appending to that list. Paths in the HTML and Markdown are relative, so the folder opens in a
browser from disk.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analysis import cumulative, pruning_report
from analysis.load import AnalysisError, resolve_study
from analysis.sections import (
    Section,
    SectionBuilder,
    harmful_neuron_sections,
    impact_sections,
    pruning_sections,
    stability_sections,
)

SECTION_BUILDERS: list[SectionBuilder] = [
    impact_sections,
    stability_sections,
    harmful_neuron_sections,
    pruning_sections,
    cumulative.report_sections,
    pruning_report.report_sections,
]
"""Builders run in order by :func:`write_report`."""

FLOAT_FORMAT = "{:.4g}".format


def _markdown_table(table: pd.DataFrame) -> str:
    def cell(value: object) -> str:
        return FLOAT_FORMAT(value) if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(map(str, table.columns)) + " |",
             "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def render_markdown(title: str, sections: Sequence[Section], out_dir: Path) -> str:
    """The report as Markdown, figure and CSV links relative to ``out_dir``."""
    parts = [f"# {title}"]
    for section in sections:
        parts.append(f"## {section.title}")
        parts += section.paragraphs
        for name, table in section.tables.items():
            parts.append(f"**{name}** ([CSV](tables/{name}.csv))\n\n{_markdown_table(table)}")
        parts += [f"![{p.stem}]({p.relative_to(out_dir).as_posix()})" for p in section.figures]
    return "\n\n".join(parts) + "\n"


def render_html(title: str, sections: Sequence[Section], out_dir: Path) -> str:
    """The report as a standalone HTML page, figure and CSV links relative to ``out_dir``."""
    body = [f"<h1>{html.escape(title)}</h1>", "<ul>"]
    body += [f'<li><a href="#s{i}">{html.escape(s.title)}</a></li>' for i, s in enumerate(sections)]
    body.append("</ul>")
    for i, section in enumerate(sections):
        body.append(f'<h2 id="s{i}">{html.escape(section.title)}</h2>')
        body += [f"<p>{html.escape(p)}</p>" for p in section.paragraphs]
        for name, table in section.tables.items():
            body.append(f'<h3>{html.escape(name)} <small><a href="tables/{name}.csv">CSV</a></small></h3>')
            body.append(table.to_html(index=False, float_format=FLOAT_FORMAT, border=0))
        for png in section.figures:
            rel = png.relative_to(out_dir).as_posix()
            svg = png.with_suffix(".svg").relative_to(out_dir).as_posix()
            body.append(f'<figure><a href="{svg}"><img src="{rel}" alt="{png.stem}"></a>'
                        f"<figcaption>{html.escape(png.stem)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}"
             "table{border-collapse:collapse;font-size:12px}td,th{padding:2px 6px;border:1px solid #ccc}"
             "img{max-width:100%}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


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
            table.to_csv(out / "tables" / f"{name}.csv", index=False)
    title = f"Ablation study {study}"
    (out / "report.md").write_text(render_markdown(title, sections, out), encoding="utf-8")
    index = out / "index.html"
    index.write_text(render_html(title, sections, out), encoding="utf-8")
    return index
