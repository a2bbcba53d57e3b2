"""The most harmful neuron of each sweep: what it looks at (incoming weights), the test
images its removal fixes and breaks, and its incoming synapses' effects (paper figures 3-5).

One table lists every sweep's most harmful neuron (ties named); the first network's figures
are open, the others collapsed.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis import figures as fig
from analysis.formatting import count, in_units, listing
from analysis.sections.base import FAMILY_KEYS, Figure, Page, Section, Table, family_label, figure_slug
from analysis.sections.heldout import prediction_change
from analysis.study import NetworkKey, Study

SHOWN_IMAGES = 8
"""Test images shown per row of the fixed / broken figure of a harmful neuron."""


def most_harmful_table(neurons: pd.DataFrame) -> pd.DataFrame:
    """Per sweep (network, mode, split) the neurons with the largest effect, over all layers.

    Returns
    -------
    DataFrame
        One row per sweep: ``FAMILY_KEYS``, ``layer``, ``unit`` (the lowest layer, then unit,
        among ties), ``effect``, ``fixed``, ``broken``, ``tied`` (how many neurons share the
        largest effect) and ``tied_units`` (``layer:unit`` of each, when more than one).
    """
    rows = []
    for key, group in neurons.groupby(FAMILY_KEYS, sort=True):
        top = group[group["effect"] == group["effect"].max()].sort_values(["layer", "unit"])
        first = top.iloc[0]
        rows.append({**dict(zip(FAMILY_KEYS, key)), "layer": int(first["layer"]),
                     "unit": int(first["unit"]), "effect": float(first["effect"]),
                     "fixed": int(first["fixed"]), "broken": int(first["broken"]),
                     "tied": len(top),
                     "tied_units": listing([f"{l}:{u}" for l, u in zip(top["layer"], top["unit"])])
                     if len(top) > 1 else ""})
    return pd.DataFrame(rows)


def _shown(n: int, verb: str, how: str) -> str:
    """What a row of the fixed / broken figure shows."""
    if not n:
        return f"empty: it {verb} no image"
    some = f"{SHOWN_IMAGES} of the {n} images" if n > SHOWN_IMAGES else f"the {count(n, 'image')}"
    return f"{some} it {verb} ({how})"


def weights_figure(study: Study, rows: pd.DataFrame, page: Page) -> Figure:
    """The incoming weights (projected to input space) of several sweeps' most harmful
    neurons, one panel each, in one figure."""
    columns = min(len(rows), 5)
    figure = fig.new_figure(2.4 * columns, 2.3 * -(-len(rows) // columns))
    axes = figure.subplots(-(-len(rows) // columns), columns, squeeze=False).ravel()
    for ax, row in zip(axes, rows.itertuples(index=False)):
        key = NetworkKey.of(row)
        values, shape, _ = fig.unit_weights(study.network(key), row.layer, row.unit, study.image_shape(key))
        fig.plot_vector_image(values, shape, ax, f"seed {row.seed} L{row.layer} u{row.unit}")
    for ax in axes[len(rows):]:
        ax.set_axis_off()
    slug = figure_slug("weights_others", *rows.iloc[0][["dataset", "model"]])
    return Figure(fig.save_figure(figure, page.figures, slug, page.svg),
                  "The incoming weights (an MLP's projected to input space, a convolution channel's "
                  "filter) of the other sweeps' most harmful neurons, one panel each (red: positive, "
                  "blue: negative). The explorer "
                  "shows any of them in full.", collapsed=True)


def neuron_figures(study: Study, row: Any, page: Page, collapsed: bool = False) -> list[Figure]:
    """Weights, fixed / broken images and synapse effects of one sweep's most harmful neuron."""
    key = NetworkKey.of(row)
    net, mode = study.network(key), row.mode
    layer, unit = int(row.layer), int(row.unit)
    shape = study.image_shape(key)
    family = {k: getattr(row, k) for k in FAMILY_KEYS}
    name = figure_slug(*family.values(), f"L{layer}", f"u{unit}")
    label = f"unit {unit} of layer {layer} of {family_label(family)}"
    figure = fig.new_figure(4.5, 4)
    values, drawn_shape, drawn = fig.unit_weights(net, layer, unit, shape)
    fig.plot_vector_image(values, drawn_shape, figure.subplots(), f"layer {layer} unit {unit}", "weight")
    colours = ("colour around mid-grey: the sign and size of the weight on each pixel channel"
               if len(drawn_shape) == 3 else "red: positive, blue: negative")
    figures = [Figure(fig.save_figure(figure, page.figures, f"weights_{name}", page.svg),
                      f"The most harmful neuron, {label}: {drawn} ({colours}).", collapsed)]
    X, y = study.split(key, row.split)
    change = prediction_change(net, X, y, [(layer, unit)], mode, study.reference(key, mode))
    figure = fig.new_figure(10, 3.2)
    fig.plot_changed_images(figure, X, y, change.base, change.ablated, change.fixed,
                            change.broken, shape, SHOWN_IMAGES)
    figures.append(Figure(
        fig.save_figure(figure, page.figures, f"changed_{name}", page.svg),
        f"{row.split.capitalize()} images whose prediction changes when {label} is removed. "
        f"Top: {_shown(len(change.fixed), 'fixes', 'wrong before, right after')}; bottom: "
        f"{_shown(len(change.broken), 'breaks', 'right before, wrong after')}. Above each "
        "image: its true label, then the predicted label before → after.", collapsed))
    synapses = study.rows("synapse")
    if synapses.empty:
        return figures
    mine = synapses[(synapses["dataset"] == key.dataset) & (synapses["model"] == key.model)
                    & (synapses["seed"] == key.seed) & (synapses["split"] == row.split)
                    & (synapses["layer"] == layer) & (synapses["target"] == unit)]
    n_sources = net.coefs[layer].shape[0]
    source_shape = shape if layer == 0 else (n_sources,)
    sources = "input pixel" if layer == 0 else f"unit of layer {layer - 1} (a heat strip)"
    for synapse_mode, rows in mine.groupby("mode", sort=True):
        figure = fig.new_figure(9, 3.6)
        ax_image, ax_curve = figure.subplots(1, 2)
        fig.plot_synapse_effects(rows, n_sources, source_shape, ax_image, ax_curve,
                                 f"synapse effects into unit {unit} ({synapse_mode})")
        figures.append(Figure(
            fig.save_figure(figure, page.figures, f"synapses_{name}_{synapse_mode}", page.svg),
            f"The incoming synapses of {label}, each removed alone ({synapse_mode} ablation): "
            f"the change of {row.split} accuracy in pp, left by source {sources} (red: removing "
            "the synapse raises accuracy; synapses not swept are 0), right sorted.", collapsed))
    return figures


def build(study: Study, page: Page) -> list[Section]:
    """Each sweep's most harmful neuron on test, in one table; figures for those that are
    harmful and have a model artifact."""
    neurons = study.rows("neuron", "test")
    if neurons.empty:
        return []
    table = most_harmful_table(neurons)
    harmful = table[table["effect"] > 0]
    paragraphs = []
    if harmful.empty:
        paragraphs.append("No sweep has a harmful neuron on test: no removal raises accuracy.")
    elif len(harmful) < len(table):
        paragraphs.append(f"{count(len(table) - len(harmful), 'sweep')} without a harmful "
                          "neuron on test are listed with their best (non-positive) effect.")
    drawable = harmful[[study.run(NetworkKey.of(r)) is not None
                        for r in harmful.itertuples(index=False)]]
    if len(drawable) < len(harmful):
        paragraphs.append(f"{count(len(harmful) - len(drawable), 'sweep')} without a model "
                          f"artifact {'is' if len(harmful) - len(drawable) == 1 else 'are'} not drawn.")
    figures: list[Figure] = []
    if len(drawable):
        figures += neuron_figures(study, next(drawable.itertuples(index=False)), page)
    if len(drawable) > 1:
        figures.append(weights_figure(study, drawable.iloc[1:], page))
        paragraphs.append(f"Figures show the first sweep's neuron in full and the incoming "
                          f"weights of the other {len(drawable) - 1} (collapsed).")
    caption = ("The most harmful neuron of each sweep on test: its effect, the images its "
               "removal fixes and breaks, and how many neurons tie for the largest effect "
               "(tied units as layer:unit).")
    return [Section("The most harmful neurons", paragraphs,
                    {"most_harmful": Table(in_units(table, pp=["effect"]), caption)}, figures)]
