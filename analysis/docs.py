"""The generated parts of ``docs/reproductions.md`` and ``docs/modes.md``, written from a
stored study: ``python -m analysis RESULTS --study S --markdown docs``; also the shares figure
the README shows (``docs/figures/reproduction_paper_shares.png``). A study with neuron rows in
several modes is a mode study: it writes ``docs/modes.md``'s region (and figures) only.

The page's prose is written by hand; its tables (and the class-knockout figure) sit between
``<!-- BEGIN generated: <name> -->`` and ``<!-- END generated: <name> -->`` markers and are
rewritten here from the same tables the report shows (:mod:`analysis.sections.reproductions`,
:mod:`analysis.sections.knockout`), each followed by the study's package versions and the
analysis commit; the paper study's per-seed values go to a CSV beside the page.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import figures as fig
from analysis.formatting import markdown_table, number
from analysis.load import AnalysisError
from analysis.sections import knockout, modes
from analysis.sections.reproductions import NOT_RUN, PAPER_MODELS, QUANTITIES, paper_study, plot_shares
from analysis.study import RUN_KEYS, Study


DOCS_TABLES: tuple[str, ...] = ("paper-table", "paper-noise", "paper-variance")
"""Marked regions of ``docs/reproductions.md`` that :func:`write_docs` rewrites
(``<!-- BEGIN generated: <name> -->`` ... ``<!-- END generated: <name> -->``)."""

SHARES_FIGURE = "reproduction_paper_shares"
"""The shares figure of the README and ``docs/reproductions.md`` (``docs/figures/<name>.png``)."""

MODES_PAGE = "modes.md"
"""The page a mode study's region is written to (``docs/<page>``)."""

MODES_REGION = "modes-table"
"""Its marked region (``<!-- BEGIN generated: modes-table -->`` ... ``END``)."""

SEEDS_CSV = "reproductions_paper_seeds.csv"
"""Per-seed values beside the docs (one row per network and layer), so that a rerun of any
seed can be compared."""


def _cell(r: Any) -> str:
    """One scaling's cell of the docs table: ``mean [low, high] verdict`` (``range`` for
    quantities not judged)."""
    if r.n_seeds == 0:
        return NOT_RUN
    decimals = 2
    if pd.isna(r.low):
        text = f"{number(r.mean, decimals)} ({number(r.min, decimals)}–{number(r.max, decimals)})"
    else:
        text = f"{number(r.mean, decimals)} [{number(r.low, decimals)}, {number(r.high, decimals)}]"
    return text + ("" if r.verdict == "-" else f" **{r.verdict}**") + f" ({r.n_seeds})"


def docs_markdown(tables: dict[str, pd.DataFrame], provenance: str) -> dict[str, str]:
    """The markdown of each :data:`DOCS_TABLES` region from :func:`paper_study`'s tables,
    each followed by ``provenance`` (study, seeds, package versions, commit)."""
    table = tables["reproduction"]
    scalings = sorted(s for s in table["scaling"].unique() if s != "-")
    wide = []
    for (dataset, model, layer, quantity, unit), rows in table.groupby(
            ["dataset", "model", "layer", "quantity", "unit"], sort=False):
        first = rows.iloc[0]
        if pd.isna(first["paper"]) and quantity not in {QUANTITIES[q].label for q in (
                "pct_indistinguishable", "pct_within_one_image", "n_silent")}:
            continue
        paper = ("" if pd.isna(first["paper"])
                 else number(first["paper"], 2) + (" (derived)" if first["derived"] else ""))
        margin = "" if pd.isna(first["margin"]) else f"±{number(first['margin'], 2)}"
        cells = {s: "" for s in scalings}
        for r in rows.itertuples():
            if r.scaling in cells:
                cells[r.scaling] = _cell(r)
        if (rows["verdict"] == NOT_RUN).all():
            cells = {s: NOT_RUN for s in scalings}
        wide.append({"dataset": dataset, "network": model, "layer": layer, "quantity": f"{quantity} ({unit})",
                     "paper": paper, "margin": margin, **cells})
    paper_md = markdown_table(pd.DataFrame(wide), ["dataset", "network", "layer", "quantity", "paper", "margin",
                                                   *scalings])
    reliability = tables["reliability"]
    if len(reliability):
        noise_rows = reliability.groupby(["model", "scaling", "layer"], sort=True).agg(
            networks=("seed", "nunique"), spearman=("spearman", "mean"), spearman_brown=("spearman_brown", "mean"),
            jaccard=("harmful_jaccard", "mean"), survives=("category_survives", "mean"),
            harmful_low=("harmful_low", "mean"), harmful_high=("harmful_high", "mean")).reset_index()
        shares = tables["seeds"].groupby(["model", "scaling", "layer"], sort=True)[
            ["pct_helpful_noise", "pct_indistinguishable", "pct_harmful_noise"]].mean().reset_index()
        noise_rows = noise_rows.merge(shares, on=["model", "scaling", "layer"])
        for column in ("spearman", "spearman_brown", "jaccard"):
            noise_rows[column] = noise_rows[column].map(lambda v: number(v, 2))
        for column in ("survives", "pct_helpful_noise", "pct_indistinguishable", "pct_harmful_noise"):
            noise_rows[column] = noise_rows[column].map(lambda v: number(v, 1))
        noise_rows["harmful share, bootstrap 95 %"] = [
            f"{number(a, 1)}–{number(b, 1)}" for a, b in zip(noise_rows["harmful_low"], noise_rows["harmful_high"])]
        noise_md = markdown_table(noise_rows.rename(columns={
            "spearman": "split-half Spearman", "spearman_brown": "Spearman-Brown", "jaccard": "harmful-set Jaccard",
            "survives": "category kept (%)", "pct_helpful_noise": "helpful beyond noise (%)",
            "pct_indistinguishable": "indistinguishable (%)", "pct_harmful_noise": "harmful beyond noise (%)"}),
            ["model", "scaling", "layer", "networks", "indistinguishable (%)", "helpful beyond noise (%)",
             "harmful beyond noise (%)", "split-half Spearman", "Spearman-Brown", "harmful-set Jaccard",
             "category kept (%)", "harmful share, bootstrap 95 %"])
    else:
        noise_md = "(no network of the study has its model artifact: nothing to resample)"
    variance = tables["variance"]
    if len(variance):
        shown = variance.assign(sd=variance["sd"].map(lambda v: number(v, 2)),
                                share=variance["share"].map(lambda v: number(v, 0)))
        variance_md = markdown_table(shown, ["model", "scaling", "layer", "quantity", "component", "sd", "share"])
    else:
        variance_md = "(fewer than two seeds: no spread to decompose)"
    return {name: f"{body}\n\n{provenance}" for name, body in zip(DOCS_TABLES, (paper_md, noise_md, variance_md))}


def _commit() -> str:
    """The analysis code's git commit (``unknown`` outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_docs(study: Study, docs: Path, datasets: dict[str, str] | None = None) -> list[Path]:
    """Rewrite the generated regions of ``docs/reproductions.md`` that the stored study has
    material for (``python -m analysis RESULTS --study S --markdown docs``): the paper's
    tables (:data:`DOCS_TABLES`) and the per-seed CSV for ``experiment=paper``; the class
    knockout table and figure (:func:`analysis.sections.knockout.docs_table`) for a study
    with ``kind=knockout``; for a mode study (neuron rows in several modes:
    :func:`analysis.sections.modes.is_mode_study`) only ``docs/modes.md``'s region and the mode
    figures. ``datasets``: as for :func:`paper_runs`.

    Raises
    ------
    AnalysisError
        If the study has neither, or the markdown lacks a marked region (naming the markers
        to add).
    """
    versions = study.manifest.get("versions", {})
    provenance = (f"runs made with " + ", ".join(f"{k} {v}" for k, v in versions.items())
                  + f"; analysis at commit {_commit()}; study updated {study.manifest.get('updated', '?')}.*")
    regions, written = {}, []
    if modes.is_mode_study(study):
        body, figures = modes.docs_region(study, docs / "figures")
        regions[MODES_REGION] = (f"{body}\n\n*Written by `python -m analysis RESULTS --study {study.name} "
                                 f"--markdown docs`; " + provenance)
        return [_rewrite(docs / MODES_PAGE, regions), *figures]
    tables = paper_study(study, datasets)
    if tables:
        seeds = tables["seeds"]
        n = seeds.groupby(["model", "scaling"])["seed"].nunique()
        regions.update(docs_markdown(tables, (
            f"*Written by `python -m analysis RESULTS --study {study.name} --markdown docs` from "
            f"{len(seeds[RUN_KEYS].drop_duplicates())} networks ("
            + ", ".join(f"{m} {s}: {k} seeds" for (m, s), k in n.items()) + "); " + provenance)))
        seeds.drop(columns=["paper_dataset"]).to_csv(docs / SEEDS_CSV, index=False, float_format="%.10g")
        written.append(docs / SEEDS_CSV)
        panels = tables["reproduction"][(tables["reproduction"]["quantity"] == QUANTITIES["pct_helpful"].label)
                                        & (tables["reproduction"]["n_seeds"] > 0)].groupby(["model", "layer"]).ngroups
        figure = fig.new_figure(width=4.0 * panels, height=3.6)
        plot_shares(tables["reproduction"], np.atleast_1d(figure.subplots(1, panels)))
        written.append(fig.save_figure(figure, docs / "figures", SHARES_FIGURE))
    if study.has("knockout"):
        classes, figure, answers = knockout.docs_table(study, docs / "figures")
        body = "\n\n".join(answers) + "\n\n" + markdown_table(classes, list(classes.columns))
        regions["knockout-table"] = (f"![Class knockout]({figure.relative_to(docs).as_posix()})\n\n{body}\n\n"
                                     f"*Written by `python -m analysis RESULTS --study {study.name} --markdown docs`; "
                                     + provenance)
        written.append(figure)
    if not regions:
        raise AnalysisError(f"study {study.name!r} has neither neuron sweeps of the paper's networks "
                            f"({', '.join(PAPER_MODELS)}) nor class-knockout results: nothing to write")
    return [_rewrite(docs / "reproductions.md", regions), *written]


def _rewrite(path: Path, regions: dict[str, str]) -> Path:
    """``path`` with each region's text between its markers replaced by ``regions[name]``."""
    text = path.read_text()
    for name, body in regions.items():
        begin, end = f"<!-- BEGIN generated: {name} -->", f"<!-- END generated: {name} -->"
        if begin not in text or end not in text:
            raise AnalysisError(f"{path} has no region {begin} ... {end}; add the two markers where the table goes")
        head, rest = text.split(begin, 1)
        text = head + begin + "\n" + body + "\n" + end + rest.split(end, 1)[1]
    path.write_text(text)
    return path
