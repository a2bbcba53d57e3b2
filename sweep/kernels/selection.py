"""Which synapses a sweep ablates: every weight, or chosen neurons' synapses.

:func:`select_synapses` turns the configured weight matrices and neurons into
``(layer, sources, targets)`` index arrays in a deterministic order. Pure numerics.
"""

from __future__ import annotations

import numpy as np

from sweep.kernels.network import Network

SYNAPSE_DIRECTIONS: tuple[str, ...] = ("incoming", "outgoing", "both")
"""Which synapses of chosen neurons :func:`select_synapses` returns."""


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
