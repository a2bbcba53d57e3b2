"""Pair ablation: remove every unordered pair of a set of hidden units and measure, with each
pair's interaction ``effect_ab - effect_a - effect_b``.

How a pair stays exact and cheap
--------------------------------
The pairs are grouped by their first unit ``a`` (units ordered by ``(layer, unit)``; the
second unit ``b`` comes after ``a``). For each ``a`` the forward pass of the network with
``a`` removed is built from the unablated one by a rank-1 change and the later layers'
recompute on the changed rows (:meth:`~sweep.kernels.running.PrunedPass.without`, near-ties
settled as sklearn predicts). Every pair ``(a, b)`` is then one single-neuron ablation of
``b`` on that pass (:func:`~sweep.kernels.neurons.ablate_neurons`): a rank-1 change of the
next layer on the rows ``b`` changes; for ``b`` in ``a``'s layer the two changes make the
rank-2 change of the next layer, for ``b`` in a later layer it is ``b``'s rank-1 change on
top of ``a``'s recomputed rows. Its near-ties are settled with both units' weights edited
(the pass's network already has ``a`` edited). Metrics compare with the *unablated* network:
the pass's reference outcome is the unablated one, and the rows where ``a`` alone changed
the outcome are measured for every ``b``. With ``metrics="accuracy"`` the unablated
network's screening tables bound every pass's (removing ``a`` only zeroes weights), so the
rows that provably keep their prediction are skipped. Single effects come from one
single-neuron sweep in the same call. Memory: one pass copy at a time, plus the engine's
bounded chunks. Pure numerics, numpy or torch.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from sweep.kernels.backend import network_to_numpy, to_numpy
from sweep.kernels.basestate import BaseState, prepare
from sweep.kernels.engine import DEFAULT_CHUNK_ELEMENTS, check_metrics
from sweep.kernels.metrics import METRIC_COLUMNS
from sweep.kernels.modes import drawn_values, unit_replacements
from sweep.kernels.network import Network
from sweep.kernels.neurons import ablate_neurons
from sweep.kernels.pruning import Tables
from sweep.kernels.running import PrunedPass
from sweep.kernels.screen import gain_tables

PAIR_COLUMNS: dict[str, str] = {
    "layer_a": "int64",
    "unit_a": "int64",
    "layer_b": "int64",
    "unit_b": "int64",
    **METRIC_COLUMNS,
    "effect_a": "float64",
    "effect_b": "float64",
    "interaction": "float64",
}
"""Columns of :func:`ablate_pairs`: the pair (``a`` before ``b`` in ``(layer, unit)`` order),
the metric columns of the pair removed (against the unablated network), each unit's single
effect (same split, mode and run) and ``interaction = effect - effect_a - effect_b``
(computed from the row counts, so exactly 0 for an additive pair)."""


def pair_count(n_units: int, start: int = 0, stop: int | None = None) -> int:
    """Pairs whose first unit is at a position of ``[start, stop)`` among ``n_units``
    ordered units (the one at position ``i`` pairs with the ``n_units - 1 - i`` after it)."""
    stop = n_units if stop is None else stop
    return sum(n_units - 1 - i for i in range(start, stop))


def check_units(units: np.ndarray) -> np.ndarray:
    """``units`` as an int64 array of shape (m, 2).

    Raises
    ------
    ValueError
        If the units are not distinct and sorted by ``(layer, unit)``.
    """
    units = np.asarray(units, dtype=np.int64).reshape(-1, 2)
    key = units[:, 0] * (int(units[:, 1].max(initial=0)) + 1) + units[:, 1]
    if np.any(np.diff(key) <= 0):
        raise ValueError("units must be distinct (layer, unit) rows sorted by layer, then unit")
    return units


def _sweep(
    base: BaseState, net: Network, y: np.ndarray, units: np.ndarray, mode: str, values: list[np.ndarray],
    metrics: str, tables: Tables, rows: np.ndarray | None, chunk_elements: int,
) -> dict[str, np.ndarray]:
    """:func:`ablate_neurons` of ``units`` (m, 2), layer by layer, on ``base``: metric columns."""
    parts = [
        ablate_neurons(
            net, base.inputs[0], y, int(layer), units[units[:, 0] == layer, 1], mode, metrics=metrics,
            base=base, chunk_elements=chunk_elements, replacement=values[int(layer)],
            screen_tables=tables.get(int(layer)), rows=rows,
        )
        for layer in np.unique(units[:, 0])
    ]
    return {name: np.concatenate([p[name] for p in parts]) for name in METRIC_COLUMNS}


def ablate_pairs(
    net: Network,
    X: Any,
    y: np.ndarray,
    units: np.ndarray,
    start: int = 0,
    stop: int | None = None,
    mode: str = "zero",
    reference: np.ndarray | None = None,
    *,
    metrics: str = "accuracy",
    base: BaseState | None = None,
    values: list[np.ndarray] | None = None,
    tables: Tables | None = None,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> dict[str, np.ndarray]:
    """Remove every pair of ``units`` whose first unit is at a position of ``[start, stop)``.

    Parameters
    ----------
    net : Network — numpy or torch weights (see :func:`sweep.kernels.backend.to_backend`)
    X : array of shape (n_samples, n_features) — same backend as ``net``
    y : ndarray of shape (n_samples,) — class labels
    units : ndarray of shape (m, 2), int — ``(layer, unit)`` rows, distinct, sorted
    start, stop : int — positions in ``units`` of the first units (default: all)
    mode : str — one of :data:`~sweep.kernels.modes.NEURON_MODES`
    reference : ndarray of shape (n_ref, n_features), optional — for ``mode='mean'``
    metrics : str — one of :data:`~sweep.kernels.engine.METRIC_SETS`
    base : BaseState, optional — ``prepare(net, X, y)``, computed when not given
    values : list of ndarray, optional — :func:`~sweep.kernels.modes.unit_replacements` of
        ``net`` in ``mode`` (else from ``reference``); a per-image mode's ``(n_samples,
        width_l)`` matrices (:func:`~sweep.kernels.modes.drawn_values`: one draw, the same
        donor image for both units of a pair; else draw 0 of seed 0)
    tables : dict of int to tuple of ndarray, optional — hidden layer -> its
        :func:`~sweep.kernels.screen.gain_tables` (``metrics="accuracy"``; else computed)
    chunk_elements : int — size of the largest temporary array of one pass

    Raises
    ------
    ValueError
        If no pair starts in ``[start, stop)``, or ``units`` are not distinct and sorted.

    Returns
    -------
    dict of str to ndarray
        :data:`PAIR_COLUMNS`, one row per pair (:func:`pair_count` rows), ordered by the first
        unit, then the second; ``class_effect`` of shape (n_pairs, n_classes).
    """
    check_metrics(metrics)
    units = check_units(units)
    stop = len(units) if stop is None else stop
    if pair_count(len(units), start, stop) == 0:
        raise ValueError(f"no pair has its first unit at a position of [{start}, {stop}) of {len(units)} units")
    net_np = network_to_numpy(net)
    base = prepare(net, X, y) if base is None else base
    if values is None:
        pool = unit_replacements(net_np, mode, None if reference is None else to_numpy(reference))
        values = drawn_values(pool, mode, base.n)
    if tables is None:
        tables = {int(l): gain_tables(net_np, int(l)) for l in np.unique(units[:, 0])} if metrics == "accuracy" else {}
    y = np.asarray(to_numpy(y))
    singles = _sweep(base, net, y, units[start:], mode, values, metrics, tables, None, chunk_elements)
    gained = singles["fixed"] - singles["broken"]  # rows turned right, net, per single unit
    unablated = PrunedPass(net, net_np, list(base.inputs), list(base.pre), y, values, mode)
    base_pred, base_loss = to_numpy(base.pred), to_numpy(base.loss)
    ids, parts, single_effects, interaction = [], [], [], []
    for i in range(start, stop):
        partners = units[i + 1 :]
        if len(partners) == 0:
            continue
        removed = unablated.without(*(int(v) for v in units[i])).state()
        differs = to_numpy(removed.pred) != base_pred
        if metrics == "full":
            differs |= to_numpy(removed.loss) != base_loss
        against = replace(
            removed, pred=base.pred, right=base.right, loss=base.loss, probabilities=base.probabilities
        )
        # rows where a alone changed the prediction have no margin against the unablated
        # prediction: their screen ratio overflows to inf, harmlessly (they are measured anyway)
        with np.errstate(over="ignore"):
            part = _sweep(against, removed.net, y, partners, mode, values, metrics, tables, differs, chunk_elements)
        ids.append(np.column_stack([np.repeat(units[i : i + 1], len(partners), axis=0), partners]))
        parts.append(part)
        single_effects.append(
            np.column_stack([np.full(len(partners), singles["effect"][i - start]), singles["effect"][i + 1 - start :]])
        )
        pair_gained = part["fixed"] - part["broken"]
        interaction.append((pair_gained - gained[i - start] - gained[i + 1 - start :]) / base.n)
    pairs = np.concatenate(ids)
    columns: dict[str, np.ndarray] = {name: pairs[:, k] for k, name in enumerate(("layer_a", "unit_a", "layer_b", "unit_b"))}
    for name in METRIC_COLUMNS:
        columns[name] = np.concatenate([p[name] for p in parts])
    columns["effect_a"], columns["effect_b"] = np.concatenate(single_effects).T
    columns["interaction"] = np.concatenate(interaction)
    return columns
