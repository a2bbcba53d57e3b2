"""Figures: each function draws on Axes (or a Figure) it is given; :func:`new_figure` and
:func:`save_figure` make and write them without pyplot, so nothing needs a display.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sweep.kernels import Network, TorchNetwork, incoming_weights

DIVERGING = "RdBu_r"

MAX_TICKS = 5
"""Most tick labels on an effect axis (narrow panels in a report's figure row)."""

MAX_BARS = 60
"""Effects spanning at most this many one-image steps get one histogram bar per step."""


def new_figure(width: float = 6.0, height: float = 4.0) -> Figure:
    """A pyplot-free figure (rendered with Agg by :func:`save_figure`)."""
    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Figure, out_dir: Path, name: str, svg: bool = False) -> Path:
    """Write ``<out_dir>/<name>.png`` (and ``.svg`` with ``svg``); returns the PNG's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{name}.png"
    fig.savefig(png, dpi=110)
    if svg:
        fig.savefig(out_dir / f"{name}.svg")
    return png


def say_empty(ax: Axes, text: str, title: str = "") -> None:
    """An axes that says why there is nothing to draw, instead of a blank panel."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.35",
            wrap=True)
    ax.set_title(title)


def plot_sorted_effects(df: pd.DataFrame, ax: Axes, title: str = "") -> None:
    """Per-neuron effects of one layer sorted in decreasing order, one line per seed (when
    the rows hold several), with a red zero line.

    Parameters
    ----------
    df : DataFrame — neuron rows of one layer (``effect``; ``seed`` optional)
    """
    groups = list(df.groupby("seed", sort=True)) if "seed" in df.columns else [(None, df)]
    for seed, rows in groups:
        effect = np.sort(rows["effect"].to_numpy())[::-1] * 100
        ax.plot(np.arange(len(effect)), effect, linewidth=1,
                marker="." if len(groups) == 1 else None,
                label=f"seed {seed}" if len(groups) > 1 else None)
    if len(groups) > 1:
        ax.legend(fontsize=6, ncols=2)
    ax.axhline(0.0, color="red", linewidth=1)
    ax.yaxis.set_major_locator(MaxNLocator(MAX_TICKS))
    ax.set_xlabel("neuron (sorted by effect)")
    ax.set_ylabel("accuracy change on removal (pp)")
    ax.set_title(title)


def effect_bins(effect_pp: np.ndarray, n_samples: int | None = None) -> np.ndarray | int:
    """Histogram bins of effects in pp: one bar per possible value when the effects are
    changes of ``n_samples`` predictions spanning at most :data:`MAX_BARS` steps of
    ``100 / n_samples`` pp, else 5 to 50 equal bins."""
    if n_samples:
        step = 100.0 / n_samples
        steps = np.rint(effect_pp / step)
        if steps.max() - steps.min() <= MAX_BARS:
            return (np.arange(steps.min(), steps.max() + 2) - 0.5) * step
    return min(50, max(5, len(effect_pp) // 4))


def plot_effect_histogram(df: pd.DataFrame, ax: Axes, title: str = "") -> None:
    """Histogram of one layer's per-neuron effects in pp (pooled over seeds: bar heights are
    neurons per seed), zero marked in red.

    Parameters
    ----------
    df : DataFrame — neuron rows of one layer (``effect``; with ``n_samples``, one bar per
        one-prediction step, see :func:`effect_bins`)
    """
    effect = df["effect"].to_numpy() * 100
    n_samples = int(df["n_samples"].iloc[0]) if "n_samples" in df.columns else None
    seeds = df["seed"].nunique() if "seed" in df.columns else 1
    ax.hist(effect, bins=effect_bins(effect, n_samples), color="tab:gray",
            weights=np.full(len(effect), 1.0 / seeds))
    ax.axvline(0.0, color="red", linewidth=1)
    ax.xaxis.set_major_locator(MaxNLocator(MAX_TICKS))
    ax.yaxis.set_major_locator(MaxNLocator(MAX_TICKS, integer=True))
    ax.set_xlabel("accuracy change on removal (pp)")
    ax.set_ylabel("neurons" if seeds == 1 else "neurons per seed")
    ax.set_title(title)


def plot_class_effects(df: pd.DataFrame, ax: Axes, classes: np.ndarray | None = None,
                       title: str = "") -> None:
    """Heatmap of per-class accuracy changes: neurons (sorted by effect) x classes.

    Parameters
    ----------
    df : DataFrame — neuron rows of one layer (``effect``, ``class_effect`` arrays of length
        n_classes)
    classes : ndarray of shape (n_classes,), optional — labels of the columns
    """
    ordered = df.sort_values("effect", ascending=False)
    matrix = np.stack(ordered["class_effect"].to_numpy()) * 100
    if not np.any(matrix):
        say_empty(ax, "no class changes", title)
        return
    limit = float(np.abs(matrix).max())
    image = ax.imshow(matrix.T, aspect="auto", cmap=DIVERGING, vmin=-limit, vmax=limit,
                      interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, label="class accuracy change (pp)")
    n_classes = matrix.shape[1]
    ax.set_yticks(range(n_classes), classes if classes is not None else range(n_classes))
    ax.set_xlabel("neuron (sorted by effect)")
    ax.set_ylabel("class")
    ax.set_title(title)


def input_projection(net: Network, layer: int, unit: int) -> np.ndarray:
    """A unit's incoming weights in input space, shape ``(n_features,)``.

    Layer 0: the weights themselves; deeper layers: the linear projection
    ``W_0 @ ... @ W_{layer-1} @ W_layer[:, unit]`` (activations ignored).
    """
    vector = net.coefs[layer][:, unit]
    for w in reversed(net.coefs[:layer]):
        vector = w @ vector
    return vector


def filter_image(weights: np.ndarray) -> np.ndarray:
    """A convolution filter ``(C_in, kh, kw)`` as the image it is drawn as: ``(kh, kw)`` for one
    input channel, ``(kh, kw, 3)`` for three (colour), else the channels side by side
    ``(kh, C_in * (kw + 1) - 1)`` with a NaN column between them."""
    if weights.shape[0] == 1:
        return weights[0]
    if weights.shape[0] == 3:
        return weights.transpose(1, 2, 0)
    gap = np.full((weights.shape[1], 1), np.nan)
    return np.concatenate([part for w in weights for part in (w, gap)][:-1], axis=1)


def unit_weights(net: Network | TorchNetwork, layer: int, unit: int,
                 image_shape: tuple[int, ...] | None) -> tuple[np.ndarray, tuple[int, ...] | None, str]:
    """What a unit's weights panel draws: the values (flat), the shape they are drawn in and
    what they are.

    An MLP unit: :func:`input_projection` in ``image_shape`` (None: no known image). A torch
    unit: its incoming weights (:func:`sweep.kernels.torchnet.incoming_weights`): a
    convolution channel's filter (:func:`filter_image`), a linear unit's weights ``(n_in,)``
    (a heat strip in the report).
    """
    if not isinstance(net, TorchNetwork):
        drawn = ("its incoming weights" if layer == 0 else "its incoming weights projected to input space "
                 "through the earlier layers' weights (activations ignored)")
        return input_projection(net, layer, unit), image_shape, drawn + ", one value per input pixel"
    weights = incoming_weights(net, layer)[unit]
    if weights.ndim == 3:
        image = filter_image(weights)
        shown = " x ".join(map(str, weights.shape))
        side = ": input channels side by side" if weights.shape[0] not in (1, 3) else ""
        return image.ravel(), image.shape, f"its convolution filter ({shown}{side})"
    return weights.ravel(), (weights.size,), f"its {weights.size} incoming weights"


def plot_panel(image: np.ndarray, ax: Axes, title: str = "", diverging: bool = True,
               limit: float | None = None) -> None:
    """A small image without a colour bar (a filter on a diverging scale centred at 0, or a
    map on a sequential one), for a grid of many panels.

    Parameters
    ----------
    image : ndarray of shape (h, w) or (h, w, 3)
    limit : float, optional — the colour scale's bound (shared across panels); default the
        image's own largest absolute value
    """
    limit = float(np.nanmax(np.abs(image))) if limit is None else limit
    limit = limit or 1.0
    if image.ndim == 3:
        ax.imshow(np.clip(0.5 + image / (2 * limit), 0, 1), interpolation="nearest")
    elif diverging:
        ax.imshow(image, cmap=DIVERGING, vmin=-limit, vmax=limit, interpolation="nearest")
    else:
        ax.imshow(image, cmap="viridis", vmin=0, vmax=limit, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7)


def image_grid(values: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
    """A per-input-pixel vector as the image it is drawn as.

    Parameters
    ----------
    values : ndarray of shape (n_features,)
    shape : image shape, e.g. ``(28, 28)`` or ``(32, 32, 3)``, or None; when it is None or
        its size is not ``n_features``, a near-square grid padded with NaN instead

    Returns
    -------
    ndarray of shape ``shape`` or (rows, columns), float64
    """
    values = np.asarray(values, dtype=float)
    if shape is None or math.prod(shape) != values.size:
        side = math.ceil(math.sqrt(values.size))
        shape = (math.ceil(values.size / side), side)
        values = np.pad(values, (0, math.prod(shape) - values.size), constant_values=np.nan)
    return values.reshape(shape)


def plot_vector_image(values: np.ndarray, shape: tuple[int, ...], ax: Axes, title: str = "",
                      label: str = "") -> None:
    """A per-input-pixel vector drawn as an image, on a diverging scale centred at 0.

    Parameters
    ----------
    values : ndarray of shape (n_features,)
    shape : image shape, e.g. ``(28, 28)`` or ``(32, 32, 3)``; ``(n,)`` (a hidden layer's
        units) draws a heat strip; when its size is not ``n_features`` the vector is drawn as
        a near-square heatmap instead. A vector of zeros is said, not drawn.
    """
    values = np.asarray(values, dtype=float)
    if not np.any(np.nan_to_num(values)):
        say_empty(ax, "every value is 0", title)
        return
    limit = float(np.nanmax(np.abs(values)))
    image = image_grid(values, shape)
    if image.ndim == 1:
        image = image[None, :]
        ax.set_aspect("auto")
    if image.ndim == 3:
        ax.imshow(np.clip(0.5 + image / (2 * limit), 0, 1), interpolation="nearest")
    else:
        shown = ax.imshow(image, cmap=DIVERGING, vmin=-limit, vmax=limit, interpolation="nearest",
                          aspect="auto" if image.shape[0] == 1 else "equal")
        ax.figure.colorbar(shown, ax=ax, label=label)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)


def plot_changed_images(
    fig: Figure,
    X: np.ndarray,
    y: np.ndarray,
    base: np.ndarray,
    ablated: np.ndarray,
    fixed: np.ndarray,
    broken: np.ndarray,
    shape: tuple[int, ...],
    n: int = 8,
) -> None:
    """Two rows of images: up to ``n`` rows an ablation fixes (top) and breaks (bottom).

    Each image is titled with its true label and the prediction before -> after the
    ablation; a row with no image says "none".

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) — raw inputs
    y, base, ablated : ndarray of shape (n_samples,) — true, unablated and ablated labels
    fixed, broken : ndarray of int — row indices (see :class:`analysis.pruning.PredictionChange`)
    shape : image shape of one row of ``X``
    """
    axes = fig.subplots(2, n, squeeze=False)
    for ax_row, rows, name in zip(axes, (fixed, broken), ("fixed", "broken")):
        for i, ax in enumerate(ax_row):
            ax.set_axis_off()
            if i >= len(rows):
                continue
            r = rows[i]
            image = X[r].reshape(shape)
            low, high = float(image.min()), float(image.max())
            ax.imshow((image - low) / (high - low or 1.0), cmap="gray_r" if image.ndim == 2 else None)
            ax.set_title(f"true {y[r]}\npred {base[r]}→{ablated[r]}", fontsize=8)
        if not len(rows):
            ax_row[0].text(0.5, 0.5, "none", transform=ax_row[0].transAxes, ha="center",
                           va="center", color="gray")
        ax_row[0].text(-0.1, 0.5, f"{name} ({len(rows)})", transform=ax_row[0].transAxes,
                       rotation=90, ha="right", va="center")


def plot_synapse_effects(df: pd.DataFrame, n_sources: int, shape: tuple[int, ...],
                         ax_image: Axes, ax_curve: Axes, title: str = "") -> None:
    """The incoming synapses of one neuron: their effects as an image and a sorted curve.

    Parameters
    ----------
    df : DataFrame — synapse rows of one weight matrix and target (``source``, ``effect``)
    n_sources : int — rows of that weight matrix (missing sources are drawn as 0)
    shape : image shape of the sources (input image for matrix 0; else a heatmap is drawn)
    """
    values = np.zeros(n_sources)
    values[df["source"].to_numpy()] = df["effect"].to_numpy() * 100
    plot_vector_image(values, shape, ax_image, title=title, label="effect (pp)")
    plot_sorted_effects(df, ax_curve, title="sorted synapse effects")
    ax_curve.set_xlabel("synapse (sorted by effect)")
