"""Joint ablation of a set of hidden units, and the running state cumulative curves update.

Pure numerics on the array API (numpy or torch). A unit is ``(layer, unit)`` over the hidden
layers. Every neuron mode of :data:`sweep.kernels.modes.NEURON_MODES` replaces the unit's
output by a constant computed on the *unablated* network, so ablating a set of units equals
the naive oracle that edits the weights of all of them at once.

The running state keeps every hidden layer's outputs and the next pre-activations; ablating
more units of layer ``L`` adds a rank-r term to the pre-activations of layer ``L + 1``, and
only the layers after that are recomputed, on the rows that changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as array_device

from sweep.kernels.backend import network_to_numpy, to_numpy
from sweep.kernels.metrics import ablation_metrics, sample_log_loss
from sweep.kernels.modes import unit_replacements
from sweep.kernels.network import (
    Network,
    class_index,
    forward_pass,
    output_probabilities,
    predicted_index,
)

SPARSE_ROWS = 0.5
"""Recompute only the changed rows when they are at most this share of all rows."""


def as_units(units: Sequence[tuple[int, int]] | np.ndarray, net: Network) -> np.ndarray:
    """Validate a unit list and return it as an int64 array of shape ``(k, 2)``.

    Raises
    ------
    ValueError
        On a layer or unit index out of range, or a unit listed twice.
    """
    arr = np.asarray(units, dtype=np.int64).reshape(-1, 2)
    sizes = np.asarray(net.hidden_sizes)
    layer, unit = arr[:, 0], arr[:, 1]
    if np.any((layer < 0) | (layer >= len(sizes))):
        raise ValueError(f"layer index out of range 0..{len(sizes) - 1}")
    if np.any((unit < 0) | (unit >= sizes[layer])):
        raise ValueError("unit index out of range for its layer")
    if len(np.unique(arr, axis=0)) != len(arr):
        raise ValueError("a unit is listed more than once")
    return arr


@dataclass
class State:
    """Running outputs of a network with a set of hidden units replaced by constants.

    ``a[l]`` (n, width_l): outputs of hidden layer ``l`` (ablated columns hold their values);
    ``z[l]`` (n, width_{l+1} or n_outputs): pre-activations of the layer after hidden layer
    ``l``, so ``z[-1]`` are the output logits; ``ablated[l]``: numpy bool mask (width_l,);
    ``values[l]``: the replacement values of layer ``l`` (backend array, (width_l,)).
    """

    net: Network
    a: list[Any]
    z: list[Any]
    ablated: list[np.ndarray]
    values: list[Any]

    def copy(self) -> State:
        xp = array_namespace(self.a[0])
        return State(
            self.net, [xp.asarray(x, copy=True) for x in self.a], [xp.asarray(x, copy=True) for x in self.z],
            [x.copy() for x in self.ablated], self.values,
        )

    def _on_device(self, a: np.ndarray) -> Any:
        return array_namespace(self.a[0]).asarray(a, device=array_device(self.a[0]))

    def _held(self, layer: int, h: Any) -> Any:
        """``h`` (rows, width) with the ablated columns of ``layer`` at their values (a new array)."""
        xp = array_namespace(h)
        return xp.where(self._on_device(self.ablated[layer])[None, :], self.values[layer][None, :], h)

    def ablate(self, units: np.ndarray) -> None:
        """Ablate ``units`` (k >= 1, 2) not yet ablated, in place.

        The earliest layer involved updates the next pre-activations by a rank-k term; the
        layers after it are recomputed with their ablated columns held at their values, only
        on the rows whose pre-activations changed (all rows from a layer with new units on).
        """
        xp, net = array_namespace(self.a[0]), self.net
        first = int(units[:, 0].min())
        new = units[units[:, 0] == first, 1]
        self.ablated[first][new] = True
        cols = self._on_device(new)
        delta = self.values[first][cols][None, :] - self.a[first][:, cols]
        changed = to_numpy(xp.any(delta != 0, axis=1))
        rows = self._on_device(np.flatnonzero(changed)) if changed.mean() <= SPARSE_ROWS else slice(None)
        self.z[first][rows] += delta[rows] @ net.coefs[first + 1][cols, :]
        self.a[first][:, cols] = self.values[first][cols][None, :]
        for layer in range(first + 1, net.n_hidden_layers):
            new = units[units[:, 0] == layer, 1]
            if len(new):
                rows = slice(None)
            self.ablated[layer][new] = True
            h = self._held(layer, net.act.fn(self.z[layer - 1][rows]))
            self.a[layer][rows] = h
            self.z[layer][rows] = h @ net.coefs[layer + 1] + net.intercepts[layer + 1]

    def evaluate(self, y_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted class index and per-row loss, numpy, each of shape (n_samples,)."""
        prob = output_probabilities(to_numpy(self.z[-1]), self.net.out_activation)
        return predicted_index(prob), sample_log_loss(prob, y_index)


def initial_state(net: Network, X: Any, units: np.ndarray, values: list[np.ndarray]) -> State:
    """The running state with ``units`` (k, 2) already replaced by ``values[layer]``.

    Parameters
    ----------
    net : Network — numpy or torch weights, same backend as ``X``
    X : array of shape (n_samples, n_features)
    units : ndarray of shape (k, 2), int
    values : list of ndarray — the replacement values of each hidden layer (numpy)
    """
    xp, device = array_namespace(X), array_device(X)
    masks = [np.zeros(w, dtype=bool) for w in net.hidden_sizes]
    for layer, unit in units:
        masks[layer][unit] = True
    on_device = [xp.asarray(v, dtype=X.dtype, device=device) for v in values]
    replaced = [(xp.asarray(m, device=device), v) for m, v in zip(masks, on_device)]
    inputs, pre = forward_pass(net, X, replaced)
    return State(net, inputs[1:], pre[1:], masks, on_device)


def ablate_joint(
    net: Network,
    X: Any,
    y: np.ndarray,
    units: Sequence[tuple[int, int]] | np.ndarray,
    mode: str = "zero",
    reference: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Ablate a set of hidden units (any layers) all at once and measure on ``(X, y)``.

    Parameters
    ----------
    net : Network — numpy or torch weights, same backend as ``X``
    X : array of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,) — class labels
    units : sequence of (layer, unit) or ndarray of shape (k, 2), int — may be empty
    mode : str — a key of :data:`sweep.kernels.modes.NEURON_MODES`
    reference : ndarray of shape (n_ref, n_features), optional — for ``mode='mean'``

    Returns
    -------
    dict of str to ndarray
        The :data:`sweep.kernels.metrics.METRIC_COLUMNS` (accuracy_base, accuracy, effect,
        loss_base, loss, broken, fixed, ...) for this one ablation, each an array of
        length 1 (``class_effect`` of shape (1, n_classes)).
    """
    units = as_units(units, net)
    y_index = class_index(net, y)
    values = unit_replacements(network_to_numpy(net), mode, None if reference is None else to_numpy(reference))
    base_pred, base_loss = initial_state(net, X, units[:0], values).evaluate(y_index)
    pred, loss = initial_state(net, X, units, values).evaluate(y_index)
    return ablation_metrics(y_index, base_pred, base_loss, pred[None], loss[None], len(net.classes))
