"""Joint ablation of a set of hidden units.

Pure numerics on the array API (numpy or torch). A unit is ``(layer, unit)`` over the hidden
layers. Every neuron mode of :data:`sweep.kernels.modes.NEURON_MODES` replaces the unit's
output by a constant computed on the *unablated* network, so ablating a set of units equals
the naive oracle that edits the weights of all of them at once; the running pass
(:class:`sweep.kernels.running.PrunedPass`) removes them as one batch, near-tie rows settled
as sklearn predicts. A torch network's units (``(site, unit)``) are held by
:class:`sweep.kernels.torchnet.TorchUnitSet`, equal to its hooked oracle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sweep.kernels.backend import network_to_numpy, to_numpy
from sweep.kernels.metrics import ablation_metrics
from sweep.kernels.modes import drawn_values, unit_replacements
from sweep.kernels.network import Network, class_index
from sweep.kernels.running import PrunedPass
from sweep.kernels.torchnet import TorchNetwork, TorchUnitSet, mode_values


def as_units(units: Sequence[tuple[int, int]] | np.ndarray, net: Network | TorchNetwork) -> np.ndarray:
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


def unit_values(net: Network | TorchNetwork, mode: str, reference: Any = None) -> list[Any]:
    """The value each hidden unit is held at once ablated in ``mode``, computed on the unablated
    network: an MLP's :func:`~sweep.kernels.modes.unit_replacements` (per layer an array of
    shape ``(width,)``), a torch network's :func:`~sweep.kernels.torchnet.mode_values` (per
    site ``(width, *unit_shape)``). ``reference`` (n_ref, n_features): the inputs ``mean``
    averages over."""
    if isinstance(net, TorchNetwork):
        return mode_values(net, mode, reference)
    return unit_replacements(network_to_numpy(net), mode, None if reference is None else to_numpy(reference))


def running_pass(net: Network | TorchNetwork, X: Any, y: np.ndarray, values: list[Any],
                 mode: str) -> PrunedPass | TorchUnitSet:
    """The unablated running state of ``net`` on ``(X, y)`` that units are removed into
    (``remove_units``, ``outcome``, ``copy``): :class:`~sweep.kernels.running.PrunedPass` for
    an MLP, :class:`~sweep.kernels.torchnet.TorchUnitSet` for a torch network; ``values``
    from :func:`unit_values` of ``mode`` (a per-image mode's pools: each row takes draw 0 of
    seed 0, :func:`~sweep.kernels.modes.drawn_values`)."""
    drawn = drawn_values(values, mode, len(y))
    if isinstance(net, TorchNetwork):
        return TorchUnitSet.start(net, X, y, drawn)
    return PrunedPass.start(net, X, y, drawn, mode)


def joint_outcomes(
    net: Network | TorchNetwork,
    X: Any,
    y: np.ndarray,
    units: Sequence[tuple[int, int]] | np.ndarray,
    mode: str = "zero",
    reference: np.ndarray | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Predicted class index and log-loss per row of ``X``, before and after ablating a set
    of hidden units all at once: ``((base_pred, base_loss), (pred, loss))``, each of shape
    ``(n_samples,)``. Parameters as for :func:`ablate_joint`."""
    units = as_units(units, net)
    running = running_pass(net, X, y, unit_values(net, mode, reference), mode)
    before = running.outcome()
    running.remove_units(units)
    return before, running.outcome()


def ablate_joint(
    net: Network | TorchNetwork,
    X: Any,
    y: np.ndarray,
    units: Sequence[tuple[int, int]] | np.ndarray,
    mode: str = "zero",
    reference: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Ablate a set of hidden units (any layers) all at once and measure on ``(X, y)``.

    Parameters
    ----------
    net : Network — numpy or torch weights, same backend as ``X``; or a
        :class:`~sweep.kernels.torchnet.TorchNetwork` (units are ``(site, unit)``)
    X : array of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,) — class labels
    units : sequence of (layer, unit) or ndarray of shape (k, 2), int — may be empty
    mode : str — a key of :data:`sweep.kernels.modes.NEURON_MODES`
    reference : ndarray of shape (n_ref, n_features), optional — for a mode that needs one
        (a per-image mode: draw 0 of seed 0, :func:`~sweep.kernels.modes.drawn_values`)

    Returns
    -------
    dict of str to ndarray
        The :data:`sweep.kernels.metrics.METRIC_COLUMNS` (accuracy_base, accuracy, effect,
        loss_base, loss, broken, fixed, ...) for this one ablation, each an array of
        length 1 (``class_effect`` of shape (1, n_classes)).
    """
    (base_pred, base_loss), (pred, loss) = joint_outcomes(net, X, y, units, mode, reference)
    y_index = class_index(net, y)
    return ablation_metrics(y_index, base_pred, base_loss, pred[None], loss[None], len(net.classes))
