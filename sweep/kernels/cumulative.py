"""Incremental cumulative-ablation curves: accuracy after removing the first ``k`` units of
an order, for every ``k`` (or a grid of them).

Pure numerics on the array API (numpy or torch). The unablated forward pass is computed once
per split; each curve copies it and removes the next units of its order from the running
pass (:class:`sweep.kernels.running.PrunedPass`: a rank-r update, then the later layers on the
changed rows, near-tie rows settled as sklearn predicts), never a fresh forward pass per prefix. Orders come from :mod:`sweep.kernels.orders`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sweep.kernels.backend import network_to_numpy, to_numpy
from sweep.kernels.joint import as_units
from sweep.kernels.metrics import DRAW_COLUMNS, mean_over_draws, no_draws
from sweep.kernels.modes import drawn_values, neuron_mode, unit_replacements
from sweep.kernels.network import Network, class_index
from sweep.kernels.orders import Table, make_order
from sweep.kernels.running import PrunedPass
from sweep.kernels.torchnet import TorchNetwork, TorchUnitSet, class_index_of, mode_values

CUMULATIVE_COLUMNS: dict[str, str] = {
    "scope": "str",
    "order": "str",
    "repetition": "int64",
    "k": "int64",
    "accuracy": "float64",
    "loss": "float64",
    "accuracy_base": "float64",
    **DRAW_COLUMNS,
}
"""Columns of :func:`cumulative_rows` and their types (the draw columns null for a constant mode)."""


def _start(
    net: Network | TorchNetwork, X: Any, y: np.ndarray, mode: str, reference: Any, seed: int = 0, draw: int = 0
) -> tuple[PrunedPass | TorchUnitSet, np.ndarray]:
    """The unablated running state of ``net`` on ``(X, y)`` whose removed units take their
    ``mode`` values (a per-image mode's draw ``draw`` of ``seed``), and the true class index of
    each row: a :class:`PrunedPass`, or a :class:`~sweep.kernels.torchnet.TorchUnitSet` for a
    torch network."""
    reference = None if reference is None else to_numpy(reference)
    if isinstance(net, TorchNetwork):
        values = drawn_values(mode_values(net, mode, reference), mode, len(y), seed, draw)
        return TorchUnitSet.start(net, X, y, values), class_index_of(net, y)
    values = drawn_values(unit_replacements(network_to_numpy(net), mode, reference), mode, len(y), seed, draw)
    return PrunedPass.start(net, X, y, values, mode), class_index(net, y)


def _check_ks(ks: np.ndarray | None, n_units: int) -> np.ndarray:
    """Sorted unique prefix lengths in ``[0, n_units]``; every length when ``None``."""
    if ks is None:
        return np.arange(n_units + 1, dtype=np.int64)
    ks = np.unique(np.asarray(ks, dtype=np.int64))
    if ks.size and (ks[0] < 0 or ks[-1] > n_units):
        raise ValueError(f"prefix lengths must lie in 0..{n_units}")
    return ks


def _curve_from_state(
    state: PrunedPass | TorchUnitSet, y_index: np.ndarray, order: np.ndarray, ks: np.ndarray
) -> dict[str, np.ndarray]:
    """Cumulative curve from an unablated running pass ``state`` (modified in place)."""
    accuracy = np.empty(len(ks))
    loss = np.empty(len(ks))
    done = 0
    for i, k in enumerate(ks):
        if k > done:
            state.remove_units(order[done:k])
            done = int(k)
        pred, row_loss = state.outcome()
        accuracy[i] = np.mean(pred == y_index)
        loss[i] = row_loss.mean()
    return {"k": ks, "accuracy": accuracy, "loss": loss}


def cumulative_curve(
    net: Network,
    X: Any,
    y: np.ndarray,
    order: Sequence[tuple[int, int]] | np.ndarray,
    ks: np.ndarray | None = None,
    mode: str = "zero",
    reference: np.ndarray | None = None,
    draw: int = 0,
    resample_seed: int = 0,
) -> dict[str, np.ndarray]:
    """Accuracy and loss after ablating the first ``k`` units of ``order``, for each ``k``.

    Computed incrementally (see the module docstring), not from scratch per prefix.

    Parameters
    ----------
    net : Network — numpy or torch weights, same backend as ``X`` (or a
        :class:`~sweep.kernels.torchnet.TorchNetwork`, ``X`` numpy)
    X : array of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,) — class labels
    order : sequence of (layer, unit) or ndarray of shape (K, 2), int — no repeats
    ks : ndarray of shape (n_points,), int, optional — prefix lengths in ``0..K``
        (sorted and deduplicated); default every ``k`` in ``0..K``
    mode : str — one of :data:`sweep.kernels.modes.NEURON_MODES`
    reference : ndarray of shape (n_ref, n_features), optional — for a mode that needs one
    draw, resample_seed : int — a per-image mode's draw (:func:`~sweep.kernels.modes.drawn_values`)

    Returns
    -------
    dict of str to ndarray of shape (n_points,)
        ``k`` (int64), ``accuracy``, ``loss`` (mean log-loss), and ``accuracy_base``
        (the unablated accuracy, repeated).
    """
    order = as_units(order, net)
    state, y_index = _start(net, X, y, mode, reference, resample_seed, draw)
    base_pred, _ = state.outcome()
    curve = _curve_from_state(state, y_index, order, _check_ks(ks, len(order)))
    curve["accuracy_base"] = np.full(len(curve["k"]), np.mean(base_pred == y_index))
    return curve


def grid(n_units: int, n_points: int | None) -> np.ndarray:
    """Prefix lengths: every ``k`` in ``0..n_units`` or about ``n_points`` evenly spaced ones
    (always including 0 and ``n_units``), int64 of shape (<= n_points,)."""
    if n_points is None or n_points > n_units:
        return np.arange(n_units + 1, dtype=np.int64)
    return np.unique(np.linspace(0, n_units, max(n_points, 2)).round().astype(np.int64))


def cumulative_rows(
    net: Network,
    X: Any,
    y: np.ndarray,
    orders: Sequence[str],
    *,
    scopes: Sequence[str] = ("network",),
    mode: str = "zero",
    repetitions: int = 1,
    seed: int = 0,
    stats: Table | None = None,
    effects: Table | None = None,
    n_points: int | None = None,
    reference: np.ndarray | None = None,
    draws: int = 1,
    resample_seed: int = 0,
) -> dict[str, np.ndarray]:
    """Cumulative-ablation curves of several orders and scopes, as ``kind=cumulative`` columns.

    The unablated forward pass is computed once and shared by every curve. ``random`` is
    drawn ``repetitions`` times (repetition ``0..R-1``); every other order is deterministic
    and has the single repetition 0. A per-image mode's curves are the mean over ``draws``
    draws of ``resample_seed`` (:func:`~sweep.kernels.metrics.mean_over_draws`).

    Parameters
    ----------
    net : Network — numpy or torch weights, same backend as ``X``
    X : array of shape (n_samples, n_features) — the split measured (the
        ``cumulative`` kind adds ``mode`` and ``split`` columns)
    y : ndarray of shape (n_samples,) — class labels
    orders : sequence of str — keys of :data:`ORDER_KEYS`
    scopes : sequence of str — ``"network"`` and/or ``"layer<l>"``
    mode : str — one of :data:`sweep.kernels.modes.NEURON_MODES`
    repetitions, seed : int — see :func:`make_order`
    stats, effects : see :func:`make_order` (chosen on the validation split; curves are
        then measured on the split given here)
    n_points : int, optional — prefix lengths per curve (:func:`grid`); default every ``k``
    reference : ndarray of shape (n_ref, n_features), optional — for a mode that needs one
    draws, resample_seed : int — a per-image mode's draws and their seed (else unused)

    Returns
    -------
    dict of str to ndarray of shape (n_rows,)
        :data:`CUMULATIVE_COLUMNS`: ``scope``, ``order`` (object str),
        ``repetition``, ``k`` (int64), ``accuracy``, ``loss``, ``accuracy_base`` (float64),
        and the :data:`~sweep.kernels.metrics.DRAW_COLUMNS` (null for a constant mode;
        ``effect_sd``: the sd of the accuracy over the draws).
    """
    if neuron_mode(mode).per_image:
        tables = [_curves(_start(net, X, y, mode, reference, resample_seed, draw), net, orders, scopes, repetitions,
                          seed, stats, effects, n_points) for draw in range(draws)]
        return mean_over_draws(tables, resample_seed, spread="accuracy")
    columns = _curves(_start(net, X, y, mode, reference), net, orders, scopes, repetitions, seed, stats, effects,
                      n_points)
    return {**columns, **no_draws(len(columns["k"]))}


def _curves(
    started: tuple[PrunedPass | TorchUnitSet, np.ndarray], net: Network | TorchNetwork, orders: Sequence[str],
    scopes: Sequence[str], repetitions: int, seed: int, stats: Table | None, effects: Table | None,
    n_points: int | None,
) -> dict[str, np.ndarray]:
    """:data:`CUMULATIVE_COLUMNS` of every curve from one unablated running state (see
    :func:`cumulative_rows`)."""
    base, y_index = started
    base_pred, _ = base.outcome()
    accuracy_base = float(np.mean(base_pred == y_index))
    parts: list[dict[str, np.ndarray]] = []
    for scope in scopes:
        for name in orders:
            for rep in range(repetitions if name == "random" else 1):
                order = make_order(name, net, stats, effects, scope, seed, rep)
                curve = _curve_from_state(base.copy(), y_index, order, grid(len(order), n_points))
                n = len(curve["k"])
                parts.append(
                    {
                        "scope": np.full(n, scope, dtype=object),
                        "order": np.full(n, name, dtype=object),
                        "repetition": np.full(n, rep, dtype=np.int64),
                        **curve,
                        "accuracy_base": np.full(n, accuracy_base),
                    }
                )
    return {c: np.concatenate([p[c] for p in parts]) for c in CUMULATIVE_COLUMNS if c not in DRAW_COLUMNS}
