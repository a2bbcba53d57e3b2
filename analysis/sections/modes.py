"""The mode study: does how a neuron is removed (every mode of ``sweep.kernels.NEURON_MODES``)
change which neurons look helpful or harmful?

Per network and layer, on the test split: the impact distribution under each mode; the rank
agreement of the per-unit effects between two modes (Spearman), beside each mode's split-half
reliability (:func:`analysis.noise.split_half_reliability`), whose geometric mean is the
highest agreement two equally noisy measures of the same per-unit quantity could reach; the
units whose noise-aware category (:func:`analysis.noise.noise_categories`) differs between the
two modes; and the cumulative curves by mode when the study has them. Skipped (no section) on
a study with neuron rows in one mode only.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from analysis import figures as fig
from analysis.formatting import MISSING, in_units, markdown_table, number, value_range
from analysis.noise import noise_categories, split_half_reliability
from analysis.sections.base import (
    FAMILY_KEYS,
    Figure,
    Page,
    Section,
    Table,
    families,
    family_label,
    figure_slug,
)
from analysis.stats import Q, jaccard
from analysis.study import NetworkKey, Study, resample_seed
from sweep.kernels import NEURON_MODES

SPLIT = "test"
"""The split every number of the section is measured on."""

N_HALVES = 50
"""Random halves of the test images behind each split-half reliability."""

UNIT_KEYS: list[str] = ["dataset", "model", "seed", "split", "layer"]
"""One layer of one network on one split: the units compared across modes."""


def mode_order(modes: list[str]) -> list[str]:
    """``modes`` in the registry's order (:data:`~sweep.kernels.NEURON_MODES`)."""
    return [m for m in NEURON_MODES if m in set(modes)]


def mode_impact(categorized: pd.DataFrame) -> pd.DataFrame:
    """Per layer and mode: the impact distribution.

    Parameters
    ----------
    categorized : DataFrame — neuron rows with ``category`` and ``noise_category``
        (:func:`~analysis.noise.noise_categories`)

    Returns
    -------
    DataFrame
        ``UNIT_KEYS``, ``mode``, ``n_units``, ``pct_harmful`` / ``pct_helpful`` (sign only),
        ``n_harmful_noise`` / ``n_helpful_noise`` (distinguishable from noise),
        ``mean_effect``, ``min_effect``, ``max_effect`` (fractions), ``effect_sd_draws``
        (the mean sd over a per-image mode's draws; NaN otherwise).
    """
    keys = [*UNIT_KEYS, "mode"]
    sd = categorized["effect_sd"] if "effect_sd" in categorized else pd.Series(np.nan, categorized.index)
    rows = categorized.assign(
        harmful=categorized["category"] == "harmful", helpful=categorized["category"] == "helpful",
        harmful_noise=categorized["noise_category"] == "harmful",
        helpful_noise=categorized["noise_category"] == "helpful", sd=sd.astype(float))
    g = rows.groupby(keys, sort=False)
    table = pd.DataFrame({
        "n_units": g.size(), "pct_harmful": 100 * g["harmful"].mean(), "pct_helpful": 100 * g["helpful"].mean(),
        "n_harmful_noise": g["harmful_noise"].sum(), "n_helpful_noise": g["helpful_noise"].sum(),
        "mean_effect": g["effect"].mean(), "min_effect": g["effect"].min(), "max_effect": g["effect"].max(),
        "effect_sd_draws": g["sd"].mean(),
    }).reset_index()
    table["order"] = table["mode"].map({m: i for i, m in enumerate(NEURON_MODES)})
    return table.sort_values([*UNIT_KEYS, "order"]).drop(columns="order").reset_index(drop=True)


def mode_agreement(categorized: pd.DataFrame, reliability: pd.DataFrame) -> pd.DataFrame:
    """Per layer and pair of modes: how far the per-unit effects agree.

    Parameters
    ----------
    categorized : DataFrame — as for :func:`mode_impact`
    reliability : DataFrame — ``UNIT_KEYS``, ``mode``, ``reliability`` (split-half,
        Spearman-Brown corrected, median over halves)

    Returns
    -------
    DataFrame
        ``UNIT_KEYS``, ``mode_a``, ``mode_b``, ``n_units``, ``spearman`` (rho of the two
        modes' per-unit effects; NaN when one is constant), ``reliability_a``,
        ``reliability_b``, ``ceiling`` (``sqrt(reliability_a * reliability_b)``),
        ``n_category_changed`` (units whose noise-aware category differs),
        ``n_harmful_changed`` (units harmful by sign under one mode only), ``harmful_jaccard``
        (overlap of the two modes' harmful-by-sign sets; 1 when both are empty).
    """
    rel = reliability.set_index([*UNIT_KEYS, "mode"])["reliability"]
    out = []
    for key, layer_rows in categorized.groupby(UNIT_KEYS, sort=True):
        wide = layer_rows.pivot(index="unit", columns="mode", values=["effect", "noise_category", "category"])
        for a, b in itertools.combinations(mode_order(list(layer_rows["mode"].unique())), 2):
            ea, eb = wide["effect"][a].to_numpy(float), wide["effect"][b].to_numpy(float)
            constant = np.ptp(ea) == 0 or np.ptp(eb) == 0
            ra, rb = rel.get((*key, a), np.nan), rel.get((*key, b), np.nan)
            out.append({
                **dict(zip(UNIT_KEYS, key)), "mode_a": a, "mode_b": b, "n_units": len(ea),
                "spearman": np.nan if constant else float(stats.spearmanr(ea, eb).statistic),
                "reliability_a": ra, "reliability_b": rb,
                "ceiling": float(np.sqrt(ra * rb)) if ra > 0 and rb > 0 else np.nan,
                "n_category_changed": int((wide["noise_category"][a] != wide["noise_category"][b]).sum()),
                "n_harmful_changed": int(((wide["category"][a] == "harmful") != (wide["category"][b] == "harmful")).sum()),
                "harmful_jaccard": jaccard(wide.index[wide["category"][a] == "harmful"],
                                           wide.index[wide["category"][b] == "harmful"]),
            })
    return pd.DataFrame(out)


def reliabilities(study: Study, rows: pd.DataFrame, n_splits: int = N_HALVES) -> pd.DataFrame:
    """Split-half reliability of every (layer, mode) of ``rows``' networks on the test split:
    the median over ``n_splits`` random halves of the Spearman-Brown corrected rho between the
    halves' per-unit effects (a per-image mode: its first draw, at the rows' seed)."""
    out = []
    for key, g in rows.groupby([*UNIT_KEYS, "mode"], sort=True):
        d = dict(zip([*UNIT_KEYS, "mode"], key))
        network = NetworkKey(d["dataset"], d["model"], int(d["seed"]))
        flips = study.flips(network, int(d["layer"]), d["mode"], SPLIT, resample_seed(g))
        halves = split_half_reliability(flips.ablation, flips.row, flips.fixed, int(g["unit"].max()) + 1,
                                        int(g["n_samples"].iloc[0]), n_splits)
        out.append({**d, "reliability": float(np.nanmedian(halves["spearman_brown"]))
                    if halves["spearman_brown"].notna().any() else np.nan})
    return pd.DataFrame(out, columns=[*UNIT_KEYS, "mode", "reliability"])


def cumulative_by_mode(cumulative: pd.DataFrame) -> pd.DataFrame:
    """The random-order, whole-network cumulative curves on the test split, averaged over
    seeds and repetitions: ``dataset, model, mode, k, accuracy`` (fraction), ``n_curves``."""
    rows = cumulative[(cumulative["order"] == "random") & (cumulative["scope"] == "network")
                      & (cumulative["split"] == SPLIT)]
    g = rows.groupby(["dataset", "model", "mode", "k"], sort=True)["accuracy"]
    return pd.DataFrame({"accuracy": g.mean(), "n_curves": g.size()}).reset_index()


# --------------------------------------------------------------------------- presentation


def _figure(key: dict, rows: pd.DataFrame, curves: pd.DataFrame, page: Page, out: Path) -> Path:
    """The effects of every mode per layer (box plots), and the cumulative curves by mode."""
    layers = sorted(rows["layer"].unique())
    modes = mode_order(list(rows["mode"].unique()))
    has_curves = not curves.empty
    figure = fig.new_figure(3.2 * (len(layers) + has_curves), 3.4)
    axes = figure.subplots(1, len(layers) + has_curves, squeeze=False)[0]
    for ax, layer in zip(axes, layers):
        for mode in modes:
            effects = np.sort(100 * rows[(rows["layer"] == layer) & (rows["mode"] == mode)]["effect"].to_numpy())
            ax.plot(np.linspace(0, 100, len(effects)), effects, label=mode, drawstyle="steps-mid")
        ax.axhline(0, color="red", linewidth=0.8)
        ax.set_title(f"layer {layer}")
        ax.set_xlabel("units, sorted by effect (%)")
        ax.set_ylabel("effect (pp)")
        ax.legend(fontsize="small")
    if has_curves:
        ax = axes[-1]
        for mode in [m for m in modes if m in set(curves["mode"])]:
            c = curves[curves["mode"] == mode]
            ax.plot(c["k"], 100 * c["accuracy"], label=mode)
        ax.set_xlabel("units removed (random order)")
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize="small")
        ax.set_title("cumulative, by mode")
    return fig.save_figure(figure, out, figure_slug("modes", *key.values()), page.svg)


def _caption(key: dict, rows: pd.DataFrame, curves: pd.DataFrame) -> str:
    n = int(rows["n_samples"].iloc[0])
    return (f"Single-neuron effects of {family_label(key)} under each mode, every seed pooled: per hidden "
            f"layer, each unit's change of {SPLIT} accuracy ({n} images, one image = {100 / n:.2g} pp), sorted, "
            "one line per mode (above the red line: harmful)"
            + (". Right: test accuracy as random units are removed one by one, mean over seeds and "
               "repetitions, one line per mode." if not _network_curves(curves, key).empty else "."))


def modes_summary(agreement: pd.DataFrame) -> list[str]:
    """Headline: the rank agreement between modes against the reliability ceiling, and how
    many units change noise-aware category."""
    if agreement.empty:
        return []
    rho = agreement["spearman"].dropna()
    ceiling = agreement["ceiling"].dropna()
    changed = 100 * agreement["n_category_changed"].sum() / agreement["n_units"].sum()
    below = int((agreement["spearman"] < agreement["ceiling"] - 0.1).sum())
    against = (f"reliability ceiling {value_range(ceiling, 2)} where both modes have a positive reliability; "
               f"{below} of those {len(ceiling)} comparisons more than 0.1 below it" if len(ceiling) else
               "no ceiling: no mode's split-half reliability is above 0, the effects are mostly test-image noise")
    agree = f"Spearman rho {value_range(rho, 2)}" if len(rho) else "no rank correlation (constant effects)"
    networks = agreement[["dataset", "model"]].drop_duplicates()
    where = (f"{networks['dataset'].iloc[0]}/{networks['model'].iloc[0]}" if len(networks) == 1
             else f"{len(networks)} networks")
    return [(f"Mode study ({where}): per-unit effects of two modes agree with {agree} ({against}); "
             f"{changed:.1f} % of unit comparisons change noise-aware category when the mode changes.")]


def is_mode_study(study: Study) -> bool:
    """Whether the study's neuron rows on the test split hold two modes or more."""
    return study.has("neuron") and study.rows("neuron", SPLIT)["mode"].nunique() > 1


def study_tables(study: Study) -> dict[str, pd.DataFrame]:
    """The section's tables of a mode study (:func:`is_mode_study`): ``rows`` (neuron rows on
    the test split), ``impact``, ``agreement`` and ``curves`` (empty without cumulative rows)."""
    df = study.rows("neuron", SPLIT)
    categorized = noise_categories(df, FAMILY_KEYS)
    curves = cumulative_by_mode(study.rows("cumulative")) if study.has("cumulative") else pd.DataFrame()
    return {"rows": df, "impact": mode_impact(categorized),
            "agreement": mode_agreement(categorized, reliabilities(study, df)), "curves": curves}


def _network_curves(curves: pd.DataFrame, key: dict) -> pd.DataFrame:
    if curves.empty:
        return curves
    return curves[(curves["dataset"] == key["dataset"]) & (curves["model"] == key["model"])]


def _cell(value: float, decimals: int) -> str:
    """A docs table cell: the number, or :data:`~analysis.formatting.MISSING` for NaN."""
    return MISSING if pd.isna(value) else number(value, decimals)


def docs_region(study: Study, figures: Path) -> tuple[str, list[Path]]:
    """The markdown of ``docs/modes.md``'s generated region (:mod:`analysis.docs`): per network
    and layer, each mode's harmful share and the agreement between modes, averaged over
    seeds, the findings, and one figure per network (written under ``figures``)."""
    tables = study_tables(study)
    impact, agreement = tables["impact"], tables["agreement"]
    keys = ["dataset", "model", "layer"]
    per_mode = impact.groupby([*keys, "mode"], sort=False).agg(
        seeds=("seed", "nunique"), harmful=("pct_harmful", "mean"), harmful_noise=("n_harmful_noise", "mean"),
        helpful_noise=("n_helpful_noise", "mean"), mean_effect=("mean_effect", "mean"),
        sd_draws=("effect_sd_draws", "mean")).reset_index()
    per_mode = per_mode.assign(
        harmful=per_mode["harmful"].map(lambda v: _cell(v, 1)),
        harmful_noise=per_mode["harmful_noise"].map(lambda v: _cell(v, 1)),
        helpful_noise=per_mode["helpful_noise"].map(lambda v: _cell(v, 1)),
        mean_effect=per_mode["mean_effect"].map(lambda v: _cell(100 * v, 3)),
        sd_draws=per_mode["sd_draws"].map(lambda v: _cell(100 * v, 3)))
    pairs = agreement.groupby([*keys, "mode_a", "mode_b"], sort=False).agg(
        spearman=("spearman", "mean"), ceiling=("ceiling", "mean"), jaccard=("harmful_jaccard", "mean"),
        changed=("n_category_changed", "sum"), units=("n_units", "sum")).reset_index()
    pairs = pairs.assign(spearman=pairs["spearman"].map(lambda v: _cell(v, 2)),
                         ceiling=pairs["ceiling"].map(lambda v: _cell(v, 2)),
                         jaccard=pairs["jaccard"].map(lambda v: _cell(v, 2)),
                         changed=(100 * pairs["changed"] / pairs["units"]).map(lambda v: _cell(v, 1)))
    curves = tables["curves"]
    areas = ("" if curves.empty else markdown_table(
        curves.groupby(["dataset", "model", "mode"], sort=True)["accuracy"].mean().map(lambda v: _cell(100 * v, 1))
        .unstack("mode").reindex(columns=mode_order(list(curves["mode"].unique()))).reset_index(),
        ["dataset", "model", *mode_order(list(curves["mode"].unique()))]))
    written = [_figure(key, g, _network_curves(tables["curves"], key), Page(figures.parent), figures)
               for key, g in families(tables["rows"], ["dataset", "model"])]
    body = "\n\n".join([
        *(line for _, g in agreement.groupby(["dataset", "model"], sort=True) for line in modes_summary(g)),
        markdown_table(per_mode.rename(columns={
            "harmful": "harmful by sign (%)", "harmful_noise": "harmful beyond noise (units)",
            "helpful_noise": "helpful beyond noise (units)", "mean_effect": "mean effect (pp)",
            "sd_draws": "sd over draws (pp)"}), [*keys, "mode", "seeds", "harmful by sign (%)",
                                                 "harmful beyond noise (units)", "helpful beyond noise (units)",
                                                 "mean effect (pp)", "sd over draws (pp)"]),
        markdown_table(pairs.rename(columns={
            "spearman": "Spearman rho", "ceiling": "reliability ceiling", "jaccard": "harmful-set Jaccard",
            "changed": "units changing noise-aware category (%)"}),
            [*keys, "mode_a", "mode_b", "Spearman rho", "reliability ceiling", "harmful-set Jaccard",
             "units changing noise-aware category (%)"]),
        *([f"Mean test accuracy (%) over the random-order cumulative curve, whole network, by mode:\n\n{areas}"]
          if areas else []),
        *(f"![Mode study: {path.stem}]({path.parent.name}/{path.name})" for path in written),
    ])
    return body, written


def build(study: Study, page: Page) -> list[Section]:
    """The mode study's tables and one figure per network (skipped with fewer than two modes)."""
    if not is_mode_study(study):
        return []
    tables = study_tables(study)
    df, impact, agreement, curves = (tables[k] for k in ("rows", "impact", "agreement", "curves"))
    tables = {
        "mode_impact": Table(
            in_units(impact, pp=["mean_effect", "min_effect", "max_effect", "effect_sd_draws"]),
            f"Single-neuron removal per network, layer and mode on the {SPLIT} split: harmful / helpful "
            f"shares by sign, counts distinguishable from test-image noise (exact McNemar, BH q <= {Q} per "
            "sweep), the mean, smallest and largest effect, and for a per-image mode the mean sd of the "
            "effect over its draws."),
        "mode_agreement": Table(
            in_units(agreement),
            "Rank agreement of per-unit effects between two modes (Spearman rho), beside each mode's "
            f"split-half reliability ({N_HALVES} random halves of the test images, Spearman-Brown corrected, "
            "median; a per-image mode's is its first draw's, a lower bound for the mean of its draws) and their "
            "geometric mean, the ceiling two equally noisy measures of one quantity could "
            "reach on independent images (both modes are measured on the same images, so they share that "
            "noise too, and rho may exceed it); units whose noise-aware category differs between the modes, and units harmful by sign "
            "under one mode only."),
    }
    if not curves.empty:
        tables["mode_cumulative"] = Table(in_units(curves, pct=["accuracy"]),
                                          "Cumulative curves by mode (random order, whole network, test): "
                                          "mean accuracy after k units, over seeds and repetitions.",
                                          collapsed=True)
    figures = [Figure(_figure(key, g, _network_curves(curves, key), page, page.figures), _caption(key, g, curves))
               for key, g in families(df, ["dataset", "model"])]
    paragraphs = [(f"Modes compared: {', '.join(mode_order(list(df['mode'].unique())))} "
                  f"({'; '.join(f'{m}: {NEURON_MODES[m].description}' for m in mode_order(list(df['mode'].unique())))}).")]
    return [Section("Mode study: does the removal method change which neurons are rotten?", paragraphs, tables,
                    figures, modes_summary(agreement))]
