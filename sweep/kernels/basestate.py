"""The unablated forward pass every ablation kernel starts from.

:func:`prepare` runs one network on one data set once, on any backend (numpy, or torch
through :mod:`sweep.kernels.backend`), and keeps what every kernel reuses: each layer's input and
pre-activation, sklearn's probabilities, predictions, top-1 margins, near-tie flags and
per-row losses, as a :class:`BaseState`. Pure numerics: no files, no Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from array_api_compat import device as array_device

from sweep.kernels.backend import Ops, namespace, ops_for, to_numpy
from sweep.kernels.network import Network, class_index, expit, forward_pass

TIE_TOLERANCE: dict[np.dtype, float] = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}
"""Relative top-2 logit gap (``gap < tol * (1 + max |logit|)``) under which a row is
recomputed exactly as sklearn does, by the model's dtype."""


_SCORES: dict[str, Callable[[Any, Any], Any]] = {
    "softmax": lambda xp, z: z,
    "logistic": lambda xp, z: xp.concat([xp.zeros_like(z), z], axis=0),
}
"""Class scores whose first argmax is the prediction, from class-major logits
``(n_outputs, m)``, giving ``(n_classes, m)``: the logits themselves (softmax), ``(0, logit)``
(logistic). The kernels work class-major: reductions over a few classes are much faster
across rows."""


@dataclass(frozen=True)
class BaseState:
    """The unablated forward pass of one network on one data set, computed once.

    Attributes
    ----------
    net : Network — the weights (numpy or torch)
    xp, ops : the array namespace and :class:`~sweep.kernels.backend.Ops` of the backend
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
    folds : PerImageFolds, optional — a pruned pass's per-image removals
        (:class:`~sweep.kernels.running.PerImageFolds`): each row's values times the removed
        units' outgoing weights, added to later weight matrices' outputs row by row; an
        ablation on this state recomputes later layers with them and settles its near-ties
        with the weights edited for that row
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
    folds: Any = None

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
        return self.net.act.fn(z)

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        return self.xp.asarray(a, dtype=dtype, device=array_device(self.inputs[0]))

    def scores(self, logits_t: Any) -> Any:
        """Class scores ``(n_classes, m)`` of class-major logits ``(n_outputs, m)``."""
        return _SCORES[self.net.out_activation](self.xp, logits_t)


def _probabilities(xp: Any, ops: Ops, logits_t: Any, out_activation: str) -> Any:
    """Class probabilities as sklearn computes them, class-major: ``(n_outputs, m)`` logits
    to ``(n_classes, m)``."""
    if out_activation == "logistic":
        p = expit(logits_t)
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


def row_loss(xp: Any, ops: Ops, logits_t: Any, y: Any, out_activation: str) -> tuple[Any, Any]:
    """sklearn's probabilities ``(n_classes, m)`` and clipped log-loss ``(m,)`` of each row,
    from class-major logits ``(n_outputs, m)``."""
    prob = _probabilities(xp, ops, logits_t, out_activation)
    eps = xp.finfo(prob.dtype).eps
    p_true = prob[y, xp.arange(prob.shape[1], device=array_device(prob))]
    return prob, -xp.log(xp.clip(p_true, eps, 1.0))


def _tolerance(logits: Any) -> float:
    return TIE_TOLERANCE.get(np.dtype(to_numpy(logits[:0]).dtype), 1e-4)


def _predicted_index(xp: Any, prob: Any) -> Any:
    """:func:`sweep.kernels.network.predicted_index` on any backend, shape ``(m,)``."""
    if prob.shape[-1] == 2:
        return xp.astype(prob[:, 1] > 0.5, xp.int64)
    return xp.argmax(prob, axis=-1)


def prepare(net: Network, X: Any, y: np.ndarray) -> BaseState:
    """The unablated forward pass every kernel starts from (run it once per model and split).

    Parameters
    ----------
    net : Network — numpy or torch weights (see :func:`sweep.kernels.backend.to_backend`)
    X : array of shape (n_samples, n_features) — same backend as ``net``
    y : ndarray of shape (n_samples,) — class labels

    Returns
    -------
    BaseState
    """
    inputs, pre = forward_pass(net, X)
    return state_from_pass(net, inputs, pre, y)


def state_from_pass(
    net: Network, inputs: list[Any], pre: list[Any], y: np.ndarray, folds: Any = None
) -> BaseState:
    """The :class:`BaseState` of a forward pass already computed (:func:`prepare` runs it;
    :mod:`sweep.kernels.pruning` keeps one up to date as units are removed).

    Parameters
    ----------
    net : Network — the weights the pass belongs to (numpy or torch)
    inputs, pre : lists of arrays — as :func:`sweep.kernels.network.forward_pass` returns
        them: ``inputs[m]`` of shape ``(n, n_in_m)``, ``pre[m]`` of shape ``(n, n_out_m)``
    y : ndarray of shape (n_samples,) — class labels
    folds : PerImageFolds, optional — the pass's per-image removals (:attr:`BaseState.folds`)

    Returns
    -------
    BaseState
    """
    X = inputs[0]
    xp, ops = namespace(X), ops_for(X)
    y_np = class_index(net, to_numpy(y) if not isinstance(y, np.ndarray) else y)
    y_b = xp.asarray(y_np, device=array_device(X))
    prob, loss = row_loss(xp, ops, ops.contiguous(pre[-1].T), y_b, net.out_activation)
    prob = ops.contiguous(prob.T)
    pred = _predicted_index(xp, prob)
    margin = _margin(xp, _SCORES[net.out_activation](xp, pre[-1].T).T)
    scale = 1 + xp.max(xp.abs(pre[-1]), axis=-1)
    tolerance = _tolerance(pre[-1])
    return BaseState(
        net, xp, ops, tuple(inputs), tuple(pre), prob, pred, margin, scale,
        margin < tolerance * scale, loss, y_b, y_np, pred == y_b,
        np.bincount(y_np, minlength=len(net.classes)), tolerance, folds,
    )
