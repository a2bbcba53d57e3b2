"""Exact ablation kernels: remove hidden units or single weights of a
:class:`~sweep.network.Network` and measure on a data set.

Pure numerics: every kernel takes weights and arrays (numpy, or torch through
:mod:`sweep.backend`) and returns a dict of numpy columns (identifying columns, then
:data:`sweep.metrics.METRIC_COLUMNS`); no files, no Ray.

How the kernels are exact and fast
----------------------------------
Activations are computed once. Every ablation is reduced to a change ``d`` of one hidden
unit's output (or of one logit) on the rows where it is non-zero; the next layer's
pre-activations then change by the rank-1 term ``d * W[unit]`` and only the later layers
are recomputed, on those rows only, many ablations per batched pass, in chunks of bounded
size. Metrics are accumulated from the changed rows alone (base metrics + per-ablation
changes). Rows whose new top-2 logit gap is below :data:`TIE_TOLERANCE` (relative), and
rows that are near-ties before the ablation, are recomputed the way ``MLPClassifier``
predicts (a full forward pass with the weights actually edited, sklearn's softmax and
argmax), so predictions equal the naive oracle's; losses are exact on every changed row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
from array_api_compat import device as array_device

from sweep.backend import Ops, namespace, network_to_numpy, ops_for, to_numpy
from sweep.metrics import metrics_from_changes, sample_log_loss
from sweep.network import (
    ACTIVATION_AT_ZERO,
    Network,
    forward,
    hidden_activations,
    predicted_index,
)

NEURON_MODES: tuple[str, ...] = ("zero", "remove", "mean")
"""``zero``: incoming weights and bias set to 0 (output ``act(0)``, the paper's removal);
``remove``: output forced to 0 (outgoing weights zeroed); ``mean``: output replaced by its
mean over a reference split."""

SYNAPSE_DIRECTIONS: tuple[str, ...] = ("incoming", "outgoing", "both")
"""Which synapses of chosen neurons :func:`select_synapses` returns."""

TIE_TOLERANCE: dict[np.dtype, float] = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}
"""Relative top-2 logit gap (``gap < tol * (1 + max |logit|)``) under which a row is
recomputed exactly as sklearn does, by the model's dtype."""

DEFAULT_CHUNK_ELEMENTS: int = 2**22
"""Elements of the largest temporary (changed rows x layer width) one pass may hold."""

_HIDDEN: dict[str, Callable[[Any, Ops, Any], Any]] = {
    "identity": lambda xp, ops, z: z,
    "logistic": lambda xp, ops, z: ops.expit(z),
    "tanh": lambda xp, ops, z: xp.tanh(z),
    "relu": lambda xp, ops, z: xp.maximum(z, xp.zeros_like(z)),
}
"""Backend-agnostic hidden activations, by sklearn's name."""


def replacement_values(
    net: Network, layer: int, mode: str, reference: np.ndarray | None = None
) -> np.ndarray:
    """The value each unit of ``layer`` outputs once ablated in ``mode``.

    Parameters
    ----------
    net : Network — numpy weights
    layer : int — 0-based hidden-layer index
    mode : str — one of :data:`NEURON_MODES`
    reference : ndarray of shape (n_ref, n_features), optional — inputs whose mean
        activation ``mean`` mode uses (required for it)

    Returns
    -------
    ndarray of shape (hidden_sizes[layer],)
    """
    width = net.hidden_sizes[layer]
    if mode == "mean":
        if reference is None:
            raise ValueError("mode 'mean' needs the reference inputs to average over")
        return hidden_activations(net, np.asarray(reference))[layer].mean(axis=0)
    constant = {"zero": ACTIVATION_AT_ZERO[net.activation], "remove": 0.0}
    if mode not in constant:
        raise ValueError(f"unknown neuron mode {mode!r}; expected one of {NEURON_MODES}")
    return np.full(width, constant[mode], dtype=net.dtype)


def class_index(net: Network, y: np.ndarray) -> np.ndarray:
    """Position of each label in ``net.classes``, shape ``(n_samples,)``."""
    idx = np.searchsorted(net.classes, y)
    if np.any(idx >= len(net.classes)) or np.any(net.classes[np.minimum(idx, len(net.classes) - 1)] != y):
        raise ValueError("labels contain classes the network was not trained on")
    return idx


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


# --------------------------------------------------------------------------- base state


@dataclass(frozen=True)
class _Outcome:
    """Per-row outcome of a forward pass: prediction, loss and whether it is a near-tie."""

    pred: Any
    loss: Any
    tie: Any


@dataclass(frozen=True)
class _Base:
    """Everything computed once per (network, data set).

    ``inputs[l]`` is the input of weight matrix ``l`` (``X``, then each hidden layer's
    activations), shape ``(n, n_in_l)``; ``pre[l]`` its pre-activation output, shape
    ``(n, n_out_l)`` (the last one holds the logits).
    """

    net: Network
    xp: Any
    ops: Ops
    inputs: list[Any]
    pre: list[Any]
    y: Any
    outcome: _Outcome
    right: Any
    y_np: np.ndarray

    @property
    def n(self) -> int:
        return int(self.y_np.shape[0])

    @property
    def last(self) -> int:
        return len(self.net.coefs) - 1

    def activate(self, z: Any) -> Any:
        return _HIDDEN[self.net.activation](self.xp, self.ops, z)

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        return self.xp.asarray(a, dtype=dtype, device=array_device(self.inputs[0]))


def _probabilities(xp: Any, ops: Ops, logits: Any, out_activation: str) -> Any:
    """Class probabilities as sklearn computes them, shape ``(m, n_classes)``."""
    if out_activation == "logistic":
        p = ops.expit(logits)
        return xp.concat([1 - p, p], axis=-1)
    e = xp.exp(logits - xp.max(logits, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


def _tie_gap(xp: Any, logits: Any) -> tuple[Any, Any]:
    """Decision margin and scale per row: top-2 logit gap (softmax) or ``|logit|`` (binary)."""
    if logits.shape[-1] == 1:
        return xp.abs(logits[:, 0]), 1 + xp.abs(logits[:, 0])
    top = xp.sort(logits, axis=-1)
    return top[:, -1] - top[:, -2], 1 + xp.max(xp.abs(logits), axis=-1)


def _outcome(base_net: Network, xp: Any, ops: Ops, logits: Any, y: Any) -> _Outcome:
    """Prediction, clipped log-loss and near-tie flag of each row, from its logits."""
    prob = _probabilities(xp, ops, logits, base_net.out_activation)
    if prob.shape[-1] == 2:
        pred = xp.astype(prob[:, 1] > 0.5, xp.int64)
    else:
        pred = xp.argmax(prob, axis=-1)
    eps = xp.finfo(prob.dtype).eps
    p_true = prob[xp.arange(prob.shape[0], device=array_device(prob)), y]
    loss = -xp.log(xp.clip(p_true, eps, 1.0))
    gap, scale = _tie_gap(xp, logits)
    tol = TIE_TOLERANCE.get(np.dtype(to_numpy(logits[:0]).dtype), 1e-4)
    return _Outcome(pred, loss, gap < tol * scale)


def _base_state(net: Network, X: Any, y: np.ndarray) -> _Base:
    xp, ops = namespace(X), ops_for(X)
    y_np = class_index(net, to_numpy(y) if not isinstance(y, np.ndarray) else y)
    inputs, pre = [X], []
    for l, (w, b) in enumerate(zip(net.coefs, net.intercepts)):
        pre.append(inputs[-1] @ w + b)
        if l < len(net.coefs) - 1:
            inputs.append(_HIDDEN[net.activation](xp, ops, pre[-1]))
    y_b = xp.asarray(y_np, device=array_device(X))
    outcome = _outcome(net, xp, ops, pre[-1], y_b)
    return _Base(net, xp, ops, inputs, pre, y_b, outcome, outcome.pred == y_b, y_np)


# --------------------------------------------------------------------------- the engine


@dataclass(frozen=True)
class _Batch:
    """Changed rows of a contiguous range of ablations ``[lo, hi)``.

    Every array has shape ``(m,)``: ``seg`` the ablation (global index), ``rows`` the
    sample row, ``units`` the row of ``directions`` to add, ``d`` its coefficient.
    The new pre-activation of weight matrix ``level`` on ``rows`` is
    ``pre[level][rows] + d * directions[units]``.
    """

    lo: int
    hi: int
    level: int
    directions: Any
    seg: Any
    rows: Any
    units: Any
    d: Any


@dataclass
class _Totals:
    """Per-ablation sums of the changes (numpy, float64)."""

    broken: np.ndarray
    fixed: np.ndarray
    class_change: np.ndarray
    loss_change: np.ndarray

    @classmethod
    def zeros(cls, k: int, n_classes: int) -> "_Totals":
        return cls(np.zeros(k), np.zeros(k), np.zeros((k, n_classes)), np.zeros(k))


def _new_logits(base: _Base, batch: _Batch) -> Any:
    """Logits of the changed rows, shape ``(m, n_outputs)``: only later layers recomputed."""
    z = base.pre[batch.level][batch.rows] + batch.d[:, None] * batch.directions[batch.units]
    for l in range(batch.level + 1, len(base.net.coefs)):
        z = base.activate(z) @ base.net.coefs[l] + base.net.intercepts[l]
    return z


def _accumulate(base: _Base, batch: _Batch, totals: _Totals, tie_rows: Any) -> np.ndarray:
    """Add one batch's changes to ``totals``; return its near-tie pairs for exact recompute.

    Returns
    -------
    ndarray of shape (2, n_ties), int64 — (ablation, row) pairs left out of ``totals``.
    """
    xp, ops = base.xp, base.ops
    y = base.y[batch.rows]
    out = _outcome(base.net, xp, ops, _new_logits(base, batch), y)
    tie = out.tie | tie_rows[batch.rows]
    keep = ~tie
    k = batch.hi - batch.lo
    C = len(base.net.classes)
    ids = batch.seg[keep] - batch.lo
    was = base.right[batch.rows][keep]
    now = (out.pred == y)[keep]
    as_float = lambda a: xp.astype(a, xp.float64)  # noqa: E731
    sums = (
        ops.segment_sum(as_float(was & ~now), ids, k),
        ops.segment_sum(as_float(~was & now), ids, k),
        ops.segment_sum(as_float(now) - as_float(was), ids * C + y[keep], k * C),
        ops.segment_sum(
            xp.astype(out.loss[keep] - base.outcome.loss[batch.rows][keep], xp.float64), ids, k
        ),
    )
    broken, fixed, class_change, loss_change = (to_numpy(s) for s in sums)
    totals.broken[batch.lo : batch.hi] += broken
    totals.fixed[batch.lo : batch.hi] += fixed
    totals.class_change[batch.lo : batch.hi] += class_change.reshape(k, C)
    totals.loss_change[batch.lo : batch.hi] += loss_change
    return np.stack([to_numpy(batch.seg[tie]), to_numpy(batch.rows[tie])]).astype(np.int64)


def _settle_ties(
    base: _Base,
    pairs: np.ndarray,
    edited: Callable[[Network, int], Network],
    totals: _Totals,
) -> None:
    """Recompute (ablation, row) pairs exactly as sklearn would and add their changes.

    The edited network's forward pass runs on all of ``X``, as ``predict`` does: BLAS may
    round a product differently when it has fewer rows (a single row goes through gemv).

    Parameters
    ----------
    pairs : ndarray of shape (2, m), int — unique (ablation, row) pairs
    edited : callable ``(numpy network, ablation) -> network with its weights edited``
    """
    if pairs.shape[1] == 0:
        return
    net = network_to_numpy(base.net)
    X = to_numpy(base.inputs[0])
    base_pred = to_numpy(base.outcome.pred)
    base_loss = to_numpy(base.outcome.loss)
    for a in np.unique(pairs[0]):
        rows = pairs[1, pairs[0] == a]
        prob = forward(edited(net, int(a)), X)[rows]
        y = base.y_np[rows]
        was = base_pred[rows] == y
        now = predicted_index(prob) == y
        totals.broken[a] += np.sum(was & ~now)
        totals.fixed[a] += np.sum(~was & now)
        np.add.at(totals.class_change[a], y, now.astype(np.float64) - was)
        totals.loss_change[a] += np.sum(sample_log_loss(prob, y) - base_loss[rows])


def _run(
    base: _Base,
    batches: Iterator[_Batch],
    n_ablations: int,
    edited: Callable[[Network, int], Network],
    recheck_base_ties: bool,
) -> dict[str, np.ndarray]:
    """Drive the batches, settle the near-ties, and build the metric columns.

    ``recheck_base_ties``: the edited weights round every row differently (``mean`` mode
    moves the unit's value into the next bias), so rows that are near-ties before the
    ablation are recomputed for every ablation. Otherwise a row whose unit output does not
    change is bit-identical in sklearn's pass and needs nothing.
    """
    C = len(base.net.classes)
    totals = _Totals.zeros(n_ablations, C)
    tie_rows = base.outcome.tie if recheck_base_ties else base.xp.zeros_like(base.outcome.tie)
    ties = [_accumulate(base, batch, totals, tie_rows) for batch in batches]
    always = np.flatnonzero(to_numpy(tie_rows))
    ties.append(
        np.stack([np.repeat(np.arange(n_ablations), len(always)), np.tile(always, n_ablations)])
    )
    pairs = np.unique(np.concatenate(ties, axis=1), axis=1)
    _settle_ties(base, pairs, edited, totals)
    return metrics_from_changes(
        base.y_np,
        to_numpy(base.outcome.pred),
        to_numpy(base.outcome.loss),
        np.rint(totals.broken).astype(np.int64),
        np.rint(totals.fixed).astype(np.int64),
        totals.class_change,
        totals.loss_change,
        C,
    )


def _ranges(counts: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Split ablations into contiguous ranges of about ``budget`` changed rows each.

    Parameters
    ----------
    counts : ndarray of shape (k,), int — changed rows of each ablation (an upper bound)
    budget : int — rows per range; a range exceeds it by at most one ablation's count
    """
    if len(counts) == 0:
        return []
    group = (np.cumsum(counts) - counts) // max(budget, 1)
    cuts = np.flatnonzero(np.diff(group)) + 1
    edges = np.concatenate([[0], cuts, [len(counts)]])
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _row_budget(base: _Base, level: int, chunk_elements: int) -> int:
    """Changed rows one pass may hold so that its widest temporary has ``chunk_elements``."""
    widest = max(int(z.shape[1]) for z in base.pre[level:])
    return max(chunk_elements // widest, 1)


def _pairs(xp: Any, mask: Any) -> tuple[Any, Any]:
    """(column, row) index pairs of the true entries of ``mask`` (n, g), column-major."""
    cols, rows = xp.nonzero(mask.T)
    return cols, rows


# --------------------------------------------------------------------------- neurons


def _neuron_batches(
    base: _Base, layer: int, units: Any, values: Any, budget: int
) -> Iterator[_Batch]:
    xp = base.xp
    h = base.inputs[layer + 1]
    counts = to_numpy(xp.sum(values[units][None, :] != h[:, units], axis=0))
    for lo, hi in _ranges(counts, budget):
        part = units[lo:hi]
        delta = values[part][None, :] - h[:, part]
        cols, rows = _pairs(xp, delta != 0)
        yield _Batch(
            lo, hi, layer + 1, base.net.coefs[layer + 1], cols + lo, rows, part[cols],
            delta[rows, cols],
        )


def ablate_neurons(
    net: Network,
    X: Any,
    y: np.ndarray,
    layer: int,
    units: np.ndarray,
    mode: str = "zero",
    reference: np.ndarray | None = None,
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
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
    chunk_elements : int — size of the largest temporary array of one pass

    Returns
    -------
    dict of str to ndarray
        ``layer`` and ``unit`` of shape ``(n_units,)`` and the metric columns (numpy).
    """
    units = np.asarray(units, dtype=np.int64)
    base = _base_state(net, X, y)
    net_np = network_to_numpy(net)
    values_np = replacement_values(net_np, layer, mode, None if reference is None else to_numpy(reference))
    values = base.asarray(values_np, dtype=base.pre[0].dtype)
    budget = _row_budget(base, layer + 1, chunk_elements)
    batches = _neuron_batches(base, layer, base.asarray(units), values, budget)

    def edited(numpy_net: Network, a: int) -> Network:
        unit = int(units[a])
        return ablated_neuron_network(numpy_net, layer, unit, mode, values_np[unit])

    columns = {"layer": np.full(len(units), layer, dtype=np.int64), "unit": units}
    columns.update(_run(base, batches, len(units), edited, mode == "mean"))
    return columns


# --------------------------------------------------------------------------- synapses


def _synapse_batches(
    base: _Base, layer: int, sources: Any, targets: Any, budget: int
) -> Iterator[_Batch]:
    xp = base.xp
    a = base.inputs[layer]
    w = base.net.coefs[layer][sources, targets]
    counts = to_numpy(xp.sum(a != 0, axis=0))[to_numpy(sources)]
    to_output = layer == base.last
    if to_output:
        n_out = int(base.pre[layer].shape[1])
        level, directions = layer, base.asarray(np.eye(n_out), dtype=base.pre[layer].dtype)
    else:
        level, directions = layer + 1, base.net.coefs[layer + 1]
    for lo, hi in _ranges(counts * (to_numpy(w) != 0), budget):
        cols, rows = _pairs(xp, a[:, sources[lo:hi]] != 0)
        t = targets[lo:hi][cols]
        step = -a[rows, sources[lo:hi][cols]] * w[lo:hi][cols]
        if to_output:
            d = step
        else:
            d = base.activate(base.pre[layer][rows, t] + step) - base.inputs[layer + 1][rows, t]
        moved = d != 0
        yield _Batch(lo, hi, level, directions, cols[moved] + lo, rows[moved], t[moved], d[moved])


def ablate_synapses(
    net: Network,
    X: Any,
    y: np.ndarray,
    layer: int,
    sources: np.ndarray,
    targets: np.ndarray,
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> dict[str, np.ndarray]:
    """Set each listed weight ``coefs[layer][source, target]`` to 0 on its own and measure.

    Parameters
    ----------
    net : Network — numpy or torch weights
    X : array of shape (n_samples, n_features) — same backend as ``net``
    y : ndarray of shape (n_samples,) — class labels
    layer : int — weight-matrix index (0: input -> first hidden; the last: hidden -> output)
    sources, targets : ndarray of shape (n_synapses,), int — row and column in that matrix
    chunk_elements : int — size of the largest temporary array of one pass

    Returns
    -------
    dict of str to ndarray
        ``layer``, ``source``, ``target`` of shape ``(n_synapses,)`` and the metric columns.
    """
    sources = np.asarray(sources, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    base = _base_state(net, X, y)
    level = min(layer + 1, base.last)
    budget = _row_budget(base, level, chunk_elements)
    batches = _synapse_batches(base, layer, base.asarray(sources), base.asarray(targets), budget)

    def edited(numpy_net: Network, a: int) -> Network:
        return ablated_synapse_network(numpy_net, layer, int(sources[a]), int(targets[a]))

    columns = {
        "layer": np.full(len(sources), layer, dtype=np.int64),
        "source": sources,
        "target": targets,
    }
    columns.update(_run(base, batches, len(sources), edited, False))
    return columns


def _all_synapses(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    n_in, n_out = shape
    return np.repeat(np.arange(n_in), n_out), np.tile(np.arange(n_out), n_in)


def _neuron_synapses(
    net: Network, neurons: list[tuple[int, int]], direction: str
) -> dict[int, list[np.ndarray]]:
    """Flat indices (``source * n_out + target``) of chosen neurons' synapses, by matrix."""
    chosen: dict[int, list[np.ndarray]] = {}
    sides = {"incoming": ("in",), "outgoing": ("out",), "both": ("in", "out")}
    if direction not in sides:
        raise ValueError(f"unknown direction {direction!r}; expected one of {SYNAPSE_DIRECTIONS}")
    for hidden, unit in neurons:
        if not 0 <= hidden < net.n_hidden_layers or not 0 <= unit < net.hidden_sizes[hidden]:
            raise ValueError(f"no hidden unit ({hidden}, {unit}) in a {net.hidden_sizes} network")
        for side in sides[direction]:
            matrix = hidden if side == "in" else hidden + 1
            n_in, n_out = net.coefs[matrix].shape
            flat = (
                np.arange(n_in) * n_out + unit if side == "in" else unit * n_out + np.arange(n_out)
            )
            chosen.setdefault(matrix, []).append(flat)
    return chosen


def select_synapses(
    net: Network,
    layers: list[int] | None = None,
    neurons: list[tuple[int, int]] | None = None,
    direction: str = "incoming",
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Choose synapses to ablate, in a deterministic order.

    Parameters
    ----------
    net : Network
    layers : list of int, optional — weight-matrix indices to keep (default: all)
    neurons : list of (hidden layer, unit), optional — take only these neurons' synapses
        (e.g. the most harmful units of a neuron sweep); default: every synapse
    direction : {"incoming", "outgoing", "both"} — which synapses of ``neurons``

    Returns
    -------
    list of (layer, sources, targets)
        One entry per weight matrix with at least one chosen synapse, by increasing
        ``layer``; ``sources`` and ``targets`` (int64, shape ``(n,)``) sorted by
        (source, target), without duplicates.
    """
    n_matrices = len(net.coefs)
    keep = range(n_matrices) if layers is None else sorted(set(layers))
    if any(not 0 <= m < n_matrices for m in keep):
        raise ValueError(f"weight-matrix layers must lie in [0, {n_matrices}), got {layers}")
    if neurons is None:
        return [(m, *_all_synapses(net.coefs[m].shape)) for m in keep]
    chosen = _neuron_synapses(net, neurons, direction)
    selected = []
    for m in keep:
        if m in chosen:
            flat = np.unique(np.concatenate(chosen[m]))
            n_out = net.coefs[m].shape[1]
            selected.append((m, flat // n_out, flat % n_out))
    return selected
