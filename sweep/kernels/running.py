"""THE running pass: a network's forward pass kept exact as hidden units are removed.

:class:`PrunedPass` is the forward pass of the network with the removed units' weights edited
as the naive oracle edits them (:func:`sweep.kernels.modes.ablated_units_network`), kept up
to date instead of recomputed: removing units of hidden layer ``l`` adds a rank-k term to the
pre-activations of layer ``l + 1`` on the rows whose outputs change, and only the later layers
are recomputed there (through :func:`~sweep.kernels.network.forward_pass`); a batch that spans
several layers recomputes every later layer from the first one with the edited weights. Rows
whose top-2 logit gap is a near-tie (:data:`~sweep.kernels.basestate.TIE_TOLERANCE`) are
recomputed with the edited weights on all rows, as ``MLPClassifier.predict`` does, so its
predictions are sklearn's.

Every caller that removes units from a pass uses it: joint ablations and the explorer
(:mod:`sweep.kernels.joint`), cumulative curves (:mod:`sweep.kernels.cumulative`), pruning
paths (:mod:`sweep.kernels.pruning`) and pairs (:mod:`sweep.kernels.pairs`). Pure numerics,
numpy or torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from array_api_compat import device as array_device

from sweep.kernels.backend import CONVERTERS, namespace, network_to_numpy, to_numpy
from sweep.kernels.basestate import BaseState, state_from_pass
from sweep.kernels.metrics import ablation_metrics, sample_log_loss
from sweep.kernels.modes import ablated_units_network, neuron_mode, outgoing_zeroed
from sweep.kernels.network import Network, class_index, forward, forward_pass, predicted_index

SPARSE_ROWS = 0.5
"""Recompute only the changed rows when they are at most this share of all rows."""


@dataclass(frozen=True)
class PerImageFolds:
    """A per-image mode's removals in a :class:`PrunedPass`: the weights only zero the
    removed units' outgoing rows, and each row's values times those rows are added to the
    next layer's output (what the oracle folds into the bias, image by image).

    Attributes
    ----------
    original : Network — the unpruned weights, numpy (the oracle's starting point)
    mode : str — the per-image mode
    values : list of ndarray — each hidden layer's ``(n, width_l)`` values, one row per image
    removed : ndarray of shape (k, 2), int — ``(layer, unit)`` in removal order
    offsets : list — per weight matrix, ``None`` or the ``(n, n_out)`` array added to its output
    """

    original: Network
    mode: str
    values: list[np.ndarray]
    removed: np.ndarray
    offsets: list[Any]

    def adding(self, units: np.ndarray, net: Network, xp: Any, device: Any, dtype: Any) -> PerImageFolds:
        """These folds with ``units`` (k, 2) removed too: ``values[l][:, units] @ W[l + 1][units]``
        (outgoing rows of ``net`` before the edit) added to weight matrix ``l + 1``'s offsets."""
        offsets = list(self.offsets)
        for layer in np.unique(units[:, 0]):
            cols = units[units[:, 0] == layer, 1]
            rows = np.asarray(self.values[layer], dtype=dtype)[:, cols]
            added = xp.asarray(rows, device=device) @ net.coefs[layer + 1][xp.asarray(cols, device=device), :]
            offsets[layer + 1] = added if offsets[layer + 1] is None else offsets[layer + 1] + added
        return replace(self, removed=np.concatenate([self.removed, units]), offsets=offsets)

    def edited(self, row: int) -> Network:
        """The unpruned weights with every removed unit ablated as the oracle does it for image
        ``row`` (:func:`~sweep.kernels.modes.ablated_units_network`)."""
        return ablated_units_network(self.original, self.removed, self.mode, self.values, row)


@dataclass
class PrunedPass:
    """The forward pass of a network with some hidden units removed in its weights.

    Attributes
    ----------
    net : Network — the edited weights, on the data's backend
    net_np : Network — the same weights, numpy (edited here, then moved to the backend)
    inputs, pre : lists of arrays — as :func:`~sweep.kernels.network.forward_pass` returns
        them for ``net``: ``inputs[m]`` of shape ``(n, n_in_m)``, ``pre[m]`` of shape
        ``(n, n_out_m)`` (up to rounding: rows that could round to another class are
        recomputed exactly by :meth:`state`)
    y : ndarray of shape (n,) — class labels
    values : list of ndarray — each hidden layer's replacement values, shape ``(width_l,)``
        (computed on the unpruned network), or ``(n, width_l)`` of a per-image mode
        (:func:`~sweep.kernels.modes.drawn_values`: one row per row of ``X``)
    mode : str — a key of :data:`~sweep.kernels.modes.NEURON_MODES`
    _state : BaseState, optional — :meth:`state`, until the next removal
    folds : PerImageFolds, optional — a per-image mode's removals (its values cannot be
        folded into one bias: they are added row by row)
    """

    net: Network
    net_np: Network
    inputs: list[Any]
    pre: list[Any]
    y: np.ndarray
    values: list[np.ndarray]
    mode: str
    _state: BaseState | None = None
    folds: PerImageFolds | None = None

    def __post_init__(self) -> None:
        n = int(self.inputs[0].shape[0])
        if not neuron_mode(self.mode).per_image:  # an unknown mode fails here, before any work
            return
        if any(np.ndim(v) != 2 or len(v) != n for v in self.values):
            raise ValueError(f"mode {self.mode!r} gives every image its own value: pass one row per image "
                             "(sweep.kernels.modes.drawn_values)")
        if self.folds is None:
            self.folds = PerImageFolds(self.net_np, self.mode, self.values, np.zeros((0, 2), dtype=np.int64),
                                       [None] * len(self.pre))

    @classmethod
    def start(
        cls, net: Network, X: Any, y: np.ndarray, values: list[np.ndarray], mode: str
    ) -> PrunedPass:
        """The unpruned pass of ``net`` (numpy or torch, same backend as ``X``) on ``(X, y)``."""
        xp = namespace(X)
        inputs, pre = forward_pass(net, X)
        hidden = [xp.asarray(h, copy=True) for h in inputs[1:]]  # identity: never alias pre
        return cls(net, network_to_numpy(net), [X, *hidden], list(pre), np.asarray(y), values, mode)

    def _on_backend(self, net_np: Network) -> Network:
        if isinstance(self.inputs[0], np.ndarray):
            return net_np
        convert = CONVERTERS["torch"](str(array_device(self.inputs[0])))
        coefs, intercepts = tuple(map(convert, net_np.coefs)), tuple(map(convert, net_np.intercepts))
        return net_np.with_weights(coefs, intercepts)

    def remove(self, layer: int, unit: int) -> None:
        """Remove hidden unit ``unit`` of hidden layer ``layer`` (not removed yet), in place."""
        self.remove_units(np.array([[layer, unit]], dtype=np.int64))

    def remove_units(self, units: np.ndarray) -> None:
        """Remove hidden units ``units`` (k, 2) of ``(layer, unit)``, none removed yet, in place.

        The earliest layer's units change the next pre-activations by a rank-k term on the
        rows whose outputs change; a batch with units of later layers too recomputes every
        layer after the earliest one on all rows, with the edited weights.
        """
        units = np.asarray(units, dtype=np.int64).reshape(-1, 2)
        if not len(units):
            return
        xp = namespace(self.inputs[0])
        self._state = None
        first = int(units[:, 0].min())
        level = first + 1
        h = self.inputs[level]
        device = array_device(h)
        cols_np = units[units[:, 0] == first, 1]
        cols = xp.asarray(cols_np, device=device)
        dtype = to_numpy(h[:0]).dtype
        values = xp.asarray(np.asarray(self.values[first], dtype=dtype)[..., cols_np], device=device)
        values = values if values.ndim == 2 else values[None, :]  # (n or 1, k)
        d = values - h[:, cols]  # (n, k)
        w = self.net.coefs[level][cols, :]  # outgoing weights before the edit, (k, n_out)
        if neuron_mode(self.mode).zero_incoming:  # the units now output act(0) = value
            self.pre[first][:, cols] = 0.0
            h[:, cols] = values
        if self.folds is None:
            self.net_np = ablated_units_network(self.net_np, units, self.mode, self.values)
        else:
            self.folds = self.folds.adding(units, self.net, xp, device, dtype)
            self.net_np = outgoing_zeroed(self.net_np, units)
        self.net = self._on_backend(self.net_np)
        if np.any(units[:, 0] > first):
            self._recompute(level, h, slice(None))
            return
        changed = to_numpy(xp.any(d != 0, axis=1))
        if not changed.any():
            return
        sparse = changed.mean() <= SPARSE_ROWS
        rows = xp.asarray(np.flatnonzero(changed), device=device) if sparse else slice(None)
        self.pre[level][rows] += d[rows] @ w
        if level < len(self.net.coefs) - 1:
            self._recompute(level + 1, self.net.act.fn(self.pre[level][rows]), rows)

    def _recompute(self, start: int, X: Any, rows: Any) -> None:
        """Weight matrices ``start`` on of the edited net applied to ``X`` (the input of matrix
        ``start`` on ``rows``), written into ``inputs`` and ``pre`` on those rows."""
        offsets = None if self.folds is None else [o if o is None else o[rows] for o in self.folds.offsets[start:]]
        later_inputs, later_pre = forward_pass(self.net, X, start=start, offsets=offsets)
        for offset, (a, z) in enumerate(zip(later_inputs, later_pre)):
            if offset:
                self.inputs[start + offset][rows] = a
            self.pre[start + offset][rows] = z
        if start > 0:
            self.inputs[start][rows] = X

    def copy(self) -> PrunedPass:
        """An independent copy (the input array is shared: it is never written)."""
        xp = namespace(self.inputs[0])
        inputs = [self.inputs[0], *(xp.asarray(a, copy=True) for a in self.inputs[1:])]
        pre = [xp.asarray(z, copy=True) for z in self.pre]
        return PrunedPass(self.net, self.net_np, inputs, pre, self.y, self.values, self.mode, self._state, self.folds)

    def without(self, layer: int, unit: int) -> PrunedPass:
        """A copy with hidden unit ``unit`` of hidden layer ``layer`` removed too; the arrays
        that removal leaves alone (the layers before it) are shared, not copied."""
        xp = namespace(self.inputs[0])
        inputs = [*self.inputs[: layer + 1], *(xp.asarray(a, copy=True) for a in self.inputs[layer + 1 :])]
        pre = [*self.pre[:layer], *(xp.asarray(z, copy=True) for z in self.pre[layer:])]
        copy = PrunedPass(self.net, self.net_np, inputs, pre, self.y, self.values, self.mode, folds=self.folds)
        copy.remove(layer, unit)
        return copy

    def state(self) -> BaseState:
        """The pass as a :class:`~sweep.kernels.basestate.BaseState`, its near-tie rows'
        predictions, probabilities and losses recomputed from the edited weights on all
        rows, exactly as sklearn's ``predict`` (so ``pred`` is sklearn's on every row)."""
        if self._state is None:
            self._state = self._settled(state_from_pass(self.net, self.inputs, self.pre, self.y, self.folds))
        return self._state

    def _settled(self, base: BaseState) -> BaseState:
        tie = to_numpy(base.tie)
        if not tie.any():
            return base
        rows = np.flatnonzero(tie)
        X = to_numpy(self.inputs[0])
        if self.folds is None:
            prob = forward(self.net_np, X)[rows]
        else:  # each row with its own values folded, as the oracle edits the weights per image
            prob = np.concatenate([forward(self.folds.edited(int(r)), X)[r : r + 1] for r in rows])
        pred, probabilities, loss = (
            base.xp.asarray(a, copy=True) for a in (base.pred, base.probabilities, base.loss)
        )
        at = base.asarray(rows)
        pred[at] = base.asarray(predicted_index(prob))
        probabilities[at] = base.asarray(prob, dtype=probabilities.dtype)
        loss[at] = base.asarray(sample_log_loss(prob, base.y_np[rows]), dtype=loss.dtype)
        return replace(base, pred=pred, probabilities=probabilities, loss=loss, right=pred == base.y)

    def outcome(self) -> tuple[np.ndarray, np.ndarray]:
        """Predicted class index and per-row loss of the pruned network, numpy, shape (n,)."""
        base = self.state()
        return to_numpy(base.pred), to_numpy(base.loss)

    def metrics(
        self, base_pred: np.ndarray, base_loss: np.ndarray, pred: np.ndarray, loss: np.ndarray
    ) -> dict[str, np.ndarray]:
        """:data:`~sweep.kernels.metrics.METRIC_COLUMNS` of one outcome ``(pred, loss)``
        against another (the unpruned network's), each of shape (n,); columns of length 1."""
        y_index = class_index(self.net_np, self.y)
        n_classes = len(self.net_np.classes)
        return ablation_metrics(y_index, base_pred, base_loss, pred[None], loss[None], n_classes)
