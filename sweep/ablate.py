"""Exact ablation kernels: remove hidden units or single weights of a
:class:`~sweep.network.Network` and measure on a data set.

Pure numerics: every kernel takes weights and arrays (numpy, or torch through
:mod:`sweep.backend`) and returns a dict of numpy columns (identifying columns, then
:data:`sweep.metrics.METRIC_COLUMNS`); no files, no Ray.

How the kernels are exact and fast
----------------------------------
:func:`prepare` runs the forward pass once (activations, logits, predictions, margins,
losses); every kernel reuses it. Every ablation is reduced to a change ``d`` of one unit's
output (a hidden unit, or one logit) on some rows; the next layer's pre-activations then
change by the rank-1 term ``d * W[unit]`` and only the later layers are recomputed, on
those rows only, many ablations per batched pass, in chunks of bounded size. Metrics are
accumulated from the changed rows alone (base metrics + per-ablation changes).

With ``metrics="full"`` every row whose unit output changes is recomputed (the loss is
exact). With ``metrics="accuracy"`` a row is recomputed only when an interval (Lipschitz)
bound says its prediction may change: per unit, :func:`_gain_table` bounds how much one
class score can gain on the predicted one per unit change of the unit's output
(propagating signed intervals through the later layers); a row whose top-1 lead exceeds
``|d| * bound`` provably keeps its prediction. Synapses are screened without per-synapse
work: for each source the rows are ranked by ``|input| / margin`` once and each synapse's
candidate rows are a prefix of that ranking. The loss is then NaN.

Rows whose new top-2 logit gap is below :data:`TIE_TOLERANCE` (relative), and rows that
are near-ties before the ablation, are recomputed the way ``MLPClassifier`` predicts (a
full forward pass with the weights actually edited, sklearn's softmax and argmax), so
predictions equal the naive oracle's.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

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

METRIC_SETS: tuple[str, ...] = ("full", "accuracy")
"""``full``: every metric column exact; ``accuracy``: all but ``loss`` (NaN) exact, rows
that provably keep their prediction skipped."""

SYNAPSE_DIRECTIONS: tuple[str, ...] = ("incoming", "outgoing", "both")
"""Which synapses of chosen neurons :func:`select_synapses` returns."""

TIE_TOLERANCE: dict[np.dtype, float] = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}
"""Relative top-2 logit gap (``gap < tol * (1 + max |logit|)``) under which a row is
recomputed exactly as sklearn does, by the model's dtype."""

LIPSCHITZ: dict[str, float] = {"identity": 1.0, "logistic": 0.25, "tanh": 1.0, "relu": 1.0}
"""Lipschitz constant of each (monotone, non-decreasing) hidden activation."""

DEFAULT_CHUNK_ELEMENTS: int = 2**18
"""Elements of the largest temporary (changed rows x layer width) one pass may hold: about
1,300 rows of a 196-wide layer, measured fastest (2**16 and 2**20 were 15-50 % slower)."""

SCREEN_ELEMENTS: int = 2**21
"""Elements of the largest (rows x units) array one screening pass may hold."""

_HIDDEN: dict[str, Callable[[Any, Ops, Any], Any]] = {
    "identity": lambda xp, ops, z: z,
    "logistic": lambda xp, ops, z: ops.expit(z),
    "tanh": lambda xp, ops, z: xp.tanh(z),
    "relu": lambda xp, ops, z: ops.relu(z),
}
"""Backend-agnostic hidden activations, by sklearn's name."""

_SCORE_MAPS: dict[str, Callable[[int], np.ndarray]] = {
    "softmax": np.eye,
    "logistic": lambda n_classes: np.array([[0.0, 1.0]]),
}
"""``(n_outputs, n_classes)`` map from logits to class scores whose first argmax is the
prediction: the logits themselves (softmax), ``(0, logit)`` (logistic)."""

_SCORES: dict[str, Callable[[Any, Any], Any]] = {
    "softmax": lambda xp, z: z,
    "logistic": lambda xp, z: xp.concat([xp.zeros_like(z), z], axis=0),
}
"""The same maps applied to class-major logits ``(n_outputs, m)``, giving ``(n_classes, m)``.
The kernels work class-major: reductions over a few classes are much faster across rows."""


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
    known = net.classes[np.minimum(idx, len(net.classes) - 1)] == y
    if np.any(idx >= len(net.classes)) or not np.all(known):
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
class BaseState:
    """The unablated forward pass of one network on one data set, computed once.

    Attributes
    ----------
    net : Network — the weights (numpy or torch)
    xp, ops : the array namespace and :class:`~sweep.backend.Ops` of the backend
    inputs : tuple of array — ``inputs[m]`` is the input of weight matrix ``m``, shape
        ``(n, n_in_m)``: ``X``, then each hidden layer's activations
    pre : tuple of array — ``pre[m]`` is weight matrix ``m``'s output before the
        activation, shape ``(n, n_out_m)``; ``pre[-1]`` holds the logits
    probabilities : array of shape (n, n_classes) — as sklearn's ``predict_proba``
    pred : array of shape (n,), int64 — predicted class index, as sklearn's ``predict``
    margin : array of shape (n,) — top-1 minus top-2 class score (``|logit|`` if binary)
    scale : array of shape (n,) — ``1 + max |logit|``, the scale of the tie tolerance
    tie : array of shape (n,), bool — ``margin < tolerance * scale`` (near-tie rows)
    loss : array of shape (n,) — clipped cross-entropy of each row
    y : array of shape (n,), int64 — true class index (backend array)
    y_np : ndarray of shape (n,), int64 — the same, numpy
    right : array of shape (n,), bool — ``pred == y``
    class_counts : ndarray of shape (n_classes,), int64 — rows of each true class
    tolerance : float — the relative tie tolerance of the model's dtype
    """

    net: Network
    xp: Any
    ops: Ops
    inputs: tuple[Any, ...]
    pre: tuple[Any, ...]
    probabilities: Any
    pred: Any
    margin: Any
    scale: Any
    tie: Any
    loss: Any
    y: Any
    y_np: np.ndarray
    right: Any
    class_counts: np.ndarray
    tolerance: float

    @property
    def activations(self) -> tuple[Any, ...]:
        """Hidden activations, ``activations[l]`` of shape ``(n, hidden_sizes[l])``."""
        return self.inputs[1:]

    @property
    def logits(self) -> Any:
        """Output logits, shape ``(n, n_outputs)``."""
        return self.pre[-1]

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

    def scores(self, logits_t: Any) -> Any:
        """Class scores ``(n_classes, m)`` of class-major logits ``(n_outputs, m)``."""
        return _SCORES[self.net.out_activation](self.xp, logits_t)


def _probabilities(xp: Any, ops: Ops, logits_t: Any, out_activation: str) -> Any:
    """Class probabilities as sklearn computes them, class-major: ``(n_outputs, m)`` logits
    to ``(n_classes, m)``."""
    if out_activation == "logistic":
        p = ops.expit(logits_t)
        return xp.concat([1 - p, p], axis=0)
    e = xp.exp(logits_t - xp.max(logits_t, axis=0))
    return e / xp.sum(e, axis=0)


def _margin(xp: Any, scores: Any) -> Any:
    """Top-1 minus top-2 score per row, 0 where the top score is shared; shape ``(m,)``."""
    first = xp.max(scores, axis=-1, keepdims=True)
    below = xp.where(scores < first, scores, xp.full_like(scores, -xp.inf))
    shared = xp.sum(xp.astype(scores == first, xp.int64), axis=-1) > 1
    gap = first[:, 0] - xp.max(below, axis=-1)
    return xp.where(shared, xp.zeros_like(gap), gap)


def _row_loss(xp: Any, ops: Ops, logits_t: Any, y: Any, out_activation: str) -> tuple[Any, Any]:
    """sklearn's probabilities ``(n_classes, m)`` and clipped log-loss ``(m,)`` of each row,
    from class-major logits ``(n_outputs, m)``."""
    prob = _probabilities(xp, ops, logits_t, out_activation)
    eps = xp.finfo(prob.dtype).eps
    p_true = prob[y, xp.arange(prob.shape[1], device=array_device(prob))]
    return prob, -xp.log(xp.clip(p_true, eps, 1.0))


def _decide(xp: Any, s: Any, tolerance: float) -> tuple[Any, Any]:
    """Predicted index and near-tie flag of each row, shapes ``(m,)``, from class-major
    scores ``(n_classes, m)``.

    A row is a near-tie when a second score lies within ``tolerance * (1 + max |logit|)``
    of the top one; elsewhere the first argmax of the scores is sklearn's prediction.
    """
    top = xp.max(s, axis=0)
    reach = top - tolerance * (1 + xp.max(xp.abs(s), axis=0))
    near = xp.sum(xp.astype(s > reach, xp.int64), axis=0)
    return xp.argmax(s, axis=0), near > 1


def _tolerance(logits: Any) -> float:
    return TIE_TOLERANCE.get(np.dtype(to_numpy(logits[:0]).dtype), 1e-4)


def prepare(net: Network, X: Any, y: np.ndarray) -> BaseState:
    """The unablated forward pass every kernel starts from (run it once per model and split).

    Parameters
    ----------
    net : Network — numpy or torch weights (see :func:`sweep.backend.to_backend`)
    X : array of shape (n_samples, n_features) — same backend as ``net``
    y : ndarray of shape (n_samples,) — class labels

    Returns
    -------
    BaseState
    """
    xp, ops = namespace(X), ops_for(X)
    y_np = class_index(net, to_numpy(y) if not isinstance(y, np.ndarray) else y)
    activate = _HIDDEN[net.activation]
    inputs, pre = [X], []
    for m, (w, b) in enumerate(zip(net.coefs, net.intercepts)):
        pre.append(inputs[-1] @ w + b)
        if m < len(net.coefs) - 1:
            inputs.append(activate(xp, ops, pre[-1]))
    y_b = xp.asarray(y_np, device=array_device(X))
    prob, loss = _row_loss(xp, ops, ops.contiguous(pre[-1].T), y_b, net.out_activation)
    prob = ops.contiguous(prob.T)
    pred = _predicted_index(xp, prob)
    margin = _margin(xp, _SCORES[net.out_activation](xp, pre[-1].T).T)
    scale = 1 + xp.max(xp.abs(pre[-1]), axis=-1)
    tolerance = _tolerance(pre[-1])
    return BaseState(
        net, xp, ops, tuple(inputs), tuple(pre), prob, pred, margin, scale,
        margin < tolerance * scale, loss, y_b, y_np, pred == y_b,
        np.bincount(y_np, minlength=len(net.classes)), tolerance,
    )


def _predicted_index(xp: Any, prob: Any) -> Any:
    """:func:`sweep.network.predicted_index` on any backend, shape ``(m,)``."""
    if prob.shape[-1] == 2:
        return xp.astype(prob[:, 1] > 0.5, xp.int64)
    return xp.argmax(prob, axis=-1)


# --------------------------------------------------------------------------- bounds


def _pair_gain(score_map: np.ndarray) -> np.ndarray:
    """``gain[k, p, c] = M[k, c] - M[k, p]`` of a ``(k, n_classes)`` map ``M``."""
    return score_map[:, None, :] - score_map[:, :, None]


def _interval_gain(net: Network, layer: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Upper bound of the gain of each class score over each other one.

    Interval arithmetic: a change of hidden layer ``layer``'s output inside ``[lo, hi]`` is
    propagated through the later matrices (bounds of ``Δz``) and activations (monotone,
    0 at 0, Lipschitz ``L``: ``Δh`` in ``[L min(lo, 0), L max(hi, 0)]``).

    Parameters
    ----------
    net : Network — numpy weights
    layer : int — hidden layer whose output changes
    lo, hi : ndarray of shape (k, hidden_sizes[layer]) — bounds of the change

    Returns
    -------
    ndarray of shape (k, n_classes, n_classes)
        ``[i, p, c]`` bounds ``Δ(score_c - score_p)`` for change ``i``.
    """
    lip = LIPSCHITZ[net.activation]
    last = len(net.coefs) - 1
    for w in net.coefs[layer + 1 : last]:
        up, down = np.maximum(w, 0), np.minimum(w, 0)
        lo, hi = lip * np.minimum(lo @ up + hi @ down, 0), lip * np.maximum(hi @ up + lo @ down, 0)
    n_classes = len(net.classes)
    score_map = _SCORE_MAPS[net.out_activation](n_classes)
    gain = _pair_gain(net.coefs[last] @ score_map).reshape(hi.shape[1], -1)
    bound = hi @ np.maximum(gain, 0) + lo @ np.minimum(gain, 0)
    return bound.reshape(-1, n_classes, n_classes)


def _gain_table(net: Network, matrix: int, before_activation: bool) -> np.ndarray:
    """Bound of each class's gain on each other per unit change of one unit.

    Parameters
    ----------
    net : Network — numpy weights
    matrix : int — the units are weight matrix ``matrix``'s outputs (the logits if last)
    before_activation : bool — the change is of the unit's pre-activation (else of its
        activation); no difference for the logits

    Returns
    -------
    ndarray of shape (n_out, 2, n_classes, n_classes), float64, >= 0
        ``[j, s, p, c]`` bounds ``Δ(score_c - score_p) / |Δ|`` for a change of unit ``j``
        of sign ``+`` (``s = 0``) or ``-`` (``s = 1``).
    """
    n_classes = len(net.classes)
    if matrix == len(net.coefs) - 1:
        gain = _pair_gain(_SCORE_MAPS[net.out_activation](n_classes))
        return np.maximum(np.stack([gain, -gain], axis=1), 0)
    eye = np.eye(net.coefs[matrix].shape[1])
    lip = LIPSCHITZ[net.activation] if before_activation else None
    tables = []
    for sign in (1.0, -1.0):
        lo = hi = sign * eye
        if lip is not None:
            lo, hi = lip * np.minimum(lo, 0), lip * np.maximum(hi, 0)
        tables.append(_interval_gain(net, matrix, lo, hi))
    return np.maximum(np.stack(tables, axis=1), 0)


@dataclass(frozen=True)
class _Screen:
    """What the ``accuracy`` metric set needs to skip rows that keep their prediction.

    ``slack[r, c]``: how much class ``c`` may gain on row ``r``'s predicted class with the
    prediction provably unchanged (``inf`` for the predicted class, ``<= 0`` on near-ties);
    ``inv_margin[r] = 1 / min_c slack[r, c]`` (huge on near-ties); ``pre`` and ``post`` the
    :func:`_gain_table` of the matrix's units before / after their activation, scaled by
    the safety factor ``1 + tolerance``; ``peak`` their max over classes, ``(n_out, 2)``.
    """

    slack: Any
    inv_margin: Any
    pre: Any
    post: Any
    peak_pre: Any
    peak_post: Any


def _screen(base: BaseState, matrix: int) -> _Screen:
    xp = base.xp
    net = network_to_numpy(base.net)
    net = net.with_weights(tuple(w.astype(np.float64) for w in net.coefs), net.intercepts)
    safety = 1 + base.tolerance
    tables = [safety * _gain_table(net, matrix, before) for before in (True, False)]
    scores = base.scores(base.logits.T).T
    top = scores[xp.arange(base.n, device=array_device(scores)), base.pred][:, None]
    slack = top - scores - 2 * base.tolerance * base.scale[:, None]
    own = base.asarray(np.arange(scores.shape[1]))[None, :] == base.pred[:, None]
    slack = xp.where(own, xp.full_like(slack, xp.inf), slack)
    inv = _reciprocal(xp, xp.min(slack, axis=1), xp.finfo(slack.dtype).max)
    pre, post = (base.asarray(t, dtype=slack.dtype) for t in tables)
    return _Screen(slack, inv, pre, post, xp.max(pre, axis=(2, 3)), xp.max(post, axis=(2, 3)))


def _reciprocal(xp: Any, x: Any, otherwise: float = float("inf")) -> Any:
    """``1 / x`` where ``x > 0``, else ``otherwise`` (without division warnings)."""
    positive = x > 0
    inv = 1 / xp.where(positive, x, xp.ones_like(x))
    return xp.where(positive, inv, xp.full_like(x, otherwise))


def _over(xp: Any, ratio: Any, up: Any, down: Any | None = None) -> tuple[Any, Any]:
    """(column, row) pairs where ``ratio * up >= 1`` or ``-ratio * down >= 1``, column-major.

    Parameters
    ----------
    ratio : array of shape (n, k) — signed change per unit of margin
    up, down : array of shape (k,) — bound factors of positive / negative changes (no
        negative changes when ``down`` is None)
    """
    mask = ratio * up >= 1
    return _pairs(xp, mask if down is None else mask | (ratio * down <= -1))


def _may_flip(base: BaseState, screen: _Screen, units: Any, rows: Any, d: Any) -> Any:
    """Whether the class-wise bound lets a change ``d`` of ``units`` flip ``rows`` (m,)."""
    xp = base.xp
    sign = xp.astype(d < 0, xp.int64)
    gain = xp.abs(d)[:, None] * screen.post[units, sign, base.pred[rows]]
    return xp.any(gain >= screen.slack[rows], axis=1) & (d != 0)


# --------------------------------------------------------------------------- the engine


@dataclass(frozen=True)
class _Changes:
    """Changed rows of ablations, sorted by ablation.

    Every array has shape ``(m,)``: ``seg`` the ablation (global index), ``rows`` the
    sample row, ``units`` the row of ``directions`` to add, ``d`` its coefficient.
    The new pre-activation of weight matrix ``level`` on ``rows`` is
    ``pre[level][rows] + d * directions[units]``.
    """

    level: int
    directions: Any
    seg: Any
    rows: Any
    units: Any
    d: Any

    def keep(self, mask: Any) -> _Changes:
        return _Changes(
            self.level, self.directions, self.seg[mask], self.rows[mask], self.units[mask],
            self.d[mask],
        )


@dataclass(frozen=True)
class _Batch:
    """The changes of a contiguous range of ablations ``[lo, hi)``."""

    lo: int
    hi: int
    changes: _Changes


@dataclass
class _Totals:
    """Per-ablation sums of the changes (numpy, float64)."""

    broken: np.ndarray
    fixed: np.ndarray
    class_change: np.ndarray
    loss_change: np.ndarray

    @classmethod
    def zeros(cls, k: int, n_classes: int) -> _Totals:
        return cls(np.zeros(k), np.zeros(k), np.zeros((k, n_classes)), np.zeros(k))


def _new_logits(base: BaseState, ch: _Changes) -> Any:
    """Class-major logits of the changed rows, shape ``(n_outputs, m)``: only the layers
    after the change are recomputed."""
    xp, net = base.xp, base.net
    z = xp.take(base.pre[ch.level], ch.rows, axis=0)
    if ch.units.shape[0] == 1:
        z = base.ops.add_outer(z, ch.d, ch.directions[ch.units[0]])
    else:
        z += ch.d[:, None] * ch.directions[ch.units]
    if ch.level == base.last:
        return base.ops.contiguous(z.T)
    for m in range(ch.level + 1, base.last):
        z = base.activate(z) @ net.coefs[m] + net.intercepts[m]
    return net.coefs[base.last].T @ base.activate(z).T + net.intercepts[base.last][:, None]


def _accumulate(
    base: BaseState, batch: _Batch, totals: _Totals, tie_rows: Any, with_loss: bool
) -> np.ndarray:
    """Add one batch's changes to ``totals``; return its near-tie pairs for exact recompute.

    Returns
    -------
    ndarray of shape (2, n_ties), int64 — (ablation, row) pairs left out of ``totals``.
    """
    xp, ops, ch = base.xp, base.ops, batch.changes
    y = base.y[ch.rows]
    logits = _new_logits(base, ch)
    pred, tie = _decide(xp, base.scores(logits), base.tolerance)
    keep = ~(tie | tie_rows[ch.rows])
    k = batch.hi - batch.lo
    C = len(base.net.classes)
    ids = ch.seg[keep] - batch.lo
    was = base.right[ch.rows][keep]
    now = (pred == y)[keep]
    as_float = lambda a: xp.astype(a, xp.float64)
    sums = [
        ops.segment_sum(as_float(was & ~now), ids, k),
        ops.segment_sum(as_float(~was & now), ids, k),
        ops.segment_sum(as_float(now) - as_float(was), ids * C + y[keep], k * C),
    ]
    if with_loss:
        loss = _row_loss(xp, ops, logits[:, keep], y[keep], base.net.out_activation)[1]
        sums.append(ops.segment_sum(as_float(loss - base.loss[ch.rows][keep]), ids, k))
    broken, fixed, class_change, *loss_change = (to_numpy(s) for s in sums)
    totals.broken[batch.lo : batch.hi] += broken
    totals.fixed[batch.lo : batch.hi] += fixed
    totals.class_change[batch.lo : batch.hi] += class_change.reshape(k, C)
    totals.loss_change[batch.lo : batch.hi] += sum(loss_change, np.zeros(k))
    return np.stack([to_numpy(ch.seg[~keep]), to_numpy(ch.rows[~keep])]).astype(np.int64)


def _settle_ties(
    base: BaseState,
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
    base_pred = to_numpy(base.pred)
    base_loss = to_numpy(base.loss)
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
    base: BaseState,
    batches: Iterator[_Batch],
    n_ablations: int,
    edited: Callable[[Network, int], Network],
    recheck_base_ties: bool,
    metrics: str,
) -> dict[str, np.ndarray]:
    """Drive the batches, settle the near-ties, and build the metric columns.

    ``recheck_base_ties``: the edited weights round every row differently (``mean`` mode
    moves the unit's value into the next bias), so rows that are near-ties before the
    ablation are recomputed for every ablation. Otherwise a row whose unit output does not
    change is bit-identical in sklearn's pass and needs nothing.
    """
    C = len(base.net.classes)
    totals = _Totals.zeros(n_ablations, C)
    tie_rows = base.tie if recheck_base_ties else base.xp.zeros_like(base.tie)
    with base.ops.single_thread():
        ties = [_accumulate(base, b, totals, tie_rows, metrics == "full") for b in batches]
    always = np.flatnonzero(to_numpy(tie_rows))
    ties.append(
        np.stack([np.repeat(np.arange(n_ablations), len(always)), np.tile(always, n_ablations)])
    )
    pairs = np.unique(np.concatenate(ties, axis=1), axis=1)
    _settle_ties(base, pairs, edited, totals)
    loss_change = totals.loss_change if metrics == "full" else np.full(n_ablations, np.nan)
    return metrics_from_changes(
        base.y_np,
        to_numpy(base.pred),
        to_numpy(base.loss),
        np.rint(totals.broken).astype(np.int64),
        np.rint(totals.fixed).astype(np.int64),
        totals.class_change,
        loss_change,
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
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def _split(ch: _Changes, budget: int) -> Iterator[_Batch]:
    """Cut changes (sorted by ablation) into batches of ``budget`` rows.

    An ablation may straddle batches (its sums simply add up). All changes of one ablation
    share their unit, so a batch within a single ablation keeps one unit, broadcast.
    """
    seg = to_numpy(ch.seg)
    for start in range(0, len(seg), max(budget, 1)):
        part = slice(start, min(start + budget, len(seg)))
        lo, hi = int(seg[part.start]), int(seg[part.stop - 1]) + 1
        units = ch.units[part.start : part.start + 1] if hi - lo == 1 else ch.units[part]
        yield _Batch(lo, hi, _Changes(
            ch.level, ch.directions, ch.seg[part], ch.rows[part], units, ch.d[part]
        ))


def _row_budget(base: BaseState, level: int, chunk_elements: int) -> int:
    """Changed rows one pass may hold so that its widest temporary has ``chunk_elements``."""
    widest = max(int(z.shape[1]) for z in base.pre[level:])
    return max(chunk_elements // widest, 1)


def _pairs(xp: Any, mask: Any) -> tuple[Any, Any]:
    """(column, row) index pairs of the true entries of ``mask`` (n, g), column-major."""
    cols, rows = xp.nonzero(mask.T)
    return cols, rows


def _column_chunks(n_columns: int, n_rows: int) -> list[tuple[int, int]]:
    """Ranges of columns such that ``n_rows x columns`` fits :data:`SCREEN_ELEMENTS`."""
    step = max(SCREEN_ELEMENTS // max(n_rows, 1), 1)
    return [(lo, min(lo + step, n_columns)) for lo in range(0, n_columns, step)]


def _check_metrics(metrics: str) -> None:
    if metrics not in METRIC_SETS:
        raise ValueError(f"unknown metric set {metrics!r}; expected one of {METRIC_SETS}")


# --------------------------------------------------------------------------- neurons


def _neuron_changes(
    base: BaseState, layer: int, units: Any, values: Any, screen: _Screen | None
) -> Iterator[_Changes]:
    """Changed (or, with a ``screen``, possibly flipped) rows of each unit's ablation."""
    xp = base.xp
    h = base.inputs[layer + 1]
    for lo, hi in _column_chunks(int(units.shape[0]), base.n):
        part = units[lo:hi]
        delta = values[part][None, :] - h[:, part]
        if screen is None:
            cols, rows = _pairs(xp, delta != 0)
        else:
            ratio = delta * screen.inv_margin[:, None]
            peak = screen.peak_post[part]
            cols, rows = _over(xp, ratio, peak[:, 0], peak[:, 1])
        ch = _Changes(
            layer + 1, base.net.coefs[layer + 1], cols + lo, rows, part[cols], delta[rows, cols]
        )
        if screen is not None:
            ch = ch.keep(_may_flip(base, screen, ch.units, ch.rows, ch.d))
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

    Returns
    -------
    dict of str to ndarray
        ``layer`` and ``unit`` of shape ``(n_units,)`` and the metric columns (numpy).
    """
    _check_metrics(metrics)
    units = np.asarray(units, dtype=np.int64)
    base = prepare(net, X, y) if base is None else base
    net_np = network_to_numpy(net)
    ref = None if reference is None else to_numpy(reference)
    values_np = replacement_values(net_np, layer, mode, ref)
    values = base.asarray(values_np, dtype=base.pre[0].dtype)
    screen = _screen(base, layer) if metrics == "accuracy" else None
    budget = _row_budget(base, layer + 1, chunk_elements)
    batches = (
        batch
        for ch in _neuron_changes(base, layer, base.asarray(units), values, screen)
        for batch in _split(ch, budget)
    )

    def edited(numpy_net: Network, a: int) -> Network:
        unit = int(units[a])
        return ablated_neuron_network(numpy_net, layer, unit, mode, values_np[unit])

    columns = {"layer": np.full(len(units), layer, dtype=np.int64), "unit": units}
    columns.update(_run(base, batches, len(units), edited, mode == "mean", metrics))
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
) -> Iterator[_Changes]:
    """Every row on which each synapse's source is non-zero (the ``full`` metric set)."""
    xp = base.xp
    a = base.inputs[matrix]
    w = base.net.coefs[matrix][sources, targets]
    level, directions = _synapse_level(base, matrix)
    counts = to_numpy(xp.sum(a != 0, axis=0))[to_numpy(sources)]
    for lo, hi in _ranges(counts * (to_numpy(w) != 0), budget):
        cols, rows = _pairs(xp, a[:, sources[lo:hi]] != 0)
        t = targets[lo:hi][cols]
        d = _unit_change(base, matrix, rows, sources[lo:hi][cols], t, w[lo:hi][cols])
        yield _Changes(level, directions, cols + lo, rows, t, d).keep(d != 0)


def _ragged(xp: Any, starts: Any, counts: Any) -> tuple[Any, Any]:
    """Owner and position of ``concat(arange(s, s + c))`` over ``(starts, counts)`` (k,)."""
    owner = xp.repeat(xp.arange(counts.shape[0], device=array_device(counts)), counts)
    first = xp.cumulative_sum(counts) - counts
    position = xp.arange(owner.shape[0], device=array_device(counts)) - first[owner] + starts[owner]
    return owner, position


def _prefix_candidates(
    xp: Any, ratio: Any, factor: Any, local: Any, targets: Any, n_targets: int
) -> tuple[Any, Any]:
    """Rows where ``ratio[row, local[k]] * factor[k] >= 1``, for every synapse ``k``.

    The union of the candidates of each source column is found once; ranking its rows by
    ratio makes each synapse's candidates a prefix of that ranking, so a synapse costs two
    binary searches, however many rows there are.

    Parameters
    ----------
    ratio : array of shape (n, n_local) — the sources' values per unit of margin (>= 0)
    factor : array of shape (k,) — each synapse's bound factor (>= 0)
    local, targets : arrays of shape (k,), int — each synapse's source column in ``ratio``
        and its target (distinct pairs)
    n_targets : int — number of possible targets

    Returns
    -------
    (synapse, row) : arrays of shape (m,), sorted by synapse
    """
    dense = xp.zeros((ratio.shape[1], n_targets), dtype=factor.dtype, device=array_device(factor))
    dense[local, targets] = factor
    cols, rows = _over(xp, ratio, xp.max(dense, axis=1))
    values = ratio[rows, cols]
    n = values.shape[0]
    ordered = xp.sort(values)
    rank = lambda v: n - xp.searchsorted(ordered, v, side="left")  # values >= v
    key = cols * (n + 1) + rank(values)
    order = xp.argsort(key)
    key, rows = key[order], rows[order]
    threshold = _reciprocal(xp, factor)
    start = xp.searchsorted(key, local * (n + 1), side="left")
    stop = xp.searchsorted(key, local * (n + 1) + rank(threshold), side="right")
    owner, position = _ragged(xp, start, stop - start)
    return owner, rows[position]




def _source_chunks(sources: np.ndarray, n_rows: int) -> list[tuple[int, int, np.ndarray]]:
    """Ranges of synapses (sorted by source) whose distinct sources fit one screening pass.

    Returns
    -------
    list of (lo, hi, local)
        ``local`` (hi - lo,) is each synapse's source position among the range's sources.
    """
    if len(sources) == 0:
        return []
    distinct = np.cumsum(np.concatenate([[0], np.diff(sources) != 0]))
    group = distinct // max(SCREEN_ELEMENTS // max(n_rows, 1), 1)
    edges = np.concatenate([[0], np.flatnonzero(np.diff(group)) + 1, [len(sources)]])
    return [
        (int(lo), int(hi), distinct[lo:hi] - distinct[lo]) for lo, hi in itertools.pairwise(edges)
    ]


def _screened_rows(
    base: BaseState, matrix: int, sources: np.ndarray, targets: np.ndarray, screen: _Screen
) -> Iterator[_Changes]:
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
    for lo, hi, local_np in _source_chunks(sources, base.n):
        local = base.asarray(local_np)
        columns = base.asarray(np.unique(sources[lo:hi]))
        ratio = a[:, columns] * screen.inv_margin[:, None]
        signs = (ratio, -ratio) if bool(xp.any(ratio < 0)) else (ratio,)
        found = [
            _prefix_candidates(xp, xp.clip(r, 0, None), f[lo:hi], local, tgt[lo:hi], n_targets)
            for r, f in zip(signs, factors)
        ]
        seg, rows = (xp.concat(parts) for parts in zip(*found))
        order = xp.argsort(seg, stable=True)
        seg, rows = seg[order], rows[order]
        t = tgt[lo:hi][seg]
        d = _unit_change(base, matrix, rows, src[lo:hi][seg], t, w[lo:hi][seg])
        ch = _Changes(level, directions, seg + lo, rows, t, d)
        yield ch.keep(_may_flip(base, screen, t, rows, d))


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
    budget = _row_budget(base, min(layer + 1, base.last), chunk_elements)
    if metrics == "full":
        changes = _all_rows(base, layer, base.asarray(by_source), base.asarray(to), budget)
    else:
        changes = _screened_rows(base, layer, by_source, to, _screen(base, layer))
    batches = (batch for ch in changes for batch in _split(ch, budget))

    def edited(numpy_net: Network, a: int) -> Network:
        return ablated_synapse_network(numpy_net, layer, int(by_source[a]), int(to[a]))

    measured = _run(base, batches, len(sources), edited, False, metrics)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    columns = {
        "layer": np.full(len(sources), layer, dtype=np.int64),
        "source": sources,
        "target": targets,
    }
    columns.update({name: values[inverse] for name, values in measured.items()})
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
