"""Neuron ablation modes: one record per mode, one registry (:data:`NEURON_MODES`).

Every mode replaces a hidden unit's output by values computed on the *unablated* network
(:func:`unit_replacements`): one constant per unit, or (a :attr:`NeuronMode.per_image` mode)
one value per measured image, drawn from a pool of the unit's outputs on the reference split
with a recorded seed (:func:`drawn_values`). Each record says how the naive oracle edits the
weights to do the same (:func:`ablated_units_network`; per image: the weights edited with
that image's value, :func:`image_value`), whether rows that are near-ties before the ablation
must be recomputed for every ablation, and whether it needs reference inputs. Pure numerics.
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
    values : callable ``(net, reference or None) -> list of arrays`` — per hidden layer, the
        value each unit outputs once ablated, shape ``(width_l,)``; for a ``per_image`` mode
        the pool each image's value is drawn from, shape ``(n_pool, width_l)``
    zero_incoming : bool — the weight edit: True zeroes the unit's incoming weights and bias
        (output ``act(0)``); False folds ``value * outgoing`` into the next layer's bias and
        zeroes the outgoing weights
    recheck_base_ties : bool — the edited weights round every row differently (the value
        moves into the next bias), so rows that are near-ties before the ablation are
        recomputed for every ablation
    needs_reference : bool — ``values`` needs reference inputs (a forward pass over them)
    per_image : bool — each measured image gets its own value: row ``resample_rows(seed,
        draw, n, n_pool)[i]`` of the pool for image ``i`` (:func:`drawn_values`); the kernels
        then take an ``(n_images, width)`` replacement matrix in place of a vector, and a row
        is re-checked with the weights edited with its own value
    """

    description: str
    values: Callable[[Network, np.ndarray | None], list[np.ndarray]]
    zero_incoming: bool
    recheck_base_ties: bool = False
    needs_reference: bool = False
    per_image: bool = False


def _constant(value: Callable[[Network], float]) -> Callable[[Network, Any], list[np.ndarray]]:
    def values(net: Network, reference: np.ndarray | None) -> list[np.ndarray]:
        return [np.full(width, value(net), dtype=net.dtype) for width in net.hidden_sizes]

    return values


def _reference_activations(mode: str) -> Callable[[Network, np.ndarray | None], list[np.ndarray]]:
    """``values`` of a mode read from the hidden activations on the reference inputs."""

    def activations(net: Network, reference: np.ndarray | None) -> list[np.ndarray]:
        if reference is None:
            raise ValueError(f"mode {mode!r} needs the reference inputs (the reference split)")
        return hidden_activations(net, np.asarray(reference))

    return activations


def _means(net: Network, reference: np.ndarray | None) -> list[np.ndarray]:
    return [h.mean(axis=0) for h in _reference_activations("mean")(net, reference)]


POINT_MASS = 0.5
"""``peak``: an exact value holding at least this share of the fullest bin is the mode."""


def peak_value(outputs: np.ndarray) -> float:
    """The mode of one unit's outputs: the centre of the fullest bin of a histogram with the
    Freedman-Diaconis bin rule (width ``2 IQR / n^(1/3)``, as ``bins="fd"`` of numpy, capped at
    ``n`` bins; one bin when the IQR is 0; the first fullest bin on ties), unless one exact
    value holds at least :data:`POINT_MASS` of that bin (a ReLU unit's 0, a constant unit)
    — then that value (the smallest on ties).

    Parameters
    ----------
    outputs : ndarray of shape (n_ref,) — the unit's outputs on the reference split

    Examples
    --------
    >>> peak_value(np.array([0.0, 0.0, 0.0, 0.3, 1.2]))  # mostly silent ReLU unit
    0.0
    >>> peak_value(np.full(4, 0.5))  # constant
    0.5
    """
    low, high = np.percentile(outputs, [25, 75])
    width = 2.0 * (high - low) / len(outputs) ** (1 / 3)
    span = float(outputs.max() - outputs.min())
    with np.errstate(over="ignore"):  # a subnormal width overflows the ratio: n bins, as capped
        ratio = span / width if width > 0 else 1.0
    bins = int(min(np.ceil(ratio), len(outputs))) if np.isfinite(ratio) else len(outputs)
    edges = np.histogram_bin_edges(outputs, bins=max(bins, 1))
    which = np.clip(np.searchsorted(edges, outputs, side="right") - 1, 0, len(edges) - 2)
    fullest = int(np.argmax(np.bincount(which, minlength=len(edges) - 1)))
    values, counts = np.unique(outputs[which == fullest], return_counts=True)
    if counts.max() >= POINT_MASS * counts.sum():
        return float(values[np.argmax(counts)])
    return float((edges[fullest] + edges[fullest + 1]) / 2)


def _peaks(net: Network, reference: np.ndarray | None) -> list[np.ndarray]:
    return [np.array([peak_value(h[:, j]) for j in range(h.shape[1])], dtype=h.dtype)
            for h in _reference_activations("peak")(net, reference)]


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
    "resample": NeuronMode(
        "output replaced, image by image, by the unit's output on a reference image drawn at "
        "random (seeded; ablation.resample_draws draws averaged, their sd kept)",
        _reference_activations("resample"), zero_incoming=False, recheck_base_ties=True,
        needs_reference=True, per_image=True,
    ),
    "peak": NeuronMode(
        "output held at the mode of its distribution on the reference split (Freedman-Diaconis "
        "histogram, fullest bin's centre; an exact value holding half that bin, e.g. ReLU's 0, wins)",
        _peaks, zero_incoming=False, recheck_base_ties=True, needs_reference=True,
    ),
}
"""Neuron modes by name; iterating gives the names."""


def constant_modes() -> tuple[str, ...]:
    """The modes with one value per unit (not :attr:`NeuronMode.per_image`)."""
    return tuple(name for name, mode in NEURON_MODES.items() if not mode.per_image)


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


def resample_rows(seed: int, draw: int, n_images: int, n_pool: int) -> np.ndarray:
    """The pool row each measured image takes in draw ``draw`` of a per-image mode: uniform
    with replacement, from ``numpy.random.default_rng([seed, draw])``, shape ``(n_images,)``
    int64 (the same rows for every unit and layer of the draw: one donor image per image)."""
    return np.random.default_rng([seed, draw]).integers(0, n_pool, size=n_images, dtype=np.int64)


def drawn_values(
    values: list[np.ndarray], mode: str, n_images: int, seed: int = 0, draw: int = 0
) -> list[np.ndarray]:
    """The replacement values of ``n_images`` measured images: for a per-image mode each
    layer's ``(n_images, width)`` matrix, rows :func:`resample_rows` of its pool; a constant
    mode's ``(width,)`` vectors unchanged.

    Parameters
    ----------
    values : list of ndarray — :func:`unit_replacements` of ``mode``
    mode : str — a key of :data:`NEURON_MODES`
    n_images : int — rows of the split measured
    seed, draw : int — the recorded seed and the draw's number
    """
    if not neuron_mode(mode).per_image:
        return values
    rows = resample_rows(seed, draw, n_images, len(values[0]))
    return [pool[rows] for pool in values]


def image_value(values: np.ndarray, unit: int, row: int | None) -> float:
    """Unit ``unit``'s replacement value for image ``row`` from one layer's values: a
    ``(width,)`` vector (every image alike; ``row`` unused) or a ``(n_images, width)``
    matrix of a per-image mode."""
    return float(values[unit] if values.ndim == 1 else values[row, unit])


def replacement_values(
    net: Network, layer: int, mode: str, reference: np.ndarray | None = None
) -> np.ndarray:
    """The value each unit of ``layer`` outputs once ablated in ``mode``, shape
    ``(hidden_sizes[layer],)`` (see :func:`unit_replacements`)."""
    return unit_replacements(net, mode, reference)[layer]


def ablated_units_network(
    net: Network, units: np.ndarray, mode: str, values: list[np.ndarray], row: int | None = None
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
        (:func:`unit_replacements`; unused by ``zero``), or ``(n_images, width_l)`` of a
        per-image mode (:func:`drawn_values`)
    row : int, optional — the image whose values a per-image mode's edit uses
    """
    units = np.asarray(units, dtype=np.int64).reshape(-1, 2)
    return _edited(net, units, neuron_mode(mode).zero_incoming,
                   [image_value(values[layer], unit, row) for layer, unit in units])


def _edited(net: Network, units: np.ndarray, zero_incoming: bool, values: list[float]) -> Network:
    """``net`` copied with ``units`` (k, 2) ablated, unit ``i`` outputting ``values[i]``
    (:attr:`NeuronMode.zero_incoming`: zero its incoming weights and bias; else fold)."""
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


def outgoing_zeroed(net: Network, units: np.ndarray) -> Network:
    """A copy of ``net`` (numpy) with the outgoing weights of ``units`` (k, 2) zeroed and
    nothing folded: the part of a per-image mode's edit all images share (each image's
    ``value * outgoing`` is added to the next layer's output row by row)."""
    return _edited(net, np.asarray(units, dtype=np.int64).reshape(-1, 2), False, [0.0] * len(units))


def ablated_neuron_network(net: Network, layer: int, unit: int, mode: str, value: float) -> Network:
    """A copy of ``net`` (numpy) with one hidden unit ablated in its weights
    (:func:`ablated_units_network` of that unit, outputting ``value`` once ablated)."""
    return _edited(net, np.array([[layer, unit]]), neuron_mode(mode).zero_incoming, [value])
