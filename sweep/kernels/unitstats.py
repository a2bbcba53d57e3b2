"""Per-unit statistics of a hidden layer's outputs: activation summaries, Morcos et al.'s
class-selectivity index, and information measures of the quantized output (Amjad et al.).

Pure numerics: no I/O. Every information measure is in bits (log2), with ``0 * log 0 = 0``,
and is computed from count tables so that it can be checked against hand-computed tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sweep.kernels.backend import to_numpy
from sweep.kernels.network import Network, class_index, hidden_activations
from sweep.kernels.torchnet import TorchNetwork, mode_values, site_activations

# --------------------------------------------------------------------------- information


def _plogp_sum(p: np.ndarray) -> np.ndarray:
    """``-sum p log2 p`` over the last axis with ``0 log 0 = 0``."""
    safe = np.where(p > 0, p, 1.0)
    return -(p * np.log2(safe)).sum(axis=-1)


def _normalize(counts: np.ndarray) -> np.ndarray:
    """Counts over the last axis as probabilities; an all-zero row stays zero."""
    total = counts.sum(axis=-1, keepdims=True)
    return counts / np.where(total > 0, total, 1.0)


def entropy(counts: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits of the distribution given by counts.

    Parameters
    ----------
    counts : ndarray of shape (..., n_levels), non-negative

    Returns
    -------
    ndarray of shape (...); 0 for a constant (or empty) variable.
    """
    return _plogp_sum(_normalize(np.asarray(counts, dtype=np.float64)))


def mutual_information(joint: np.ndarray) -> np.ndarray:
    """``I(T;Y) = H(T) - H(T|Y)`` in bits from a joint count table.

    Parameters
    ----------
    joint : ndarray of shape (..., n_levels, n_classes)
        ``joint[..., t, y]`` = number of rows with quantized output ``t`` and class ``y``.

    Returns
    -------
    ndarray of shape (...), >= 0 up to rounding (clipped at 0).
    """
    joint = np.asarray(joint, dtype=np.float64)
    class_counts = joint.sum(axis=-2)  # (..., n_classes)
    p_y = _normalize(class_counts)
    h_t_given_y = (p_y * entropy(np.swapaxes(joint, -1, -2))).sum(axis=-1)
    return np.maximum(entropy(joint.sum(axis=-1)) - h_t_given_y, 0.0)


def kl_selectivity(joint: np.ndarray) -> np.ndarray:
    """``max_y KL(P(T|Y=y) || P(T))`` in bits from a joint count table.

    Classes without rows are skipped (their conditional is undefined).

    Parameters
    ----------
    joint : ndarray of shape (..., n_levels, n_classes)

    Returns
    -------
    ndarray of shape (...); 0 for an output independent of the class or constant.
    """
    joint = np.asarray(joint, dtype=np.float64)
    p_t = _normalize(joint.sum(axis=-1))[..., :, None]  # (..., n_levels, 1)
    p_t_given_y = _normalize(np.swapaxes(joint, -1, -2))  # (..., n_classes, n_levels)
    p_t_given_y = np.swapaxes(p_t_given_y, -1, -2)  # (..., n_levels, n_classes)
    ratio = np.where(p_t_given_y > 0, p_t_given_y / np.where(p_t > 0, p_t, 1.0), 1.0)
    kl = (p_t_given_y * np.log2(ratio)).sum(axis=-2)  # (..., n_classes)
    return np.maximum(kl.max(axis=-1), 0.0)


def class_selectivity(class_means: np.ndarray) -> np.ndarray:
    """Morcos et al.'s class-selectivity index from per-class mean activations.

    ``(mu_max - mu_rest) / (mu_max + mu_rest)`` with ``mu_rest`` the mean of the other
    classes' means; 0 where the denominator is 0 (e.g. a unit that never fires). Meant for
    non-negative activations (ReLU, logistic), where it lies in [0, 1].

    Parameters
    ----------
    class_means : ndarray of shape (n_units, n_classes)

    Returns
    -------
    ndarray of shape (n_units,)
    """
    n_classes = class_means.shape[-1]
    mu_max = class_means.max(axis=-1)
    mu_rest = (class_means.sum(axis=-1) - mu_max) / max(n_classes - 1, 1)
    denominator = mu_max + mu_rest
    safe = np.where(denominator != 0, denominator, 1.0)
    return np.where(denominator != 0, (mu_max - mu_rest) / safe, 0.0)


# --------------------------------------------------------------------------- quantizers


def _binary(a: np.ndarray, threshold: float, n_bins: int) -> np.ndarray:
    return (a > threshold).astype(np.int64)


def _quantile(a: np.ndarray, threshold: float, n_bins: int) -> np.ndarray:
    """Equal-frequency bins per column; tied values share a bin (some bins may be empty)."""
    probs = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    edges = np.quantile(a, probs, axis=0)  # (n_bins - 1, n_units)
    return (a[None, :, :] > edges[:, None, :]).sum(axis=0).astype(np.int64)


def _uniform(a: np.ndarray, threshold: float, n_bins: int) -> np.ndarray:
    """Equal-width bins between each column's minimum and maximum."""
    low, high = a.min(axis=0), a.max(axis=0)
    width = np.where(high > low, (high - low) / n_bins, 1.0)
    return np.clip(((a - low) / width).astype(np.int64), 0, n_bins - 1)


QUANTIZERS: dict[str, Callable[[np.ndarray, float, int], np.ndarray]] = {
    "binary": _binary,
    "quantile": _quantile,
    "uniform": _uniform,
}
"""Quantizers ``f(a (n_samples, n_units), threshold, n_bins) -> codes (n_samples, n_units)``
with integer codes in ``[0, n_levels)``: ``binary`` (1 iff output > threshold, Amjad et al.),
``quantile`` (``n_bins`` equal-frequency bins), ``uniform`` (``n_bins`` equal-width bins)."""


def joint_counts(codes: np.ndarray, y_index: np.ndarray, n_classes: int) -> np.ndarray:
    """Joint count tables of quantized outputs and classes, one per unit.

    Parameters
    ----------
    codes : ndarray of shape (n_samples, n_units), int in [0, n_levels)
    y_index : ndarray of shape (n_samples,), int in [0, n_classes)
    n_classes : int

    Returns
    -------
    ndarray of shape (n_units, n_levels, n_classes), float64
    """
    n_units = codes.shape[1]
    n_levels = int(codes.max()) + 1 if codes.size else 1
    flat = (np.arange(n_units)[None, :] * n_levels + codes) * n_classes + y_index[:, None]
    counts = np.bincount(flat.ravel(), minlength=n_units * n_levels * n_classes)
    return counts.reshape(n_units, n_levels, n_classes).astype(np.float64)


# --------------------------------------------------------------------------- per unit


@dataclass(frozen=True)
class LayerSummary:
    """What every unit statistic of one layer is computed from.

    Attributes
    ----------
    a : ndarray of shape (n_samples, n_units) — the layer's outputs, float64
    threshold : float — firing threshold (``act(0)``)
    class_means : ndarray of shape (n_units, n_present_classes) — mean output per class
    joint : ndarray of shape (n_units, n_levels, n_classes) — quantized output x class counts
    """

    a: np.ndarray
    threshold: float
    class_means: np.ndarray
    joint: np.ndarray


STATISTICS: dict[str, Callable[[LayerSummary], np.ndarray]] = {
    "mean_activation": lambda s: s.a.mean(axis=0),
    "activation_rate": lambda s: (s.a > s.threshold).mean(axis=0),
    "selectivity": lambda s: class_selectivity(s.class_means),
    "entropy": lambda s: entropy(s.joint.sum(axis=-1)),
    "mutual_information": lambda s: mutual_information(s.joint),
    "kl_selectivity": lambda s: kl_selectivity(s.joint),
}
"""Unit statistics by name: ``statistic(summary) -> (n_units,)``. The one list: the
``kind=unit`` columns and the statistic orders of cumulative ablation derive from it."""

UNIT_COLUMNS: dict[str, str] = {"layer": "int64", "unit": "int64", **{name: "float64" for name in STATISTICS}}
"""Columns returned by :func:`unit_statistics` and their types, in order."""


def layer_statistics(
    a: np.ndarray,
    y_index: np.ndarray,
    n_classes: int,
    quantizer: str = "binary",
    threshold: float = 0.0,
    n_bins: int = 2,
) -> dict[str, np.ndarray]:
    """Every :data:`STATISTICS` of every unit of one layer, from its outputs.

    Parameters
    ----------
    a : ndarray of shape (n_samples, n_units) — the layer's outputs
    y_index : ndarray of shape (n_samples,), int — class index of each row
    n_classes : int
    quantizer : str — a key of :data:`QUANTIZERS`
    threshold : float — firing threshold (activation rate, ``binary`` quantizer)
    n_bins : int — number of bins of the ``quantile`` / ``uniform`` quantizers

    Returns
    -------
    dict of str to ndarray of shape (n_units,)
        One entry per statistic, in :data:`STATISTICS` order.
    """
    if quantizer not in QUANTIZERS:
        raise ValueError(f"unknown quantizer {quantizer!r}; expected one of {sorted(QUANTIZERS)}")
    a = np.asarray(a, dtype=np.float64)
    one_hot = (y_index[:, None] == np.arange(n_classes)).astype(np.float64)
    class_sums = one_hot.T @ a  # (n_classes, n_units)
    class_n = np.bincount(y_index, minlength=n_classes)
    present = class_n > 0
    class_means = (class_sums[present] / class_n[present, None]).T  # (n_units, n_present)
    joint = joint_counts(QUANTIZERS[quantizer](a, threshold, n_bins), y_index, n_classes)
    summary = LayerSummary(a, threshold, class_means, joint)
    return {name: statistic(summary) for name, statistic in STATISTICS.items()}


def unit_outputs(net: Network | TorchNetwork, X: Any) -> list[np.ndarray]:
    """Each hidden unit's output per row of ``X`` (n_samples, n_features), numpy: per layer an
    array of shape ``(n_samples, hidden_sizes[l])``. An MLP's are its hidden activations; a
    torch network's are its sites' outputs, a convolution channel's being the mean of its map
    (:func:`sweep.kernels.torchnet.site_activations`)."""
    if isinstance(net, TorchNetwork):
        return site_activations(net, X)
    return [to_numpy(a) for a in hidden_activations(net, X)]


def fire_thresholds(net: Network | TorchNetwork) -> list[float]:
    """Per hidden layer, the output above which a unit "fires": ``act(0)`` of an MLP's
    activation (0.5 for logistic); a torch site's ``zero``-mode value (``act(0)`` at an
    activation site, 0 at a convolution or linear one)."""
    if isinstance(net, TorchNetwork):
        return [float(v.flatten()[0]) for v in mode_values(net, "zero")]
    return [float(net.act.at_zero)] * len(net.hidden_sizes)


def unit_statistics(
    net: Network | TorchNetwork,
    X: Any,
    y: np.ndarray,
    quantizer: str = "binary",
    threshold: float | None = None,
    n_bins: int = 2,
) -> dict[str, np.ndarray]:
    """Statistics of every hidden unit of ``net`` on ``(X, y)``.

    Parameters
    ----------
    net : Network — numpy or torch weights, same backend as ``X`` (the forward pass runs
        there; the count tables on the CPU); or a :class:`~sweep.kernels.torchnet.TorchNetwork`
        (a unit's output on an image: :func:`unit_outputs`)
    X : array of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,) — class labels
    quantizer, n_bins : see :func:`layer_statistics`
    threshold : float, optional — firing threshold; default :func:`fire_thresholds`, so a
        unit "fires" when its output exceeds its value at zero input weights

    Returns
    -------
    dict of str to ndarray of shape (n_hidden_units,)
        The :data:`UNIT_COLUMNS`, units ordered by (layer, unit); ``layer`` and ``unit``
        are int64, the rest float64.
    """
    y_index = class_index(net, y)
    n_classes = len(net.classes)
    per_layer = []
    outputs = unit_outputs(net, X)
    thresholds = fire_thresholds(net) if threshold is None else [threshold] * len(outputs)
    for layer, (a, at) in enumerate(zip(outputs, thresholds)):
        stats = layer_statistics(a, y_index, n_classes, quantizer, at, n_bins)
        stats["layer"] = np.full(a.shape[1], layer, dtype=np.int64)
        stats["unit"] = np.arange(a.shape[1], dtype=np.int64)
        per_layer.append(stats)
    return {c: np.concatenate([s[c] for s in per_layer]) for c in UNIT_COLUMNS}
