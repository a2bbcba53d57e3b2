"""Cumulative ablation, unit statistics and the memorization study: tables, figures, sections.

Tables are functions of DataFrames (``kind=cumulative``, ``kind=unit``, ``kind=neuron`` rows);
figures draw on the Axes they are given, accuracies in %; :func:`build` presents them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from scipy.integrate import trapezoid
from scipy.stats import ConstantInputWarning, spearmanr

from analysis import figures as fig
from analysis.formatting import count, in_units, number, value_range
from analysis.sections.base import Figure, Page, Section, Table, family_label, figure_slug
from analysis.stats import LEVEL, percentile_interval
from analysis.study import RUN_KEYS, Study

CURVE_KEYS: list[str] = [*RUN_KEYS, "mode", "split", "scope"]
"""Columns identifying one family of cumulative curves (one network, mode, split, scope)."""

LEGEND = {"fontsize": 7, "loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0}
"""Legends beside the axes, never over the curves."""


def _present(df: pd.DataFrame, columns: list[str]) -> list[str]:
    return [c for c in columns if c in df.columns]


# --------------------------------------------------------------------------- tables


def curve_band(
    df: pd.DataFrame, value: str = "accuracy", level: float = LEVEL, keys: list[str] | None = None
) -> pd.DataFrame:
    """Mean and central ``level`` interval of a curve over its repetitions (and any rows
    sharing the keys), per prefix length.

    Parameters
    ----------
    df : DataFrame — cumulative rows (``order``, ``k`` and ``value``, plus key columns)
    value : str — the column summarised
    level : float — coverage of the percentile interval over repetitions
    keys : list of str, optional — grouping columns besides ``k``; default the
        :data:`CURVE_KEYS` present plus ``order``

    Returns
    -------
    DataFrame
        ``keys, k, fraction (k / K of the group), mean, low, high, n`` (``n`` rows averaged;
        low = high = mean for a deterministic order).
    """
    keys = _present(df, CURVE_KEYS) + ["order"] if keys is None else keys
    band = percentile_interval(df, [*keys, "k"], value, level)
    k_max = band.groupby(keys)["k"].transform("max")
    band.insert(len(keys) + 1, "fraction", band["k"] / k_max.where(k_max > 0, 1))
    return band


def area_under_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Trapezoidal area under each accuracy curve over ``k``, divided by its ``K = max k``.

    A curve that stays at accuracy ``a`` has area ``a``; the faster accuracy falls, the
    smaller the area.

    Returns
    -------
    DataFrame
        One row per curve: the :data:`CURVE_KEYS` present, ``order``, ``repetition``,
        ``accuracy_base``, ``auc``.
    """
    keys = _present(df, CURVE_KEYS) + ["order", "repetition"]

    def auc(curve: pd.DataFrame) -> float:
        curve = curve.sort_values("k")
        k, a = curve["k"].to_numpy(float), curve["accuracy"].to_numpy(float)
        return float(trapezoid(a, k) / k[-1]) if k[-1] > 0 else float(a[0])

    grouped = df.groupby(keys, sort=True)
    out = grouped["accuracy_base"].first().to_frame()
    out["auc"] = grouped[["k", "accuracy"]].apply(auc)
    return out.reset_index()


def auc_table(df: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """Area under the curves per order: mean and interval over repetitions.

    Returns
    -------
    DataFrame
        The :data:`CURVE_KEYS` present, ``order``, ``auc`` (mean), ``auc_low``, ``auc_high``,
        ``repetitions``.
    """
    areas = area_under_curves(df)
    keys = _present(areas, CURVE_KEYS) + ["order"]
    table = percentile_interval(areas, keys, "auc", level)
    return table.rename(columns={"mean": "auc", "low": "auc_low", "high": "auc_high",
                                 "n": "repetitions"})


def selectivity_importance(
    units: pd.DataFrame, neurons: pd.DataFrame, stat: str = "selectivity"
) -> pd.DataFrame:
    """Join a unit statistic (``kind=unit``) with single-ablation effects (``kind=neuron``).

    Joined on ``dataset, model, seed, layer, unit``; the statistic's split is kept as
    ``stat_split``, the effect's ``mode`` and ``split`` as they are.

    Returns
    -------
    DataFrame
        ``dataset, model, seed, mode, split, layer, unit, stat_split, <stat>, effect``.
    """
    keys = [*RUN_KEYS, "layer", "unit"]
    left = units[[*keys, "split", stat]].rename(columns={"split": "stat_split"})
    right = neurons[_present(neurons, [*RUN_KEYS, "mode", "split", "layer", "unit", "effect"])]
    joined = right.merge(left, on=keys, how="inner")
    order = _present(
        joined, [*RUN_KEYS, "mode", "split", "layer", "unit", "stat_split", stat, "effect"]
    )
    return joined[order].sort_values(order[:7]).reset_index(drop=True)


def spearman_by_layer(joined: pd.DataFrame, stat: str = "selectivity") -> pd.DataFrame:
    """Spearman correlation between a unit statistic and the effect, per network and layer.

    Returns
    -------
    DataFrame
        The grouping columns present among ``dataset, model, seed, mode, split, stat_split,
        layer``, then ``n``, ``rho``, ``p_value`` (NaN where either variable is constant).
    """
    keys = _present(joined, [*RUN_KEYS, "mode", "split", "stat_split", "layer"])

    def correlate(group: pd.DataFrame) -> pd.Series:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConstantInputWarning)
            result = spearmanr(group[stat], group["effect"])
        return pd.Series(
            {"n": len(group), "rho": float(result.statistic), "p_value": float(result.pvalue)}
        )

    table = joined.groupby(keys, sort=True)[[stat, "effect"]].apply(correlate).reset_index()
    return table.astype({"n": "int64"})


def label_noise_levels(manifest: dict[str, Any]) -> pd.DataFrame:
    """The label-noise level of every run of a manifest (0 where the run has none).

    Returns
    -------
    DataFrame
        ``dataset, model, seed, label_noise``.
    """
    rows = [
        {
            "dataset": r["dataset"],
            "model": r["model"],
            "seed": int(r["seed"]),
            "label_noise": float((r.get("dataset_params") or {}).get("label_noise") or 0.0),
        }
        for r in manifest.get("runs", [])
    ]
    return pd.DataFrame(rows, columns=[*RUN_KEYS, "label_noise"]).astype(
        {"dataset": str, "model": str, "seed": "int64", "label_noise": "float64"}
    )


def memorization_curves(
    df: pd.DataFrame, manifest: dict[str, Any], order: str = "random", level: float = LEVEL
) -> pd.DataFrame:
    """Cumulative curves per label-noise level, accuracy normalised to the unablated one.

    Runs are matched to the manifest on ``(dataset, model, seed)`` (the noisy datasets are
    separate dataset partitions, e.g. ``mnist`` and ``mnist-noise1.0``); rows of every seed
    and repetition at one noise level are pooled.

    Parameters
    ----------
    df : DataFrame — cumulative rows
    manifest : dict — the study's manifest
    order : str — the order whose curves are compared

    Returns
    -------
    DataFrame
        ``model, mode, split, scope, label_noise, k, fraction, mean, low, high, n`` of the
        normalised accuracy ``accuracy / accuracy_base``.
    """
    rows = df[df["order"] == order].merge(label_noise_levels(manifest), on=RUN_KEYS, how="inner")
    rows = rows.assign(
        normalized=rows["accuracy"] / rows["accuracy_base"].where(rows["accuracy_base"] > 0)
    )
    keys = _present(rows, ["model", "mode", "split", "scope"]) + ["label_noise"]
    return curve_band(rows, value="normalized", level=level, keys=keys)


# --------------------------------------------------------------------------- figures


def plot_cumulative(band: pd.DataFrame, ax: Axes, title: str = "") -> None:
    """Accuracy against the fraction of units ablated, one line per order, with the band
    (``random`` drawn in black).

    Parameters
    ----------
    band : DataFrame — :func:`curve_band` rows of one family
        (``order, fraction, mean, low, high``)
    """
    for order, curve in band.groupby("order", sort=True):
        _plot_band(ax, curve, str(order), "black" if order == "random" else None)
    ax.set_xlabel("fraction of units ablated")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(**LEGEND)


def _plot_band(ax: Axes, curve: pd.DataFrame, label: str, color: str | None = None) -> None:
    """One curve's ``mean`` (a fraction, drawn in %) against ``fraction``, with its
    ``low``-``high`` band where it has one."""
    (line,) = ax.plot(curve["fraction"], 100 * curve["mean"], label=label, color=color, lw=1.2)
    if (curve["high"] > curve["low"]).any():
        ax.fill_between(curve["fraction"], 100 * curve["low"], 100 * curve["high"],
                        color=line.get_color(), alpha=0.2)


def plot_selectivity_importance(
    joined: pd.DataFrame, ax: Axes, stat: str = "selectivity", title: str = ""
) -> None:
    """Scatter of a unit statistic against the single-ablation effect, one colour per layer,
    each layer's Spearman rho (the median over seeds when there are several) in the legend.

    Parameters
    ----------
    joined : DataFrame — :func:`selectivity_importance` rows of one network kind, mode and
        split (any number of seeds)
    """
    rho = spearman_by_layer(joined, stat).groupby("layer")["rho"].median()
    for layer, rows in joined.groupby("layer", sort=True):
        ax.scatter(
            rows[stat],
            rows["effect"] * 100,
            s=6,
            alpha=0.6,
            label=f"layer {layer} (rho = {rho[layer]:.2f})" if not np.isnan(rho[layer])
            else f"layer {layer} (no rho: constant)",
        )
    ax.axhline(0.0, color="red", linewidth=1)
    ax.set_xlabel(stat.replace("_", " "))
    ax.set_ylabel("accuracy change on removal (pp)")
    ax.set_title(title)
    ax.legend(**LEGEND)


def plot_memorization(curves: pd.DataFrame, ax: Axes, title: str = "") -> None:
    """Normalised accuracy against the fraction ablated, one line (and band) per noise level.

    Parameters
    ----------
    curves : DataFrame — :func:`memorization_curves` rows of one model, mode, split, scope
    """
    for noise, curve in curves.groupby("label_noise", sort=True):
        _plot_band(ax, curve, f"label noise {noise:g}")
    ax.set_xlabel("fraction of units ablated")
    ax.set_ylabel("accuracy / unablated accuracy (%)")
    ax.set_title(title)
    ax.legend(**LEGEND)


# --------------------------------------------------------------------------- report


FIGURE_KEYS: list[str] = ["dataset", "model", "mode", "split"]
"""One figure per network kind, mode and split: a panel per scope, every seed pooled."""


def _cumulative_section(df: pd.DataFrame, page: Page) -> Section:
    pooled_keys = _present(df, [k for k in CURVE_KEYS if k != "seed"])
    band = curve_band(df, keys=[*pooled_keys, "order"])
    table = auc_table(df)
    figure_keys = _present(df, FIGURE_KEYS)
    figures = []
    for key, family in band.groupby(figure_keys, sort=True):
        scopes = sorted(family["scope"].unique()) if "scope" in family.columns else [None]
        figure = fig.new_figure(4.2 * len(scopes) + 1.6, 3.4)
        axes = np.atleast_1d(figure.subplots(1, len(scopes)))
        for ax, scope in zip(axes, scopes):
            rows = family if scope is None else family[family["scope"] == scope]
            plot_cumulative(rows, ax, f"scope {scope}" if scope is not None else "")
            if ax is not axes[-1]:
                ax.get_legend().remove()
        label = family_label(dict(zip(figure_keys, key)))
        seeds = df.loc[(df[figure_keys] == pd.Series(dict(zip(figure_keys, key)))).all(axis=1), "seed"].nunique()
        figures.append(Figure(
            fig.save_figure(figure, page.figures, figure_slug("cumulative", *key), page.svg),
            f"Cumulative ablation of {label}: accuracy (%) as growing sets of units are removed, "
            "one line per order (random in black), one panel per scope; the mean over "
            f"{count(seeds, 'seed')} and every repetition, the band holding the central "
            f"{100 * LEVEL:.0f} % of them."))
    pooled = percentile_interval(area_under_curves(df), [*pooled_keys, "order"], "auc", LEVEL)
    pooled = pooled.rename(columns={"mean": "auc", "low": "auc_low", "high": "auc_high",
                                    "n": "curves"})
    worst = pooled.sort_values(["auc", "order"]).groupby(pooled_keys, sort=True)["order"].first()
    common = worst.value_counts()
    areas = pooled.loc[pooled["order"] == common.index[0], "auc"]
    summary = [
        f"In cumulative ablation the most damaging order is {common.index[0]} "
        f"({common.iloc[0]} of {count(len(worst), 'curve family', 'curve families')}; mean "
        f"accuracy along its curve {value_range(100 * areas, 1)} %)."
    ]
    caption = (
        "Area under each cumulative accuracy curve divided by the number of units it removes "
        "(the mean accuracy along the curve, %), per order, over every seed and repetition: "
        f"mean and the central {100 * LEVEL:.0f} % (low, high) of the curves.")
    per_seed = ("The same per seed: mean over repetitions and their central "
                f"{100 * LEVEL:.0f} %.")
    tables = {"cumulative_auc": Table(in_units(pooled, pct=["auc", "auc_low", "auc_high"]), caption),
              "cumulative_auc_per_seed": Table(in_units(table, pct=["auc", "auc_low", "auc_high"]),
                                               per_seed, collapsed=True)}
    return Section("Cumulative ablation", [], tables, figures, summary)


def _selectivity_section(units: pd.DataFrame, neurons: pd.DataFrame, page: Page) -> Section:
    joined = selectivity_importance(units, neurons)
    table = spearman_by_layer(joined)
    figures = []
    keys = _present(joined, FIGURE_KEYS)
    for key, rows in joined.groupby(keys, sort=True):
        label = family_label(dict(zip(keys, key)))
        figure = fig.new_figure(7.5, 3.6)
        plot_selectivity_importance(rows, figure.subplots(), title=label)
        stat_split = ", ".join(sorted(rows["stat_split"].unique()))
        figures.append(Figure(
            fig.save_figure(figure, page.figures, figure_slug("selectivity", *key), page.svg),
            f"Class selectivity of each unit (measured on the {stat_split} split) of {label}, "
            f"every seed ({rows['seed'].nunique()}), against the change of accuracy when it "
            "alone is removed, in pp; one colour per layer, the median over seeds of each "
            "layer's Spearman rho in the legend; the table gives each seed's rho."))
    rho = table["rho"].dropna()
    constant = int(table["rho"].isna().sum())
    paragraphs = [f"{count(constant, 'layer')} {'has' if constant == 1 else 'have'} no rho: "
                  "selectivity or effect is constant there."] if constant else []
    summary = [
        f"Class selectivity and the effect of removing a unit correlate with Spearman rho "
        f"{value_range(rho)} (one rho per network, split and layer: {len(rho)} in all)."
    ] if len(rho) else []
    caption = ("Spearman correlation between each unit's class selectivity and its single-removal "
               "effect, per network, mode, split and layer (n: units).")
    return Section("Class selectivity against importance", paragraphs,
                   {"selectivity_spearman": Table(table, caption)}, figures, summary)


def _memorization_section(df: pd.DataFrame, manifest: dict[str, Any], page: Page) -> Section | None:
    # A network trained on random labels is at chance on held-out data: its robustness is
    # measured on the labels it was trained on (Morcos et al.), so the train split when present.
    on_train = (df["split"] == "train").any()
    df = df[df["split"] == "train"] if on_train else df
    curves = memorization_curves(df, manifest)
    if curves["label_noise"].nunique() < 2:
        return None
    keys = _present(curves, ["model", "mode", "split", "scope"])
    figures = []
    for key, rows in curves.groupby(keys, sort=True):
        family = dict(zip(keys, key))
        figure = fig.new_figure(7.5, 3.6)
        plot_memorization(rows, figure.subplots(), family_label(family))
        figures.append(Figure(
            fig.save_figure(figure, page.figures, figure_slug("memorization", *key), page.svg),
            f"Memorization: accuracy of {family['model']} on the {family['split']} split divided "
            "by the unablated accuracy (%), as random sets of units are removed, one line per "
            f"label-noise level (band: the central {100 * LEVEL:.0f} % of its curves).",
        ))
    areas = area_under_curves(df[df["order"] == "random"]).merge(
        label_noise_levels(manifest), on=RUN_KEYS)
    areas["normalized_auc"] = areas["auc"] / areas["accuracy_base"]
    table = (areas.groupby(["model", "mode", "split", "scope", "label_noise"], sort=True)[
        "normalized_auc"].agg(["mean", "std", "size"]).reset_index())
    paragraphs = [] if on_train else [
        "These curves are measured on held-out data, where a network trained on random labels "
        "is at chance; measure on the labels each network was trained on with "
        "ablation.splits=[train]."]
    levels = table.groupby("label_noise", sort=True)["mean"].mean()
    summary = [
        "Under random ablation, networks keep a normalised area of "
        + ", ".join(f"{number(100 * area, 0)} % at label noise {noise:g}"
                    for noise, area in levels.items())
        + " (100 % = no loss): the lower, the sooner they break."]
    caption = ("Normalised area under the random-ablation curves (accuracy divided by the "
               "unablated one) per label-noise level: mean and standard deviation over the "
               "curves of every seed and repetition (size).")
    return Section("Memorization: ablation robustness against label noise", paragraphs,
                   {"memorization_auc": Table(table, caption)}, figures, summary)


def build(study: Study, page: Page) -> list[Section]:
    """Cumulative ablation, selectivity against importance, memorization; each only when
    its inputs exist (``kind=cumulative``; ``kind=unit`` and ``kind=neuron``; cumulative
    curves at two or more label-noise levels)."""
    sections: list[Section] = []
    if study.has("cumulative"):
        cumulative = study.rows("cumulative")
        sections.append(_cumulative_section(cumulative, page))
        memorization = _memorization_section(cumulative, study.manifest, page)
        sections += [memorization] if memorization is not None else []
    if study.has("unit") and study.has("neuron"):
        sections.append(_selectivity_section(study.rows("unit"), study.rows("neuron"), page))
    return sections
