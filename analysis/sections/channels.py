"""Torch networks' units by site: convolution channels against fully connected units.

The first convolution's filters and every channel's mean feature map, drawn as images with
each channel's single-removal effect (one figure per network kind, dataset and model, from its
lowest seed with a model artifact); per site, the single-removal effects with both categories
(by sign, and beyond test-image noise: :mod:`analysis.noise`) and the cumulative curves per
site. A study without torch networks has no such section. :func:`unit_sites`,
:func:`mean_maps`, :func:`site_impact` and :func:`site_curves` are pure functions of a
:class:`~sweep.kernels.torchnet.TorchNetwork`, arrays and rows; :func:`build` presents them,
and :mod:`analysis.docs` writes the same tables into ``docs/torch.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analysis import figures as fig
from analysis.formatting import count, in_units
from analysis.noise import noise_categories
from analysis.sections.base import FAMILY_KEYS, Figure, Page, Section, Table, figure_slug
from analysis.sections.cumulative import area_under_curves, curve_band
from analysis.study import NetworkKey, Study, network_keys
from sweep.kernels import TorchNetwork, incoming_weights, mode_values

COLUMNS = 16
"""Panels per row of a channel figure."""


def mean_maps(net: TorchNetwork, X: np.ndarray) -> list[np.ndarray]:
    """Each unit's mean output over the rows of ``X`` (n, n_features): per site an array of
    shape ``(width, *unit_shape)``, ``(width, H, W)`` for a convolution channel's feature map
    (the values ``mean`` mode holds units at, with ``X`` as the reference)."""
    return [v.numpy() for v in mode_values(net, "mean", X)]


def unit_sites(net: TorchNetwork, maps: list[np.ndarray]) -> pd.DataFrame:
    """One row per unit site: ``layer``, ``site`` (module name), ``units`` and ``unit_output``
    (``channel HxW`` for a 2-D feature map, ``feature`` otherwise), from :func:`mean_maps`."""
    return pd.DataFrame({
        "layer": range(len(net.sites)), "site": [str(s) for s in net.sites], "units": list(net.widths),
        "unit_output": [f"channel {'x'.join(map(str, m.shape[1:]))}" if m.ndim == 3 else "feature" for m in maps],
    })


def site_impact(neurons: pd.DataFrame, sites: pd.DataFrame, min_images: int = 3) -> pd.DataFrame:
    """Single-unit removal per network kind, mode and site on the test split, over its seeds.

    Parameters
    ----------
    neurons : DataFrame — neuron rows (``FAMILY_KEYS``, ``layer``, ``effect``, ``fixed``, ``broken``)
    sites : DataFrame — :func:`unit_sites` rows with ``dataset`` and ``model``
    min_images : int — the net image count of the ``images`` noise rule

    Returns
    -------
    DataFrame
        ``dataset, model, mode, layer, site, unit_output, units, seeds``; the effects in
        fractions: ``mean_effect``, ``min_effect``, ``max_effect`` (over every seed's units);
        ``pct_harmful`` (sign only) and ``pct_indistinguishable`` (percent of the site's units,
        averaged over seeds); ``harmful`` (units whose removal raises accuracy, all seeds),
        ``rotten_fdr`` (harmful beyond noise: exact McNemar, BH-FDR within each sweep) and
        ``rotten_images`` (a net gain of at least ``min_images`` test images), all seeds.
    """
    test = neurons[neurons["split"] == "test"]
    if test.empty or sites.empty:
        return pd.DataFrame()
    fdr = noise_categories(test, FAMILY_KEYS)
    images = noise_categories(test, FAMILY_KEYS, rule="images", min_images=min_images)
    rows = fdr.assign(rotten_images=images["noise_category"] == "harmful",
                      rotten_fdr=fdr["noise_category"] == "harmful", harmful=fdr["category"] == "harmful",
                      indistinguishable=fdr["noise_category"] == "indistinguishable")
    keys = ["dataset", "model", "mode", "layer"]
    per_seed = rows.groupby([*keys, "seed"], sort=True).agg(
        pct_harmful=("harmful", "mean"), pct_indistinguishable=("indistinguishable", "mean")).reset_index()
    table = rows.groupby(keys, sort=True).agg(
        seeds=("seed", "nunique"), mean_effect=("effect", "mean"), min_effect=("effect", "min"),
        max_effect=("effect", "max"), harmful=("harmful", "sum"), rotten_fdr=("rotten_fdr", "sum"),
        rotten_images=("rotten_images", "sum")).reset_index()
    shares = per_seed.groupby(keys, sort=True)[["pct_harmful", "pct_indistinguishable"]].mean() * 100
    table = table.merge(shares.reset_index(), on=keys).merge(sites, on=["dataset", "model", "layer"])
    columns = ["dataset", "model", "mode", "layer", "site", "unit_output", "units", "seeds", "mean_effect",
               "min_effect", "max_effect", "pct_harmful", "pct_indistinguishable", "harmful", "rotten_fdr",
               "rotten_images"]
    return table[columns].astype({c: "int64" for c in ("harmful", "rotten_fdr", "rotten_images")})


def site_curves(cumulative: pd.DataFrame, sites: pd.DataFrame) -> pd.DataFrame:
    """Cumulative removal per network kind, mode, split, scope and order, over seeds and
    repetitions: the mean area under the accuracy curve (``auc``: accuracy averaged over the
    fraction removed, :func:`~analysis.sections.cumulative.area_under_curves`), the mean
    accuracy once half of the scope's units are gone (``accuracy_half``, at the prefix nearest
    to half) and the unablated accuracy; ``site`` names a ``layer<i>`` scope's site (``all``
    for ``network``). Fractions throughout."""
    if cumulative.empty:
        return pd.DataFrame()
    keys = ["dataset", "model", "mode", "split", "scope", "order"]
    areas = area_under_curves(cumulative).groupby(keys, sort=True).agg(
        curves=("auc", "size"), accuracy_base=("accuracy_base", "mean"), auc=("auc", "mean")).reset_index()
    band = curve_band(cumulative, keys=keys)
    band = band.assign(distance=(band["fraction"] - 0.5).abs()).sort_values([*keys, "distance", "k"])
    half = band.groupby(keys, sort=True).first()[["mean"]].rename(columns={"mean": "accuracy_half"}).reset_index()
    table = areas.merge(half, on=keys)
    names = {(d, m, f"layer{l}"): s for d, m, l, s in sites[["dataset", "model", "layer", "site"]].itertuples(
        index=False)}
    table.insert(5, "site", [names.get((d, m, scope), "all") for d, m, scope in
                             table[["dataset", "model", "scope"]].itertuples(index=False)])
    return table


def sites_figure(neurons: pd.DataFrame, cumulative: pd.DataFrame, sites: pd.DataFrame, dataset: str,
                 model: str) -> Any:
    """Two panels for one network kind: every unit's test effect by site (one dot per unit and
    seed, zero mode when swept), and the cumulative curves of each site and of the whole
    network in random order (mean over seeds and repetitions, test split)."""
    figure = fig.new_figure(10, 3.8)
    left, right = figure.subplots(1, 2)
    mine = sites[(sites["dataset"] == dataset) & (sites["model"] == model)].sort_values("layer")
    test = neurons[(neurons["dataset"] == dataset) & (neurons["model"] == model) & (neurons["split"] == "test")]
    mode = "zero" if (test["mode"] == "zero").any() else str(min(test["mode"].unique()))
    test = test[test["mode"] == mode]
    rng = np.random.default_rng(0)
    for i, r in enumerate(mine.itertuples(index=False)):
        effect = 100 * test.loc[test["layer"] == r.layer, "effect"].to_numpy()
        colour = "C0" if r.unit_output.startswith("channel") else "C1"
        left.scatter(i + rng.uniform(-0.3, 0.3, len(effect)), effect, s=6, alpha=0.5, color=colour)
    left.axhline(0, color="red", lw=0.8)
    left.set_xticks(range(len(mine)), [f"{r.site}\n{r.unit_output.split()[0]}s" for r in mine.itertuples()])
    left.set_ylabel("test accuracy change on removal (pp)")
    left.set_title(f"single units ({mode})")
    curves = cumulative[(cumulative["dataset"] == dataset) & (cumulative["model"] == model)
                        & (cumulative["order"] == "random") & (cumulative["split"] == "test")]
    if curves.empty:
        fig.say_empty(right, "no random-order cumulative curves", "cumulative removal")
        return figure
    band = curve_band(curves, keys=["scope"])
    names = {f"layer{r.layer}": f"{r.site} ({r.unit_output.split()[0]}s)" for r in mine.itertuples()}
    for scope, rows in band.groupby("scope", sort=True):
        style = "-" if scope == "network" else ("--" if "channel" in names.get(scope, "") else ":")
        right.plot(rows["fraction"], 100 * rows["mean"], style, label=names.get(scope, "whole network"))
    right.set_xlabel("fraction of the scope's units removed (random order)")
    right.set_ylabel("test accuracy (%)")
    right.set_title("cumulative removal")
    right.legend(fontsize=7)
    return figure


def _effects(neurons: pd.DataFrame, key: NetworkKey) -> tuple[str, dict[tuple[int, int], float]]:
    """The mode shown (``zero`` when swept) and each ``(layer, unit)``'s test effect in it."""
    rows = neurons[(neurons["dataset"] == key.dataset) & (neurons["model"] == key.model)
                   & (neurons["seed"] == key.seed) & (neurons["split"] == "test")]
    if rows.empty:
        return "", {}
    mode = "zero" if (rows["mode"] == "zero").any() else str(min(rows["mode"].unique()))
    rows = rows[rows["mode"] == mode]
    return mode, {(int(l), int(u)): float(e) for l, u, e in zip(rows["layer"], rows["unit"], rows["effect"])}


def channel_figure(net: TorchNetwork, maps: list[np.ndarray], key: NetworkKey, neurons: pd.DataFrame,
                   page: Page) -> Figure:
    """The first convolution site's filters, then every convolution site's mean feature maps
    (test), one panel per channel titled with its test effect in pp."""
    conv = [layer for layer, m in enumerate(maps) if m.ndim == 3]
    mode, effects = _effects(neurons, key)
    blocks = [("filter", conv[0])] + [("map", layer) for layer in conv]
    rows_of = [-(-net.widths[layer] // COLUMNS) for _, layer in blocks]
    columns = min(COLUMNS, max(net.widths[layer] for layer in conv))
    figure = fig.new_figure(0.9 * columns + 0.6, 1.05 * sum(rows_of) + 0.4)
    axes = figure.subplots(sum(rows_of), columns, squeeze=False)
    filters = incoming_weights(net, conv[0])
    first_row = 0
    for (what, layer), n_rows in zip(blocks, rows_of):
        limit = float(np.nanmax(np.abs(filters))) if what == "filter" else float(maps[layer].max())
        for unit in range(n_rows * columns):
            ax = axes[first_row + unit // columns, unit % columns]
            if unit >= net.widths[layer]:
                ax.set_axis_off()
                continue
            effect = effects.get((layer, unit))
            title = f"L{layer} c{unit}" + ("" if effect is None else f" {100 * effect:+.1f}")
            image = fig.filter_image(filters[unit]) if what == "filter" else maps[layer][unit]
            fig.plot_panel(image, ax, title, diverging=what == "filter", limit=limit)
        axes[first_row, 0].set_ylabel(f"{'filters' if what == 'filter' else 'mean maps'}\n{net.sites[layer]}",
                                      fontsize=7)
        first_row += n_rows
    shown = f"{mode} removal" if mode else "no single-removal sweep"
    caption = (f"{key.label()}: the filters of the first convolution site ({net.sites[conv[0]]}; red: positive, "
               "blue: negative weight, one scale for all), then the mean feature map over the test images of "
               f"each channel of {', '.join(str(net.sites[l]) for l in conv)} (one scale per site, dark: 0). "
               f"Above each panel: L<site> c<channel> and its test accuracy change in pp ({shown}).")
    slug = figure_slug("channels", key.dataset, key.model, f"seed{key.seed}")
    return Figure(fig.save_figure(figure, page.figures, slug, page.svg), caption)


def torch_kinds(study: Study, neurons: pd.DataFrame) -> list[tuple[NetworkKey, TorchNetwork, list[np.ndarray]]]:
    """Each torch network kind (dataset and model) of the rows with a model artifact: the key
    of its lowest such seed, that network, and its :func:`mean_maps` on that seed's test split."""
    kinds = []
    for _, group in neurons.groupby(["dataset", "model"], sort=True):
        keys = [k for k in network_keys(group) if study.run(k) is not None]
        if keys and isinstance(net := study.network(keys[0]), TorchNetwork):
            kinds.append((keys[0], net, mean_maps(net, study.split(keys[0], "test")[0])))
    return kinds


def all_sites(kinds: list[tuple[NetworkKey, TorchNetwork, list[np.ndarray]]]) -> pd.DataFrame:
    """:func:`unit_sites` of every kind of :func:`torch_kinds`, with ``dataset`` and ``model``."""
    return pd.concat([unit_sites(net, maps).assign(dataset=key.dataset, model=key.model)
                      for key, net, maps in kinds], ignore_index=True)[
        ["dataset", "model", "layer", "site", "units", "unit_output"]]


def build(study: Study, page: Page) -> list[Section]:
    """Per torch network kind: its channels' filters and mean maps (when it has convolution
    channels), its sites' single-removal effects and cumulative curves; tables of every
    kind's sites, their effects and their curves."""
    neurons = study.rows("neuron")
    if neurons.empty:
        return []
    kinds = torch_kinds(study, neurons)
    if not kinds:
        return []
    figures, tables, paragraphs = [], {}, []
    for key, net, maps in kinds:
        if any(m.ndim == 3 for m in maps):
            figures.append(channel_figure(net, maps, key, neurons, page))
        else:
            paragraphs.append(f"{key.dataset}/{key.model}: no unit site is a convolution channel; nothing to draw.")
    table = all_sites(kinds)
    tables["unit_sites"] = Table(table, "The unit sites of each torch network kind: the module whose output holds "
                                        "the units (layer = its index in the rows), how many, and what one is.")
    impact = site_impact(neurons, table)
    if len(impact):
        tables["site_impact"] = Table(
            in_units(impact, pp=["mean_effect", "min_effect", "max_effect"]),
            "Single-unit removal by site on test, over every seed: the effects, the share of harmful units (by "
            "sign) and of units indistinguishable from test-image noise (averaged over seeds), and counts over all "
            "seeds of harmful units, of those harmful beyond noise (rotten fdr: exact McNemar, BH-FDR within each "
            "sweep) and of those gaining at least 3 test images (rotten images).")
    cumulative = study.rows("cumulative")
    for (dataset, model), _ in table.groupby(["dataset", "model"], sort=True):
        figure = sites_figure(neurons, cumulative, table, dataset, model)
        figures.append(Figure(
            fig.save_figure(figure, page.figures, figure_slug("sites", dataset, model), page.svg),
            f"{dataset}/{model}: left, every unit's test accuracy change on removal by site, one dot per unit and "
            "seed (blue: convolution channels, orange: fully connected units; red line: no change); right, test "
            "accuracy as a random growing share of one site's units (dashed: channels, dotted: features) or of "
            "the whole network (solid) is removed, mean over seeds and repetitions."))
    curves = site_curves(cumulative, table)
    if len(curves):
        tables["site_cumulative"] = Table(
            in_units(curves, pct=["accuracy_base", "auc", "accuracy_half"]),
            "Cumulative removal by scope (a site's units, or the whole network) and order, over seeds and "
            "repetitions: the mean accuracy along the curve (auc), with half of the scope removed, and unablated.")
    paragraphs.insert(0, f"{count(len(figures), 'network kind')} with convolution channels drawn: "
                         "what each channel looks for (the first convolution's filters) and where it responds "
                         "on average (its mean feature map).")
    return [Section("Convolution channels: filters and feature maps", paragraphs, tables, figures)]
