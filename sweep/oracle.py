"""The naive reference ("oracle"): copy the weights, zero them, call sklearn's ``predict``.

Slow by design; tests check the fast kernels against it and ``bench/`` times it.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from sweep.ablate import replacement_values
from sweep.network import Network


def ablated_classifier(
    clf: Any, layer: int, unit: int, mode: str = "zero", reference: np.ndarray | None = None
) -> Any:
    """A deep copy of a fitted ``MLPClassifier`` with one hidden unit ablated in its weights.

    ``zero`` zeroes the unit's incoming weights and bias; ``remove`` zeroes its outgoing
    weights; ``mean`` zeroes its outgoing weights and adds ``mean * outgoing`` to the next
    layer's bias.
    """
    ablated = copy.deepcopy(clf)
    coefs, intercepts = ablated.coefs_, ablated.intercepts_
    if mode == "zero":
        coefs[layer][:, unit] = 0.0
        intercepts[layer][unit] = 0.0
        return ablated
    value = replacement_values(Network.from_classifier(clf), layer, mode, reference)[unit]
    intercepts[layer + 1] += value * coefs[layer + 1][unit, :]
    coefs[layer + 1][unit, :] = 0.0
    return ablated


def naive_neuron_predictions(
    clf: Any, X: np.ndarray, layer: int, units: np.ndarray, mode: str = "zero",
    reference: np.ndarray | None = None,
) -> np.ndarray:
    """sklearn's predictions with each unit ablated, shape ``(n_units, n_samples)`` of labels."""
    return np.stack(
        [ablated_classifier(clf, layer, int(u), mode, reference).predict(X) for u in units]
    )
