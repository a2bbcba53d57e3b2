"""Single-synapse ablation: set each listed weight to 0 on its own and measure.

A zeroed weight ``W[m][s, t]`` changes unit ``t``'s output (or logit ``t``) on the rows where
input ``s`` is non-zero; from there the batched engine of :mod:`sweep.kernels.engine` takes
over, as for neurons (:mod:`sweep.kernels.neurons` explains how the kernels are exact and
fast). With the ``accuracy`` metric set, the rows a synapse may flip are found without
per-synapse work (:func:`sweep.kernels.screen.prefix_candidates`). Pure numerics.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from array_api_compat import device as array_device

from sweep.kernels.backend import to_numpy
from sweep.kernels.basestate import BaseState, prepare
from sweep.kernels.engine import (
    DEFAULT_CHUNK_ELEMENTS,
    Changes,
    check_metrics,
    ranges,
    row_budget,
    run_ablations,
    split_batches,
)
from sweep.kernels.network import Network
from sweep.kernels.screen import (
    Screen,
    make_screen,
    may_flip,
    nonzero_pairs,
    prefix_candidates,
    source_chunks,
)

SYNAPSE_COLUMNS: dict[str, str] = {"layer": "int64", "source": "int64", "target": "int64"}
"""Identifying columns of :func:`ablate_synapses`, before the metric columns."""


def ablated_synapse_network(net: Network, layer: int, source: int, target: int) -> Network:
    """A copy of ``net`` (numpy) with weight ``coefs[layer][source, target]`` set to 0."""
    coefs = [w.copy() for w in net.coefs]
    coefs[layer][source, target] = 0.0
    return net.with_weights(tuple(coefs), tuple(b.copy() for b in net.intercepts))


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
    check_metrics(metrics)
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

    def edited(numpy_net: Network, a: int, row: int | None) -> Network:
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
