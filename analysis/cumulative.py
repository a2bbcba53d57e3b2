"""Cumulative ablation, unit statistics and the memorization study: tables, figures, sections.

Tables are functions of DataFrames (``kind=cumulative``, ``kind=unit``, ``kind=neuron`` rows
as :func:`analysis.load.load` returns them); figures draw on the Axes they are given;
:func:`report_sections` is a :data:`analysis.sections.SectionBuilder`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from scipy.integrate import trapezoid
from scipy.stats import ConstantInputWarning, spearmanr

from analysis import figures as fig
from analysis.load import RUN_KEYS, has_kind, load, load_manifest
from analysis.sections import (
    Figure,
    Section,
    Table,
    count,
    family_label,
    figure_slug,
    value_range,
)

CURVE_KEYS: list[str] = [*RUN_KEYS, "mode", "split", "scope"]
"""Columns identifying one family of cumulative curves (one network, mode, split, scope)."""

LEVEL = 0.95
"""Coverage of the band drawn around the random-order curves."""


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
    band = mean_and_interval(df, [*keys, "k"], value, level, ("mean", "low", "high", "n"))
    k_max = band.groupby(keys)["k"].transform("max")
    band.insert(len(keys) + 1, "fraction", band["k"] / k_max.where(k_max > 0, 1))
    return band


def mean_and_interval(
    df: pd.DataFrame, keys: list[str], value: str, level: float, names: tuple[str, str, str, str]
) -> pd.DataFrame:
    """Per group of ``keys``: the mean of ``value``, its central ``level`` percentile interval
    and the group size, in columns named ``names`` (mean, low, high, count)."""
    tail = (1 - level) / 2
    mean, low, high, size = names
    aggregations = {
        mean: "mean",
        low: lambda s: s.quantile(tail),
        high: lambda s: s.quantile(1 - tail),
        size: "size",
    }
    return df.groupby(keys, sort=True)[value].agg(**aggregations).reset_index()


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
    return mean_and_interval(areas, keys, "auc", level, ("auc", "auc_low", "auc_high", "repetitions"))


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
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(fontsize=7)


def _plot_band(ax: Axes, curve: pd.DataFrame, label: str, color: str | None = None) -> None:
    """One curve's ``mean`` against ``fraction``, with its ``low``-``high`` band where it has one."""
    (line,) = ax.plot(curve["fraction"], curve["mean"], label=label, color=color, lw=1.2)
    if (curve["high"] > curve["low"]).any():
        ax.fill_between(curve["fraction"], curve["low"], curve["high"], color=line.get_color(), alpha=0.2)


def plot_selectivity_importance(
    joined: pd.DataFrame, ax: Axes, stat: str = "selectivity", title: str = ""
) -> None:
    """Scatter of a unit statistic against the single-ablation effect, one colour per layer,
    each layer's Spearman rho in the legend.

    Parameters
    ----------
    joined : DataFrame — :func:`selectivity_importance` rows of one network, mode and split
    """
    rho = spearman_by_layer(joined, stat).groupby("layer")["rho"].first()
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
    ax.legend(fontsize=7)


def plot_memorization(curves: pd.DataFrame, ax: Axes, title: str = "") -> None:
    """Normalised accuracy against the fraction ablated, one line (and band) per noise level.

    Parameters
    ----------
    curves : DataFrame — :func:`memorization_curves` rows of one model, mode, split, scope
    """
    for noise, curve in curves.groupby("label_noise", sort=True):
        _plot_band(ax, curve, f"label noise {noise:g}")
    ax.set_xlabel("fraction of units ablated")
    ax.set_ylabel("accuracy / unablated accuracy")
    ax.set_title(title)
    ax.legend(fontsize=7)


# --------------------------------------------------------------------------- report


def _auc_finding(table: pd.DataFrame) -> str:
    """One paragraph per family: the most and least damaging orders against random."""
    key = table.iloc[0][_present(table, CURVE_KEYS)].to_dict()
    ranked = table.sort_values(["auc", "order"])
    worst, best = ranked.iloc[0], ranked.iloc[-1]
    text = (
        f"On {family_label(key)}, the most damaging order is {worst['order']} (area {worst['auc']:.3f}) "
        f"and the least damaging {best['order']} (area {best['auc']:.3f})"
    )
    random = table[table["order"] == "random"]
    if len(random):
        r = random.iloc[0]
        text += (
            f"; random orders give {r['auc']:.3f} "
            f"({100 * LEVEL:.0f} % of {int(r['repetitions'])} repetitions in "
            f"[{r['auc_low']:.3f}, {r['auc_high']:.3f}])"
        )
    return text + "."


def _cumulative_section(df: pd.DataFrame, out_dir: Path) -> Section:
    band, table = curve_band(df), auc_table(df)
    keys = _present(df, CURVE_KEYS)
    figures, paragraphs = [], []
    for key, family in band.groupby(keys, sort=True):
        label = family_label(dict(zip(keys, key)))
        figure = fig.new_figure()
        plot_cumulative(family, figure.subplots(), label)
        random = family[family["order"] == "random"]
        repetitions = int(random["n"].max()) if len(random) else 0
        band_text = (f" The random order is black, its band holding {100 * LEVEL:.0f} % of its "
                     f"{repetitions} repetitions." if repetitions > 1 else "")
        figures.append(Figure(
            fig.save_figure(figure, out_dir / "figures", figure_slug("cumulative", *key)),
            f"Cumulative ablation of {label}: accuracy as growing sets of units are removed, one "
            f"line per order in which they are removed.{band_text}",
        ))
    for _, family in table.groupby(keys, sort=True):
        paragraphs.append(_auc_finding(family))
    worst = table.sort_values(["auc", "order"]).groupby(keys, sort=True)["order"].first()
    common = worst.value_counts()
    areas = table.loc[table["order"] == common.index[0], "auc"]
    summary = [
        f"In cumulative ablation the most damaging order is {common.index[0]} "
        f"({common.iloc[0]} of {count(len(worst), 'curve family', 'curve families')}; area "
        f"under its accuracy curve {value_range(areas, '.3f')})."
    ]
    caption = (
        "Area under each cumulative accuracy curve divided by the number of units it removes "
        "(the mean accuracy along the curve), per order: mean over repetitions "
        f"and the central {100 * LEVEL:.0f} % of them (low, high)."
    )
    return Section("Cumulative ablation", paragraphs, {"cumulative_auc": Table(table, caption)},
                   figures, summary)


def _selectivity_section(units: pd.DataFrame, neurons: pd.DataFrame, out_dir: Path) -> Section:
    joined = selectivity_importance(units, neurons)
    table = spearman_by_layer(joined)
    figures = []
    keys = _present(joined, [*RUN_KEYS, "mode", "split"])
    for key, rows in joined.groupby(keys, sort=True):
        label = family_label(dict(zip(keys, key)))
        figure = fig.new_figure()
        plot_selectivity_importance(rows, figure.subplots(), title=label)
        stat_split = ", ".join(sorted(rows["stat_split"].unique()))
        figures.append(Figure(
            fig.save_figure(figure, out_dir / "figures", figure_slug("selectivity", *key)),
            f"Class selectivity of each unit (measured on the {stat_split} split) of {label} "
            "against the change of accuracy when it alone is removed, in pp; one colour per "
            "layer, Spearman's rho per layer in the legend.",
        ))
    paragraphs = [
        f"{r.dataset}/{r.model} seed {r.seed} ({r.mode}, {r.split}) layer {r.layer}: "
        + (f"Spearman rho between class selectivity and removal effect {r.rho:.3f} "
           f"(p = {r.p_value:.3g}, n = {r.n})." if not np.isnan(r.rho) else
           f"no Spearman rho between class selectivity and removal effect (one of them is "
           f"constant over the {r.n} units).")
        for r in table.itertuples()
    ]
    rho = table["rho"].dropna()
    summary = [
        f"Class selectivity and the effect of removing a unit correlate with Spearman rho "
        f"{value_range(rho)} (one rho per network, split and layer: {len(rho)} in all)."
    ] if len(rho) else []
    caption = ("Spearman correlation between each unit's class selectivity and its single-removal "
               "effect, per network, mode, split and layer (n: units).")
    return Section("Class selectivity against importance", paragraphs,
                   {"selectivity_spearman": Table(table, caption)}, figures, summary)


def _memorization_section(
    df: pd.DataFrame, manifest: dict[str, Any], out_dir: Path
) -> Section | None:
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
        figure = fig.new_figure()
        plot_memorization(rows, figure.subplots(), family_label(family))
        figures.append(Figure(
            fig.save_figure(figure, out_dir / "figures", figure_slug("memorization", *key)),
            f"Memorization: accuracy of {family['model']} on the {family['split']} split divided "
            "by the unablated accuracy, as random sets of units are removed, one line per "
            f"label-noise level (band: the central {100 * LEVEL:.0f} % of its curves).",
        ))
    areas = area_under_curves(df[df["order"] == "random"]).merge(
        label_noise_levels(manifest), on=RUN_KEYS
    )
    areas["normalized_auc"] = areas["auc"] / areas["accuracy_base"]
    table = (
        areas.groupby(["model", "mode", "split", "scope", "label_noise"], sort=True)[
            "normalized_auc"
        ]
        .agg(["mean", "std", "size"])
        .reset_index()
    )
    paragraphs = [
        f"{r.model} ({r.mode}, {r.split}, {r.scope}), label noise {r.label_noise:g}: "
        "normalised area "
        f"under the random-ablation curve {r.mean:.3f} over {r.size} curves."
        for r in table.itertuples()
    ]
    if not on_train:
        paragraphs.append(
            "These curves are measured on held-out data, where a network trained on random labels is at "
            "chance; measure on the labels each network was trained on with ablation.splits=[train]."
        )
    levels = table.groupby("label_noise", sort=True)["mean"].mean()
    summary = [
        "Under random ablation, networks keep a normalised area of "
        + ", ".join(f"{area:.2f} at label noise {noise:g}" for noise, area in levels.items())
        + " (1 = no loss): the lower, the sooner they break."
    ]
    caption = ("Normalised area under the random-ablation curves (accuracy divided by the "
               "unablated one) per label-noise level: mean and standard deviation over the "
               "curves of every seed and repetition (size).")
    return Section(
        "Memorization: ablation robustness against label noise",
        paragraphs,
        {"memorization_auc": Table(table, caption)},
        figures,
        summary,
    )


def report_sections(results_root: str, study: str, out_dir: Path) -> list[Section]:
    """The report sections of cumulative ablation, selectivity vs importance, memorization.

    Each section appears only when its inputs exist (``kind=cumulative``; ``kind=unit`` and
    ``kind=neuron``; cumulative curves at two or more label-noise levels). Figures are
    written under ``out_dir / "figures"``.
    """
    sections: list[Section] = []
    if has_kind(results_root, study, "cumulative"):
        cumulative = load(results_root, study, "cumulative")
        sections.append(_cumulative_section(cumulative, out_dir))
        memorization = _memorization_section(
            cumulative, load_manifest(results_root, study), out_dir
        )
        sections += [memorization] if memorization is not None else []
    if has_kind(results_root, study, "unit") and has_kind(results_root, study, "neuron"):
        units, neurons = load(results_root, study, "unit"), load(results_root, study, "neuron")
        sections.append(_selectivity_section(units, neurons, out_dir))
    return sections
