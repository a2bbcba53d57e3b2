"""Convolution channels of torch networks: the first convolution's filters and every
channel's mean feature map, drawn as images, with each channel's single-removal effect.

One figure per network kind (dataset and model), from its lowest seed with a model artifact;
a study without torch networks whose units are convolution channels has no such section.
:func:`unit_sites` and :func:`mean_maps` are pure functions of a
:class:`~sweep.kernels.torchnet.TorchNetwork` and arrays; :func:`build` presents them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import figures as fig
from analysis.formatting import count
from analysis.sections.base import Figure, Page, Section, Table, figure_slug
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


def build(study: Study, page: Page) -> list[Section]:
    """One figure per network kind with convolution channels among its units, and a table of
    every torch network kind's unit sites."""
    neurons = study.rows("neuron")
    if neurons.empty:
        return []
    figures, tables, paragraphs = [], {}, []
    sites = []
    for (dataset, model), group in neurons.groupby(["dataset", "model"], sort=True):
        keys = [k for k in network_keys(group) if study.run(k) is not None]
        if not keys:
            continue
        net = study.network(keys[0])
        if not isinstance(net, TorchNetwork):
            continue
        maps = mean_maps(net, study.split(keys[0], "test")[0])
        sites.append(unit_sites(net, maps).assign(dataset=dataset, model=model))
        if any(m.ndim == 3 for m in maps):
            figures.append(channel_figure(net, maps, keys[0], neurons, page))
        else:
            paragraphs.append(f"{dataset}/{model}: no unit site is a convolution channel; nothing to draw.")
    if not sites:
        return []
    table = pd.concat(sites, ignore_index=True)[["dataset", "model", "layer", "site", "units", "unit_output"]]
    tables["unit_sites"] = Table(table, "The unit sites of each torch network kind: the module whose output holds "
                                        "the units (layer = its index in the rows), how many, and what one is.")
    paragraphs.insert(0, f"{count(len(figures), 'network kind')} with convolution channels drawn: "
                         "what each channel looks for (the first convolution's filters) and where it responds "
                         "on average (its mean feature map).")
    return [Section("Convolution channels: filters and feature maps", paragraphs, tables, figures)]
