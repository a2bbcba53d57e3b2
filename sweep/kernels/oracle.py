"""The naive reference ("oracle"): copy the weights, zero them, call sklearn's ``predict``.

Slow by design; tests check the fast kernels against it and ``bench/`` times it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from sweep.kernels.metrics import ablation_metrics, sample_log_loss
from sweep.kernels.modes import ablated_units_network, unit_replacements
from sweep.kernels.network import Network, class_index


def ablated_classifier(
    clf: Any, layer: int, unit: int, mode: str = "zero", reference: np.ndarray | None = None
) -> Any:
    """A deep copy of a fitted ``MLPClassifier`` with one hidden unit ablated in its weights.

    ``zero`` zeroes the unit's incoming weights and bias; ``remove`` zeroes its outgoing
    weights; ``mean`` zeroes its outgoing weights and adds ``mean * outgoing`` to the next
    layer's bias.
    """
    return units_ablated_classifier(clf, [(layer, unit)], mode, reference)


def units_ablated_classifier(
    clf: Any, units: list[tuple[int, int]], mode: str = "zero", reference: np.ndarray | None = None
) -> Any:
    """A deep copy of a fitted ``MLPClassifier`` with hidden units ``(layer, unit)`` ablated
    in its weights, in the order given, each as :func:`ablated_classifier` does it (``mean``
    values computed on the unablated ``clf``)."""
    net = Network.from_classifier(clf)
    values = unit_replacements(net, mode, reference)
    edited = ablated_units_network(net, np.asarray(units, dtype=np.int64), mode, values)
    ablated = copy.deepcopy(clf)
    ablated.coefs_, ablated.intercepts_ = list(edited.coefs), list(edited.intercepts)
    return ablated


def synapse_ablated_classifier(clf: Any, layer: int, source: int, target: int) -> Any:
    """A deep copy of a fitted ``MLPClassifier`` with ``coefs_[layer][source, target] = 0``."""
    ablated = copy.deepcopy(clf)
    ablated.coefs_[layer][source, target] = 0.0
    return ablated


def naive_neuron_predictions(
    clf: Any, X: np.ndarray, layer: int, units: np.ndarray, mode: str = "zero",
    reference: np.ndarray | None = None,
) -> np.ndarray:
    """sklearn's predictions with each unit ablated, shape ``(n_units, n_samples)`` of labels."""
    return np.stack(
        [ablated_classifier(clf, layer, int(u), mode, reference).predict(X) for u in units]
    )


def naive_synapse_predictions(
    clf: Any, X: np.ndarray, layer: int, sources: np.ndarray, targets: np.ndarray
) -> np.ndarray:
    """sklearn's predictions with each synapse zeroed, shape ``(n_synapses, n_samples)``."""
    return np.stack(
        [
            synapse_ablated_classifier(clf, layer, int(s), int(t)).predict(X)
            for s, t in zip(sources, targets)
        ]
    )


def _metrics(clf: Any, X: np.ndarray, y: np.ndarray, ablated: list[Callable[[], Any]]) -> dict:
    """Metric columns from sklearn's ``predict`` / ``predict_proba`` of each ablated copy."""
    net = Network.from_classifier(clf)
    y_index = class_index(net, y)
    preds, losses = [], []
    for make in ablated:
        model = make()
        preds.append(class_index(net, model.predict(X)))
        losses.append(sample_log_loss(model.predict_proba(X), y_index))
    n = len(y_index)
    return ablation_metrics(
        y_index,
        class_index(net, clf.predict(X)),
        sample_log_loss(clf.predict_proba(X), y_index),
        np.array(preds, dtype=np.int64).reshape(len(ablated), n),
        np.array(losses).reshape(len(ablated), n),
        len(net.classes),
    )


def naive_neuron_metrics(
    clf: Any, X: np.ndarray, y: np.ndarray, layer: int, units: np.ndarray, mode: str = "zero",
    reference: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The metric columns of :func:`sweep.kernels.neurons.ablate_neurons`, computed the naive way."""
    makers = [
        (lambda u=int(u): ablated_classifier(clf, layer, u, mode, reference)) for u in units
    ]
    return _metrics(clf, X, y, makers)


def naive_synapse_metrics(
    clf: Any, X: np.ndarray, y: np.ndarray, layer: int, sources: np.ndarray, targets: np.ndarray
) -> dict[str, np.ndarray]:
    """The metric columns of :func:`sweep.kernels.synapses.ablate_synapses`, computed the naive way."""
    makers = [
        (lambda s=int(s), t=int(t): synapse_ablated_classifier(clf, layer, s, t))
        for s, t in zip(sources, targets)
    ]
    return _metrics(clf, X, y, makers)


def naive_pair_metrics(
    clf: Any, X: np.ndarray, y: np.ndarray, pairs: np.ndarray, mode: str = "zero",
    reference: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The metric columns of :func:`sweep.kernels.pairs.ablate_pairs`, computed the naive way.

    Parameters
    ----------
    pairs : ndarray of shape (k, 4), int — ``layer_a, unit_a, layer_b, unit_b`` (a edited first)
    """
    makers = [
        (lambda p=tuple(int(v) for v in p): units_ablated_classifier(clf, [p[:2], p[2:]], mode, reference))
        for p in pairs
    ]
    return _metrics(clf, X, y, makers)
