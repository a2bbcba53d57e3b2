"""The naive reference ("oracle"): copy the weights, zero them, call sklearn's ``predict``.

Slow by design; tests check the fast kernels against it and ``bench/`` times it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from sweep.kernels.metrics import ablation_metrics, sample_log_loss
from sweep.kernels.modes import ablated_units_network, drawn_values, neuron_mode, unit_replacements
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
    clf: Any, units: list[tuple[int, int]], mode: str = "zero", reference: np.ndarray | None = None,
    values: list[np.ndarray] | None = None, row: int | None = None,
) -> Any:
    """A deep copy of a fitted ``MLPClassifier`` with hidden units ``(layer, unit)`` ablated
    in its weights, in the order given, each as :func:`ablated_classifier` does it (``mean``
    values computed on the unablated ``clf``; ``values``: given ones, and ``row``: the image
    whose values a per-image mode uses)."""
    net = Network.from_classifier(clf)
    values = unit_replacements(net, mode, reference) if values is None else values
    edited = ablated_units_network(net, np.asarray(units, dtype=np.int64), mode, values, row)
    ablated = copy.deepcopy(clf)
    ablated.coefs_, ablated.intercepts_ = list(edited.coefs), list(edited.intercepts)
    return ablated


def per_image_outputs(
    clf: Any, X: np.ndarray, units: list[tuple[int, int]], mode: str, values: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """sklearn's ``predict`` (labels, shape ``(n,)``) and ``predict_proba`` (``(n, C)``) of
    ``clf`` with ``units`` ablated, image by image: each image's row comes from a copy whose
    weights are edited with that image's values (``values``: :func:`drawn_values` of a
    per-image mode, ``(n, width)`` per layer; images sharing their values share a copy),
    predicting on all of ``X`` as ``predict`` does."""
    units = [(int(layer), int(unit)) for layer, unit in units]
    keys = np.stack([values[layer][:, unit] for layer, unit in units], axis=1)
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.reshape(-1)
    pred = np.empty(len(X), dtype=clf.classes_.dtype)
    proba = np.empty((len(X), len(clf.classes_)))
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        model = units_ablated_classifier(clf, units, mode, values=values, row=int(rows[0]))
        pred[rows], proba[rows] = model.predict(X)[rows], model.predict_proba(X)[rows]
    return pred, proba


def synapse_ablated_classifier(clf: Any, layer: int, source: int, target: int) -> Any:
    """A deep copy of a fitted ``MLPClassifier`` with ``coefs_[layer][source, target] = 0``."""
    ablated = copy.deepcopy(clf)
    ablated.coefs_[layer][source, target] = 0.0
    return ablated


def _ablated(
    clf: Any, X: np.ndarray, units: list[tuple[int, int]], mode: str, reference: np.ndarray | None,
    seed: int, draw: int,
) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """sklearn's ``(predict, predict_proba)`` on ``X`` of ``clf`` with ``units`` ablated, when
    called: one edited copy, or per image for a per-image mode (draw ``draw`` of ``seed``)."""
    if not neuron_mode(mode).per_image:
        def outputs() -> tuple[np.ndarray, np.ndarray]:
            model = units_ablated_classifier(clf, units, mode, reference)
            return model.predict(X), model.predict_proba(X)
        return outputs
    values = drawn_values(unit_replacements(Network.from_classifier(clf), mode, reference), mode, len(X), seed, draw)
    return lambda: per_image_outputs(clf, X, units, mode, values)


def naive_neuron_predictions(
    clf: Any, X: np.ndarray, layer: int, units: np.ndarray, mode: str = "zero",
    reference: np.ndarray | None = None, seed: int = 0, draw: int = 0,
) -> np.ndarray:
    """sklearn's predictions with each unit ablated, shape ``(n_units, n_samples)`` of labels
    (a per-image mode: draw ``draw`` of ``seed``, :func:`per_image_outputs`)."""
    return np.stack([_ablated(clf, X, [(layer, int(u))], mode, reference, seed, draw)()[0] for u in units])


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
    """Metric columns from sklearn's ``predict`` / ``predict_proba`` of each ablated copy
    (``ablated``: callables returning the copy, or a ``(predict, predict_proba)`` pair)."""
    net = Network.from_classifier(clf)
    y_index = class_index(net, y)
    preds, losses = [], []
    for make in ablated:
        made = make()
        pred, proba = made if isinstance(made, tuple) else (made.predict(X), made.predict_proba(X))
        preds.append(class_index(net, pred))
        losses.append(sample_log_loss(proba, y_index))
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
    reference: np.ndarray | None = None, seed: int = 0, draw: int = 0,
) -> dict[str, np.ndarray]:
    """The metric columns of :func:`sweep.kernels.neurons.ablate_neurons`, computed the naive
    way (a per-image mode: draw ``draw`` of ``seed``)."""
    return _metrics(clf, X, y, [_ablated(clf, X, [(layer, int(u))], mode, reference, seed, draw) for u in units])


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
    reference: np.ndarray | None = None, seed: int = 0, draw: int = 0,
) -> dict[str, np.ndarray]:
    """The metric columns of :func:`sweep.kernels.pairs.ablate_pairs`, computed the naive way
    (a per-image mode: draw ``draw`` of ``seed``, one donor image for both units).

    Parameters
    ----------
    pairs : ndarray of shape (k, 4), int — ``layer_a, unit_a, layer_b, unit_b`` (a edited first)
    """
    units = [[(int(p[0]), int(p[1])), (int(p[2]), int(p[3]))] for p in pairs]
    return _metrics(clf, X, y, [_ablated(clf, X, u, mode, reference, seed, draw) for u in units])
