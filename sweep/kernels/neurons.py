"""Single-neuron ablation: remove each listed hidden unit on its own and measure.

How the kernels are exact and fast
----------------------------------
:func:`~sweep.kernels.basestate.prepare` runs the forward pass once (activations, logits,
predictions, margins, losses); every kernel reuses it. Every ablation is reduced to a change
``d`` of one unit's output (a hidden unit, or one logit) on some rows; the next layer's
pre-activations then change by the rank-1 term ``d * W[unit]`` and only the later layers are
recomputed, on those rows only, many ablations per batched pass, in chunks of bounded size.
Metrics are accumulated from the changed rows alone (:mod:`sweep.kernels.engine`).

With ``metrics="full"`` every row whose unit output changes is recomputed (the loss is
exact). With ``metrics="accuracy"`` a row is recomputed only when an interval (Lipschitz)
bound says its prediction may change (:mod:`sweep.kernels.screen`); the loss is then NaN.

Rows whose new top-2 logit gap is below :data:`~sweep.kernels.basestate.TIE_TOLERANCE`
(relative), and rows that are near-ties before the ablation, are recomputed the way
``MLPClassifier`` predicts (a full forward pass with the weights actually edited,
sklearn's softmax and argmax), so predictions equal the naive oracle's. Pure numerics.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from sweep.kernels.backend import network_to_numpy, to_numpy
from sweep.kernels.basestate import BaseState, prepare
from sweep.kernels.engine import (
    DEFAULT_CHUNK_ELEMENTS,
    Changes,
    Flips,
    check_metrics,
    row_budget,
    run_ablations,
    split_batches,
)
from sweep.kernels.modes import (
    ablated_neuron_network,
    drawn_values,
    image_value,
    neuron_mode,
    unit_replacements,
)
from sweep.kernels.network import Network
from sweep.kernels.screen import Screen, column_chunks, make_screen, may_flip, nonzero_pairs, over
from sweep.kernels.torchnet import TorchNetwork, torch_unit_flips

NEURON_COLUMNS: dict[str, str] = {"layer": "int64", "unit": "int64"}
"""Identifying columns of :func:`ablate_neurons`, before the metric columns."""


def _neuron_changes(
    base: BaseState, layer: int, units: Any, values: Any, screen: Screen | None, forced: Any | None
) -> Iterator[Changes]:
    """Changed (or, with a ``screen``, possibly flipped) rows of each unit's ablation, and the
    ``forced`` rows (bool, shape ``(n,)``) of every unit whatever its change."""
    xp = base.xp
    h = base.inputs[layer + 1]
    for lo, hi in column_chunks(int(units.shape[0]), base.n):
        part = units[lo:hi]
        delta = (values[:, part] if values.ndim == 2 else values[part][None, :]) - h[:, part]
        if screen is None:
            mask = delta != 0
        else:
            peak = screen.peak_post[part]
            mask = over(delta * screen.inv_margin[:, None], peak[:, 0], peak[:, 1])
        cols, rows = nonzero_pairs(xp, mask if forced is None else mask | forced[:, None])
        ch = Changes(
            layer + 1, base.net.coefs[layer + 1], cols + lo, rows, part[cols], delta[rows, cols]
        )
        if screen is not None:
            flip = may_flip(base, screen, ch.units, ch.rows, ch.d)
            ch = ch.keep(flip if forced is None else flip | forced[ch.rows])
        yield ch


def ablate_neurons(
    net: Network,
    X: Any,
    y: np.ndarray,
    layer: int,
    units: np.ndarray,
    mode: str = "zero",
    reference: np.ndarray | None = None,
    *,
    metrics: str = "full",
    base: BaseState | None = None,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    replacement: np.ndarray | None = None,
    screen_tables: tuple[np.ndarray, np.ndarray] | None = None,
    rows: np.ndarray | None = None,
    flips: list[Flips] | None = None,
) -> dict[str, np.ndarray]:
    """Ablate each listed unit of one hidden layer on its own and measure on ``(X, y)``.

    Parameters
    ----------
    net : Network — numpy or torch weights (see :func:`sweep.kernels.backend.to_backend`)
    X : array of shape (n_samples, n_features) — same backend as ``net``
    y : ndarray of shape (n_samples,) — class labels
    layer : int — 0-based hidden-layer index
    units : ndarray of shape (n_units,), int — unit indices within the layer
    mode : str — one of :data:`NEURON_MODES`
    reference : ndarray of shape (n_ref, n_features), optional — for ``mode='mean'``
    metrics : str — one of :data:`METRIC_SETS`
    base : BaseState, optional — ``prepare(net, X, y)``, computed when not given
    chunk_elements : int — size of the largest temporary array of one pass
    replacement : ndarray of shape (hidden_sizes[layer],) or (n_samples, hidden_sizes[layer]),
        optional — the layer's :func:`unit_replacements` for ``mode``, when already computed
        (else from ``reference``); for a per-image mode (``resample``) the matrix of each
        image's value (:func:`~sweep.kernels.modes.drawn_values`; else draw 0 of seed 0)
    screen_tables : tuple of ndarray, optional — the layer's
        :func:`~sweep.kernels.screen.gain_tables` (``metrics="accuracy"``), when already
        computed: of ``net``, or of a network ``net`` only zeroes weights of (before pruning)
    rows : ndarray of shape (n_samples,), bool, optional — rows measured for every unit
        whatever its change: where ``base``'s reference outcome (``pred``, ``right``,
        ``loss``) is not its own pass's (:func:`sweep.kernels.pairs.ablate_pairs` compares a
        network with one unit removed against the unablated one)
    flips : list, optional — receives the per-image outcomes (:class:`Flips`, ``ablation``
        indexing ``units``); see :func:`neuron_flips`

    Returns
    -------
    dict of str to ndarray
        ``layer`` and ``unit`` of shape ``(n_units,)`` and the metric columns (numpy).

    Examples
    --------
    Every unit of a small network trained on digits, against the naive oracle (copy the
    weights, zero a unit's incoming weights and bias, call sklearn's ``predict``):

    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.neural_network import MLPClassifier
    >>> from sweep.kernels import Network
    >>> from sweep.kernels.oracle import naive_neuron_predictions
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0).fit(X / 16, y)
    >>> rows = ablate_neurons(Network.from_classifier(clf), X / 16, y, layer=0, units=np.arange(8))
    >>> naive = naive_neuron_predictions(clf, X / 16, 0, np.arange(8))
    >>> bool(np.array_equal(rows["accuracy"], (naive == y).mean(axis=1)))
    True
    >>> bool(np.allclose(rows["effect"], rows["accuracy"] - rows["accuracy_base"]))
    True
    """
    check_metrics(metrics)
    units = np.asarray(units, dtype=np.int64)
    base = prepare(net, X, y) if base is None else base
    net_np = network_to_numpy(net)
    record = neuron_mode(mode)
    if replacement is None:
        ref = None if reference is None else to_numpy(reference)
        replacement = drawn_values(unit_replacements(net_np, mode, ref), mode, base.n)[layer]
    values_np = np.asarray(replacement)
    if values_np.ndim == 2 and values_np.shape[0] != base.n:
        raise ValueError(f"a per-image replacement needs one row per image: {values_np.shape[0]} rows for {base.n} images")
    values = base.asarray(values_np, dtype=base.pre[0].dtype)
    screen = make_screen(base, layer, screen_tables) if metrics == "accuracy" else None
    budget = row_budget(base, layer + 1, chunk_elements)
    forced = None if rows is None else base.asarray(rows)
    batches = (
        batch
        for ch in _neuron_changes(base, layer, base.asarray(units), values, screen, forced)
        for batch in split_batches(ch, budget)
    )

    def edited(numpy_net: Network, a: int, row: int | None) -> Network:
        unit = int(units[a])
        start = numpy_net if base.folds is None else base.folds.edited(row)  # a pruned pass's row
        return ablated_neuron_network(start, layer, unit, mode, image_value(values_np, unit, row))

    columns = {"layer": np.full(len(units), layer, dtype=np.int64), "unit": units}
    columns.update(run_ablations(base, batches, len(units), edited, record.recheck_base_ties, metrics, flips,
                                 per_row=values_np.ndim == 2))
    return columns


def neuron_flips(
    net: Network | TorchNetwork,
    X: Any,
    y: np.ndarray,
    layer: int,
    units: np.ndarray,
    mode: str = "zero",
    reference: np.ndarray | None = None,
    *,
    base: BaseState | None = None,
    replacement: np.ndarray | None = None,
) -> Flips:
    """The images each unit's removal fixes and breaks: per-image outcomes of
    :func:`ablate_neurons`, exact (near-ties settled as sklearn predicts).

    A unit's effect on any subset or resample of the rows follows without another sweep:
    with row weights ``w`` (e.g. bootstrap counts), ``sum(w[row] * signed) / sum(w)`` over
    the unit's flips, where ``signed`` is +1 for a fixed row and -1 for a broken one.

    Parameters
    ----------
    net, X, y, layer, units, mode, reference, base, replacement : as for :func:`ablate_neurons`;
        a torch network's units (``base`` unused; ``replacement`` the site's values,
        :func:`~sweep.kernels.torchnet.mode_values` or a per-image mode's drawn ones) go to
        :func:`sweep.kernels.torchnet.torch_unit_flips`

    Returns
    -------
    Flips
        Arrays of shape ``(m,)``, sorted by (ablation, row); ``ablation`` indexes ``units``.

    Examples
    --------
    >>> import numpy as np
    >>> from sweep.kernels import Network, neuron_flips
    >>> net = Network([np.array([[1.0, -1.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])],
    ...               [np.zeros(2), np.array([0.0, 0.1])], "relu", "softmax", np.array([0, 1]))
    >>> flips = neuron_flips(net, np.array([[1.0], [-1.0]]), np.array([0, 1]), 0, np.arange(2))
    >>> flips.ablation.tolist(), flips.row.tolist(), flips.fixed.tolist()  # unit 0 breaks row 0
    ([0], [0], [False])
    """
    if isinstance(net, TorchNetwork):
        return torch_unit_flips(net, X, y, layer, units, mode, reference, values=replacement)
    collected: list[Flips] = []
    ablate_neurons(net, X, y, layer, units, mode, reference, metrics="accuracy", base=base,
                   replacement=replacement, flips=collected)
    return collected[0]
