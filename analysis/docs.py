"""The generated parts of ``docs/reproductions.md``, ``docs/torch.md`` and ``docs/modes.md``,
written from a stored study: ``python -m analysis RESULTS --study S --markdown docs``; also the
shares figure the README shows (``docs/figures/reproduction_paper_shares.png``) and a torch
study's sites figure (``docs/figures/torch_<model>_sites.png``). A study with neuron rows in
several modes is a mode study: it writes ``docs/modes.md``'s region (and figures) only.

The page's prose is written by hand; its tables (and the class-knockout figure) sit between
``<!-- BEGIN generated: <name> -->`` and ``<!-- END generated: <name> -->`` markers and are
rewritten here from the same tables the report shows (:mod:`analysis.sections.reproductions`,
:mod:`analysis.sections.knockout`, :mod:`analysis.sections.channels`), each followed by the
study's package versions and the analysis commit; the paper study's per-seed values go to a
CSV beside the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import figures as fig
from analysis.formatting import count, markdown_table, number
from analysis.load import AnalysisError
from analysis.sections import channels, knockout, modes
from analysis.sections.reproductions import (
    NOT_RUN,
    PAPER_MODELS,
    QUANTITIES,
    honest_answer,
    paper_runs,
    paper_study,
    plot_shares,
    verdicts_by_scaling,
)
from analysis.study import RUN_KEYS, Study
from sweep.data import read_artifact
from sweep.results import source_commit

DOCS_TABLES: tuple[str, ...] = ("paper-answer", "paper-table", "paper-noise", "paper-variance")
"""Marked regions of ``docs/reproductions.md`` that :func:`write_docs` rewrites
(``<!-- BEGIN generated: <name> -->`` ... ``<!-- END generated: <name> -->``)."""

SHARES_FIGURE = "reproduction_paper_shares"
"""The shares figure of the README and ``docs/reproductions.md`` (``docs/figures/<name>.png``)."""

TORCH_TABLES: tuple[str, ...] = ("torch-runs", "torch-sites", "torch-cumulative")
"""Marked regions of ``docs/torch.md`` that :func:`write_docs` rewrites from a torch study."""

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


def docs_markdown(tables: dict[str, pd.DataFrame], stamp: str) -> dict[str, str]:
    """The markdown of each :data:`DOCS_TABLES` region from :func:`paper_study`'s tables,
    each followed by ``stamp`` (study, seeds, package versions, commit)."""
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
        judged = pd.notna(first["paper"])
        cells = {s: NOT_RUN if judged else "" for s in scalings}  # a scaling this network was not run in
        for r in rows.itertuples():
            if r.scaling in cells:
                cells[r.scaling] = _cell(r)
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
    answer_md = "\n".join(f"* {line}" for line in (
        honest_answer(table, tables["seeds"], reliability), *verdicts_by_scaling(table)))
    return {name: f"{body}\n\n{stamp}" for name, body in zip(DOCS_TABLES, (answer_md, paper_md, noise_md, variance_md))}


def provenance(study: Study, versions: dict[str, str] | None = None) -> str:
    """``runs made at commit(s) <c> (BLAS: <code paths>) with <package versions>; analysis at
    commit <c>; study updated <t>.*``: every environment of the manifest's entries (its
    latest only, for a manifest written before it listed them) and its versions, plus
    ``versions`` (e.g. torch's, from a model artifact); a study written before the manifest
    kept its environment says only the versions."""
    versions = {**study.manifest.get("versions", {}), **(versions or {})}
    made = study.manifest.get("environments") or [study.manifest.get("environment", {})]
    commits = list(dict.fromkeys(e["commit"] for e in made if e.get("commit")))
    blas = list(dict.fromkeys(path for e in made for path in e.get("blas", [])))
    sweep_at = (f" at commit{'s' if len(commits) > 1 else ''} {', '.join(commits)} "
                f"(BLAS: {', '.join(blas) or 'unknown'})" if commits else "")
    return (f"runs made{sweep_at} with " + ", ".join(f"{k} {v}" for k, v in versions.items())
            + f"; analysis at commit {source_commit()}; study updated {study.manifest.get('updated', '?')}.*")


def torch_markdown(study: Study, docs: Path) -> tuple[dict[str, str], list[Path]]:
    """The :data:`TORCH_TABLES` regions of a study's torch networks (none: empty) and the
    sites figure of each torch network kind (``docs/figures/torch_<model>_sites.png``): the
    networks and their accuracies, the single-unit effects per site with both categories
    (:func:`analysis.sections.channels.site_impact`), and the cumulative curves per site
    (:func:`analysis.sections.channels.site_curves`, test split)."""
    neurons = study.rows("neuron")
    kinds = channels.torch_kinds(study, neurons) if not neurons.empty else []
    if not kinds:
        return {}, []
    sites = channels.all_sites(kinds)
    models = set(sites["model"])
    runs = study.runs[study.runs["model"].isin(models)]
    versions = {k: v for key, _, _ in kinds for k, v in read_artifact(study.run(key)["model_path"]).meta.get(
        "versions", {}).items()}
    epochs = {run["model"]: run.get("n_iter") for run in study.manifest.get("runs", []) if run["model"] in models}
    summary = runs.groupby(["dataset", "model"], sort=True).agg(
        seeds=("seed", "nunique"), **{f"{s}_mean": (f"{s}_accuracy", "mean") for s in ("train", "val", "test")},
        test_min=("test_accuracy", "min"), test_max=("test_accuracy", "max")).reset_index()
    summary["epochs"] = summary["model"].map(epochs)
    for column in ("train_mean", "val_mean", "test_mean", "test_min", "test_max"):
        summary[column] = summary[column].map(lambda v: number(100 * v, 2))
    runs_md = markdown_table(summary.rename(columns={
        "train_mean": "train acc. (%)", "val_mean": "val acc. (%)", "test_mean": "test acc. (%)",
        "test_min": "test min", "test_max": "test max"}), ["dataset", "model", "epochs", "seeds", "train acc. (%)",
                                                            "val acc. (%)", "test acc. (%)", "test min", "test max"])
    impact = channels.site_impact(neurons, sites)
    shown = impact.assign(**{c: impact[c].map(lambda v: number(100 * v, 2)) for c in
                             ("mean_effect", "min_effect", "max_effect")},
                          **{c: impact[c].map(lambda v: number(v, 1)) for c in
                             ("pct_harmful", "pct_indistinguishable")})
    sites_md = markdown_table(shown.rename(columns={
        "unit_output": "unit", "mean_effect": "mean effect (pp)", "min_effect": "min (pp)", "max_effect": "max (pp)",
        "pct_harmful": "harmful by sign (%)", "pct_indistinguishable": "indistinguishable (%)",
        "harmful": "harmful (all seeds)", "rotten_fdr": "rotten, FDR (all seeds)",
        "rotten_images": "rotten, >= 3 images (all seeds)"}),
        ["model", "mode", "layer", "site", "unit", "units", "seeds", "mean effect (pp)", "min (pp)", "max (pp)",
         "harmful by sign (%)", "indistinguishable (%)", "harmful (all seeds)", "rotten, FDR (all seeds)",
         "rotten, >= 3 images (all seeds)"])
    curves = channels.site_curves(study.rows("cumulative"), sites)
    if len(curves):
        curves = curves[curves["split"] == "test"]
        shown = curves.assign(**{c: curves[c].map(lambda v: number(100 * v, 1)) for c in
                                 ("accuracy_base", "auc", "accuracy_half")})
        cumulative_md = markdown_table(shown.rename(columns={
            "accuracy_base": "unablated (%)", "auc": "mean along the curve (%)",
            "accuracy_half": "half removed (%)"}),
            ["model", "mode", "scope", "site", "order", "curves", "unablated (%)", "mean along the curve (%)",
             "half removed (%)"])
    else:
        cumulative_md = "(no cumulative curves in this study: run ablation=cumulative)"
    written = []
    for model in sorted(models):
        dataset = str(sites.loc[sites["model"] == model, "dataset"].iloc[0])
        figure = channels.sites_figure(neurons, study.rows("cumulative"), sites, dataset, model)
        written.append(fig.save_figure(figure, docs / "figures", f"torch_{model}_sites"))
    figures = " ".join(f"![{p.stem}]({p.relative_to(docs).as_posix()})" for p in written)
    stamp = (f"*Written by `python -m analysis RESULTS --study {study.name} --markdown docs` from "
             f"{len(runs)} networks; " + provenance(study, versions))
    bodies = (runs_md, f"{figures}\n\n{sites_md}", cumulative_md)
    return {name: f"{body}\n\n{stamp}" for name, body in zip(TORCH_TABLES, bodies)}, written


def _markers(path: Path, text: str, name: str) -> tuple[str, str]:
    """The ``BEGIN`` and ``END`` markers of region ``name``, checked present in ``text``."""
    begin, end = f"<!-- BEGIN generated: {name} -->", f"<!-- END generated: {name} -->"
    if begin not in text or end not in text:
        raise AnalysisError(f"{path} has no region {begin} ... {end}; add the two markers where the table goes")
    return begin, end


def region_text(path: Path, name: str) -> str:
    """The body of region ``name`` of the markdown at ``path`` (as :func:`rewrite_regions`
    wrote it), e.g. to check that it is up to date."""
    text = path.read_text()
    begin, end = _markers(path, text, name)
    return text.split(begin, 1)[1].split(end, 1)[0].removeprefix("\n").removesuffix("\n")


def rewrite_regions(path: Path, regions: dict[str, str]) -> None:
    """Replace the body of each ``<!-- BEGIN generated: <name> -->`` ...
    ``<!-- END generated: <name> -->`` region of the markdown at ``path``.

    Raises
    ------
    AnalysisError
        If a region's markers are missing (naming the markers to add).
    """
    text = path.read_text()
    for name, body in regions.items():
        begin, end = _markers(path, text, name)
        head, rest = text.split(begin, 1)
        text = head + begin + "\n" + body + "\n" + end + rest.split(end, 1)[1]
    path.write_text(text)


def training_costs(runs: pd.DataFrame) -> str:
    """One line on what training cost, per network and scaling, from the manifest's runs
    (:func:`analysis.sections.reproductions.paper_runs`): median seconds (range) and the
    solver's epochs (range); empty when no run recorded its time."""
    timed = runs.assign(seconds=[(r.get("timings") or {}).get("train_seconds") for r in runs["run"]],
                        epochs=[r.get("n_iter") for r in runs["run"]]).dropna(subset=["seconds"])

    def span(values: pd.Series, decimals: int) -> str:
        low, high = number(values.min(), decimals), number(values.max(), decimals)
        return low if low == high else f"{low}–{high}"

    parts = [f"{model} {scaling}: {number(g['seconds'].median(), 0)} s ({span(g['seconds'], 0)}), "
             f"{span(g['epochs'], 0)} epochs" for (model, scaling), g in timed.groupby(["model", "scaling"])]
    return ("training per network, median (range), on the machine that ran it: " + "; ".join(parts) + ". "
            if parts else "")


def write_docs(study: Study, docs: Path, datasets: dict[str, str] | None = None) -> list[Path]:
    """Rewrite the generated regions of ``docs/reproductions.md`` and ``docs/torch.md`` that
    the stored study has material for (``python -m analysis RESULTS --study S --markdown
    docs``): the paper's tables (:data:`DOCS_TABLES`) and the per-seed CSV for
    ``experiment=paper``; the class knockout table and figure
    (:func:`analysis.sections.knockout.docs_table`) for a study with ``kind=knockout``; the
    torch tables and figures (:func:`torch_markdown`) for a study of torch networks; for a mode
    study (neuron rows in several modes: :func:`analysis.sections.modes.is_mode_study`) only
    ``docs/modes.md``'s region and the mode figures. ``datasets``: as for :func:`paper_runs`.

    Raises
    ------
    AnalysisError
        If the study has neither, or the markdown lacks a marked region (naming the markers
        to add).
    """
    stamp = provenance(study)
    regions, written = {}, []
    if modes.is_mode_study(study):
        body, figures = modes.docs_region(study, docs / "figures")
        regions[MODES_REGION] = (f"{body}\n\n*Written by `python -m analysis RESULTS --study {study.name} "
                                 f"--markdown docs`; " + stamp)
        rewrite_regions(docs / MODES_PAGE, regions)
        return [docs / MODES_PAGE, *figures]
    tables = paper_study(study, datasets)
    if tables:
        seeds = tables["seeds"]
        n = seeds.groupby(["model", "scaling"])["seed"].nunique()
        regions.update(docs_markdown(tables, (
            f"*Written by `python -m analysis RESULTS --study {study.name} --markdown docs` from "
            f"{len(seeds[RUN_KEYS].drop_duplicates())} networks ("
            + ", ".join(f"{m} {s}: {count(k, 'seed')}" for (m, s), k in n.items()) + "); "
            + training_costs(paper_runs(study.manifest, datasets)) + stamp)))
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
                                     + stamp)
        written.append(figure)
    torch_regions, torch_figures = torch_markdown(study, docs)
    if not regions and not torch_regions:
        raise AnalysisError(f"study {study.name!r} has neither neuron sweeps of the paper's networks "
                            f"({', '.join(PAPER_MODELS)}), class-knockout results nor torch networks: "
                            "nothing to write")
    pages = []
    if regions:
        rewrite_regions(docs / "reproductions.md", regions)
        pages.append(docs / "reproductions.md")
    if torch_regions:
        rewrite_regions(docs / "torch.md", torch_regions)
        pages.append(docs / "torch.md")
    return [*pages, *written, *torch_figures]
