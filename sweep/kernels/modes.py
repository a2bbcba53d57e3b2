"""Neuron ablation modes: one record per mode, one registry (:data:`NEURON_MODES`).

Every mode replaces a hidden unit's output by a constant computed on the *unablated* network
(:func:`unit_replacements`), and says how the naive oracle edits the weights to do the same
(:func:`ablated_units_network`), whether rows that are near-ties before the ablation must be
recomputed for every ablation, and whether it needs reference inputs. Pure numerics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sweep.kernels.network import Network, hidden_activations


@dataclass(frozen=True)
class NeuronMode:
    """How one mode ablates a hidden unit.

    Attributes
    ----------
    description : str — one line, shown in help and docs
    values : callable ``(net, reference or None) -> list of (width_l,) arrays`` — the value
        each unit outputs once ablated, per hidden layer
    zero_incoming : bool — the weight edit: True zeroes the unit's incoming weights and bias
        (output ``act(0)``); False folds ``value * outgoing`` into the next layer's bias and
        zeroes the outgoing weights
    recheck_base_ties : bool — the edited weights round every row differently (the value
        moves into the next bias), so rows that are near-ties before the ablation are
        recomputed for every ablation
    needs_reference : bool — ``values`` needs reference inputs (a forward pass over them)
    """

    description: str
    values: Callable[[Network, np.ndarray | None], list[np.ndarray]]
    zero_incoming: bool
    recheck_base_ties: bool = False
    needs_reference: bool = False


def _constant(value: Callable[[Network], float]) -> Callable[[Network, Any], list[np.ndarray]]:
    def values(net: Network, reference: np.ndarray | None) -> list[np.ndarray]:
        return [np.full(width, value(net), dtype=net.dtype) for width in net.hidden_sizes]

    return values


def _means(net: Network, reference: np.ndarray | None) -> list[np.ndarray]:
    if reference is None:
        raise ValueError("mode 'mean' needs the reference inputs to average over")
    return [h.mean(axis=0) for h in hidden_activations(net, np.asarray(reference))]


NEURON_MODES: dict[str, NeuronMode] = {
    "zero": NeuronMode(
        "incoming weights and bias set to 0: the output is act(0) (the paper's removal)",
        _constant(lambda net: net.act.at_zero), zero_incoming=True,
    ),
    "remove": NeuronMode(
        "output forced to 0 (outgoing weights zeroed)", _constant(lambda net: 0.0), zero_incoming=False,
    ),
    "mean": NeuronMode(
        "output replaced by its mean over the reference split (folded into the next bias)",
        _means, zero_incoming=False, recheck_base_ties=True, needs_reference=True,
    ),
}
"""Neuron modes by name; iterating gives the names."""


def neuron_mode(name: str) -> NeuronMode:
    """The record of mode ``name``.

    Raises
    ------
    ValueError
        For an unknown mode, naming the known ones.
    """
    if name not in NEURON_MODES:
        raise ValueError(f"unknown neuron mode {name!r}; expected one of {tuple(NEURON_MODES)}")
    return NEURON_MODES[name]


def unit_replacements(net: Network, mode: str, reference: np.ndarray | None = None) -> list[np.ndarray]:
    """The value every hidden unit outputs once ablated in ``mode``, one array per layer.

    ``mean`` needs one forward pass over ``reference``; compute this once per model and
    reuse it (``replacement=`` of :func:`sweep.kernels.neurons.ablate_neurons`).

    Parameters
    ----------
    net : Network — numpy weights
    mode : str — a key of :data:`NEURON_MODES`
    reference : ndarray of shape (n_ref, n_features), optional — inputs whose mean
        activation ``mean`` mode uses (required for it)

    Returns
    -------
    list of ndarray
        Element ``l`` has shape ``(hidden_sizes[l],)``.
    """
    return neuron_mode(mode).values(net, reference)


def replacement_values(
    net: Network, layer: int, mode: str, reference: np.ndarray | None = None
) -> np.ndarray:
    """The value each unit of ``layer`` outputs once ablated in ``mode``, shape
    ``(hidden_sizes[layer],)`` (see :func:`unit_replacements`)."""
    return unit_replacements(net, mode, reference)[layer]


def ablated_units_network(
    net: Network, units: np.ndarray, mode: str, values: list[np.ndarray]
) -> Network:
    """A copy of ``net`` (numpy) with hidden units ablated in its weights, as the naive oracle
    does it: THE weight edit (the kernels' running pass, the oracle and ``analysis`` use it).

    ``zero`` (:attr:`NeuronMode.zero_incoming`) zeroes each unit's incoming weights and bias
    (output ``act(0)``); the other modes fold ``value * outgoing`` into the next layer's bias
    and zero the outgoing weights. The edits of different units touch different entries
    except the folds into one bias, applied in the order of ``units``.

    Parameters
    ----------
    net : Network — numpy weights
    units : array of shape (k, 2), int — ``(layer, unit)`` pairs
    mode : str — a key of :data:`NEURON_MODES`
    values : list of ndarray — each hidden layer's replacement values, shape ``(width_l,)``
        (:func:`unit_replacements`; unused by ``zero``)
    """
    units = np.asarray(units, dtype=np.int64).reshape(-1, 2)
    return _edited(net, units, mode, [float(values[layer][unit]) for layer, unit in units])


def _edited(net: Network, units: np.ndarray, mode: str, values: list[float]) -> Network:
    """``net`` copied with ``units`` (k, 2) ablated, unit ``i`` outputting ``values[i]``."""
    zero_incoming = neuron_mode(mode).zero_incoming
    coefs = [w.copy() for w in net.coefs]
    intercepts = [b.copy() for b in net.intercepts]
    for (layer, unit), value in zip(units, values):
        if zero_incoming:
            coefs[layer][:, unit] = 0.0
            intercepts[layer][unit] = 0.0
        else:
            intercepts[layer + 1] += value * coefs[layer + 1][unit, :]
            coefs[layer + 1][unit, :] = 0.0
    return net.with_weights(tuple(coefs), tuple(intercepts))


def ablated_neuron_network(net: Network, layer: int, unit: int, mode: str, value: float) -> Network:
    """A copy of ``net`` (numpy) with one hidden unit ablated in its weights
    (:func:`ablated_units_network` of that unit, outputting ``value`` once ablated)."""
    return _edited(net, np.array([[layer, unit]]), mode, [value])
