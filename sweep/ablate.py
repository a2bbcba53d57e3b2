"""Exact ablation kernels: remove hidden units or single weights of a
:class:`~sweep.network.Network` and measure on a data set.

Pure numerics: every kernel takes weights and arrays (numpy, or torch through
:mod:`sweep.backend`) and returns a dict of numpy columns (identifying columns, then
:data:`sweep.metrics.METRIC_COLUMNS`); no files, no Ray.

How the kernels are exact and fast
----------------------------------
:func:`prepare` (:mod:`sweep.basestate`) runs the forward pass once (activations, logits,
predictions, margins, losses); every kernel reuses it. Every ablation is reduced to a
change ``d`` of one unit's output (a hidden unit, or one logit) on some rows; the next
layer's pre-activations then change by the rank-1 term ``d * W[unit]`` and only the later
layers are recomputed, on those rows only, many ablations per batched pass, in chunks of
bounded size. Metrics are accumulated from the changed rows alone (base metrics +
per-ablation changes; :mod:`sweep.engine`).

With ``metrics="full"`` every row whose unit output changes is recomputed (the loss is
exact). With ``metrics="accuracy"`` a row is recomputed only when an interval (Lipschitz)
bound says its prediction may change (:mod:`sweep.screen`); the loss is then NaN.

Rows whose new top-2 logit gap is below :data:`~sweep.basestate.TIE_TOLERANCE`
(relative), and rows that are near-ties before the ablation, are recomputed the way
``MLPClassifier`` predicts (a full forward pass with the weights actually edited,
sklearn's softmax and argmax), so predictions equal the naive oracle's.

This module holds the kernels themselves (:func:`ablate_neurons`, :func:`ablate_synapses`),
the replacement values and weight edits they reproduce, and re-exports the names other
modules import from it (:func:`prepare`, :class:`BaseState`, :func:`class_index`,
:func:`select_synapses`, ...).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from array_api_compat import device as array_device

from sweep.backend import network_to_numpy, to_numpy
from sweep.basestate import TIE_TOLERANCE, BaseState, class_index, prepare
from sweep.engine import Changes, ranges, row_budget, run_ablations, split_batches
from sweep.network import ACTIVATION_AT_ZERO, Network, hidden_activations
from sweep.screen import (
    Screen,
    column_chunks,
    make_screen,
    may_flip,
    nonzero_pairs,
    pairs_over,
    prefix_candidates,
    source_chunks,
)
from sweep.selection import SYNAPSE_DIRECTIONS, select_synapses

__all__ = [
    "DEFAULT_CHUNK_ELEMENTS",
    "METRIC_SETS",
    "NEURON_MODES",
    "SYNAPSE_DIRECTIONS",
    "TIE_TOLERANCE",
    "BaseState",
    "ablate_neurons",
    "ablate_synapses",
    "ablated_neuron_network",
    "ablated_synapse_network",
    "class_index",
    "prepare",
    "replacement_values",
    "select_synapses",
    "unit_replacements",
]


NEURON_MODES: tuple[str, ...] = ("zero", "remove", "mean")
"""``zero``: incoming weights and bias set to 0 (output ``act(0)``, the paper's removal);
``remove``: output forced to 0 (outgoing weights zeroed); ``mean``: output replaced by its
mean over a reference split."""


METRIC_SETS: tuple[str, ...] = ("full", "accuracy")
"""``full``: every metric column exact; ``accuracy``: all but ``loss`` (NaN) exact, rows
that provably keep their prediction skipped."""


DEFAULT_CHUNK_ELEMENTS: int = 2**18
"""Elements of the largest temporary (changed rows x layer width) one pass may hold: about
1,300 rows of a 196-wide layer, measured fastest (2**16 and 2**20 were 15-50 % slower)."""


def unit_replacements(net: Network, mode: str, reference: np.ndarray | None = None) -> list[np.ndarray]:
    """The value every hidden unit outputs once ablated in ``mode``, one array per layer.

    ``mean`` needs one forward pass over ``reference``; compute this once per model and
    reuse it (``replacement=`` of :func:`ablate_neurons`).

    Parameters
    ----------
    net : Network — numpy weights
    mode : str — one of :data:`NEURON_MODES`
    reference : ndarray of shape (n_ref, n_features), optional — inputs whose mean
        activation ``mean`` mode uses (required for it)

    Returns
    -------
    list of ndarray
        Element ``l`` has shape ``(hidden_sizes[l],)``.
    """
    if mode == "mean":
        if reference is None:
            raise ValueError("mode 'mean' needs the reference inputs to average over")
        return [h.mean(axis=0) for h in hidden_activations(net, np.asarray(reference))]
    constant = {"zero": ACTIVATION_AT_ZERO[net.activation], "remove": 0.0}
    if mode not in constant:
        raise ValueError(f"unknown neuron mode {mode!r}; expected one of {NEURON_MODES}")
    return [np.full(width, constant[mode], dtype=net.dtype) for width in net.hidden_sizes]


def replacement_values(
    net: Network, layer: int, mode: str, reference: np.ndarray | None = None
) -> np.ndarray:
    """The value each unit of ``layer`` outputs once ablated in ``mode``, shape
    ``(hidden_sizes[layer],)`` (see :func:`unit_replacements`)."""
    return unit_replacements(net, mode, reference)[layer]


# --------------------------------------------------------------------------- edited weights


def ablated_neuron_network(
    net: Network, layer: int, unit: int, mode: str, value: float
) -> Network:
    """A copy of ``net`` (numpy) with one hidden unit ablated in its weights.

    ``zero`` zeroes the unit's incoming weights and bias; ``remove`` and ``mean`` zero its
    outgoing weights after adding ``value * outgoing`` to the next layer's bias.
    """
    coefs = [w.copy() for w in net.coefs]
    intercepts = [b.copy() for b in net.intercepts]
    if mode == "zero":
        coefs[layer][:, unit] = 0.0
        intercepts[layer][unit] = 0.0
    else:
        intercepts[layer + 1] += value * coefs[layer + 1][unit, :]
        coefs[layer + 1][unit, :] = 0.0
    return net.with_weights(tuple(coefs), tuple(intercepts))


def ablated_synapse_network(net: Network, layer: int, source: int, target: int) -> Network:
    """A copy of ``net`` (numpy) with weight ``coefs[layer][source, target]`` set to 0."""
    coefs = [w.copy() for w in net.coefs]
    coefs[layer][source, target] = 0.0
    return net.with_weights(tuple(coefs), tuple(b.copy() for b in net.intercepts))


# --------------------------------------------------------------------------- neurons


def _check_metrics(metrics: str) -> None:
    if metrics not in METRIC_SETS:
        raise ValueError(f"unknown metric set {metrics!r}; expected one of {METRIC_SETS}")


def _neuron_changes(
    base: BaseState, layer: int, units: Any, values: Any, screen: Screen | None
) -> Iterator[Changes]:
    """Changed (or, with a ``screen``, possibly flipped) rows of each unit's ablation."""
    xp = base.xp
    h = base.inputs[layer + 1]
    for lo, hi in column_chunks(int(units.shape[0]), base.n):
        part = units[lo:hi]
        delta = values[part][None, :] - h[:, part]
        if screen is None:
            cols, rows = nonzero_pairs(xp, delta != 0)
        else:
            ratio = delta * screen.inv_margin[:, None]
            peak = screen.peak_post[part]
            cols, rows = pairs_over(xp, ratio, peak[:, 0], peak[:, 1])
        ch = Changes(
            layer + 1, base.net.coefs[layer + 1], cols + lo, rows, part[cols], delta[rows, cols]
        )
        if screen is not None:
            ch = ch.keep(may_flip(base, screen, ch.units, ch.rows, ch.d))
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
) -> dict[str, np.ndarray]:
    """Ablate each listed unit of one hidden layer on its own and measure on ``(X, y)``.

    Parameters
    ----------
    net : Network — numpy or torch weights (see :func:`sweep.backend.to_backend`)
    X : array of shape (n_samples, n_features) — same backend as ``net``
    y : ndarray of shape (n_samples,) — class labels
    layer : int — 0-based hidden-layer index
    units : ndarray of shape (n_units,), int — unit indices within the layer
    mode : str — one of :data:`NEURON_MODES`
    reference : ndarray of shape (n_ref, n_features), optional — for ``mode='mean'``
    metrics : str — one of :data:`METRIC_SETS`
    base : BaseState, optional — ``prepare(net, X, y)``, computed when not given
    chunk_elements : int — size of the largest temporary array of one pass
    replacement : ndarray of shape (hidden_sizes[layer],), optional — the layer's
        :func:`unit_replacements` for ``mode``, when already computed (else from ``reference``)

    Returns
    -------
    dict of str to ndarray
        ``layer`` and ``unit`` of shape ``(n_units,)`` and the metric columns (numpy).
    """
    _check_metrics(metrics)
    units = np.asarray(units, dtype=np.int64)
    base = prepare(net, X, y) if base is None else base
    net_np = network_to_numpy(net)
    if replacement is None:
        ref = None if reference is None else to_numpy(reference)
        replacement = replacement_values(net_np, layer, mode, ref)
    values_np = np.asarray(replacement)
    values = base.asarray(values_np, dtype=base.pre[0].dtype)
    screen = make_screen(base, layer) if metrics == "accuracy" else None
    budget = row_budget(base, layer + 1, chunk_elements)
    batches = (
        batch
        for ch in _neuron_changes(base, layer, base.asarray(units), values, screen)
        for batch in split_batches(ch, budget)
    )

    def edited(numpy_net: Network, a: int) -> Network:
        unit = int(units[a])
        return ablated_neuron_network(numpy_net, layer, unit, mode, values_np[unit])

    columns = {"layer": np.full(len(units), layer, dtype=np.int64), "unit": units}
    columns.update(run_ablations(base, batches, len(units), edited, mode == "mean", metrics))
    return columns


# --------------------------------------------------------------------------- synapses


def _unit_change(
    base: BaseState, matrix: int, rows: Any, sources: Any, targets: Any, w: Any
) -> Any:
    """Change of the target unit's output when weight ``w`` of ``matrix`` is zeroed, (m,)."""
    step = -base.inputs[matrix][rows, sources] * w
    if matrix == base.last:
        return step
    z = base.pre[matrix][rows, targets]
    return base.activate(z + step) - base.inputs[matrix + 1][rows, targets]


def _synapse_level(base: BaseState, matrix: int) -> tuple[int, Any]:
    """The matrix whose pre-activation a synapse change enters, and its directions."""
    if matrix == base.last:
        n_out = int(base.pre[matrix].shape[1])
        return matrix, base.asarray(np.eye(n_out), dtype=base.pre[matrix].dtype)
    return matrix + 1, base.net.coefs[matrix + 1]


def _all_rows(
    base: BaseState, matrix: int, sources: Any, targets: Any, budget: int
) -> Iterator[Changes]:
    """Every row on which each synapse's source is non-zero (the ``full`` metric set)."""
    xp = base.xp
    a = base.inputs[matrix]
    w = base.net.coefs[matrix][sources, targets]
    level, directions = _synapse_level(base, matrix)
    counts = to_numpy(xp.sum(a != 0, axis=0))[to_numpy(sources)]
    for lo, hi in ranges(counts * (to_numpy(w) != 0), budget):
        cols, rows = nonzero_pairs(xp, a[:, sources[lo:hi]] != 0)
        t = targets[lo:hi][cols]
        d = _unit_change(base, matrix, rows, sources[lo:hi][cols], t, w[lo:hi][cols])
        yield Changes(level, directions, cols + lo, rows, t, d).keep(d != 0)


def _screened_rows(
    base: BaseState, matrix: int, sources: np.ndarray, targets: np.ndarray, screen: Screen
) -> Iterator[Changes]:
    """Rows on which each synapse's ablation may flip the prediction (``accuracy`` set).

    ``sources`` (sorted) and ``targets`` are numpy; rows of a positive source value change
    the target's pre-activation by the sign of ``-w``, rows of a negative one by ``w``.
    """
    xp = base.xp
    a = base.inputs[matrix]
    src, tgt = base.asarray(sources), base.asarray(targets)
    w = base.net.coefs[matrix][src, tgt]
    level, directions = _synapse_level(base, matrix)
    falls = xp.astype(w > 0, xp.int64)
    peak = screen.peak_pre[tgt]
    every = xp.arange(w.shape[0], device=array_device(w))
    factors = (xp.abs(w) * peak[every, falls], xp.abs(w) * peak[every, 1 - falls])
    n_targets = int(base.pre[matrix].shape[1])
    for lo, hi, local_np in source_chunks(sources, base.n):
        local = base.asarray(local_np)
        columns = base.asarray(np.unique(sources[lo:hi]))
        ratio = a[:, columns] * screen.inv_margin[:, None]
        signs = (ratio, -ratio) if bool(xp.any(ratio < 0)) else (ratio,)
        found = [
            prefix_candidates(xp, xp.clip(r, 0, None), f[lo:hi], local, tgt[lo:hi], n_targets)
            for r, f in zip(signs, factors)
        ]
        seg, rows = (xp.concat(parts) for parts in zip(*found))
        order = xp.argsort(seg, stable=True)
        seg, rows = seg[order], rows[order]
        t = tgt[lo:hi][seg]
        d = _unit_change(base, matrix, rows, src[lo:hi][seg], t, w[lo:hi][seg])
        ch = Changes(level, directions, seg + lo, rows, t, d)
        yield ch.keep(may_flip(base, screen, t, rows, d))


def ablate_synapses(
    net: Network,
    X: Any,
    y: np.ndarray,
    layer: int,
    sources: np.ndarray,
    targets: np.ndarray,
    *,
    metrics: str = "full",
    base: BaseState | None = None,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> dict[str, np.ndarray]:
    """Set each listed weight ``coefs[layer][source, target]`` to 0 on its own and measure.

    Parameters
    ----------
    layer : int — weight-matrix index (0: input -> first hidden; the last: hidden -> output)
    sources, targets : ndarray of shape (n_synapses,), int — row and column in that matrix
        (distinct pairs)
    net, X, y, metrics, base, chunk_elements : as in :func:`ablate_neurons`

    Returns
    -------
    dict of str to ndarray
        ``layer``, ``source``, ``target`` of shape ``(n_synapses,)`` and the metric columns.
    """
    _check_metrics(metrics)
    sources = np.asarray(sources, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    order = np.argsort(sources, kind="stable")
    by_source, to = sources[order], targets[order]
    base = prepare(net, X, y) if base is None else base
    budget = row_budget(base, min(layer + 1, base.last), chunk_elements)
    if metrics == "full":
        changes = _all_rows(base, layer, base.asarray(by_source), base.asarray(to), budget)
    else:
        changes = _screened_rows(base, layer, by_source, to, make_screen(base, layer))
    batches = (batch for ch in changes for batch in split_batches(ch, budget))

    def edited(numpy_net: Network, a: int) -> Network:
        return ablated_synapse_network(numpy_net, layer, int(by_source[a]), int(to[a]))

    measured = run_ablations(base, batches, len(sources), edited, False, metrics)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    columns = {
        "layer": np.full(len(sources), layer, dtype=np.int64),
        "source": sources,
        "target": targets,
    }
    columns.update({name: values[inverse] for name, values in measured.items()})
    return columns
