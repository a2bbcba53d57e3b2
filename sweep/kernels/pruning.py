"""Pruning paths: hidden units removed one at a time, chosen on the validation split, with the
pruned network measured on every split after each step.

Methods (:data:`PRUNING_METHODS`): ``greedy`` (at each step every remaining unit is ablated
exactly and the one whose removal keeps val accuracy highest goes; ties: lower val loss, then
lower ``(layer, unit)``), and orders fixed in advance: ``single_shot`` (the same key, computed
once on the unpruned net), ``magnitude`` (smallest L2 norm of outgoing weights first),
``activation`` (smallest mean absolute activation on val first) and ``random`` (the nested
random orders of :func:`sweep.kernels.orders.make_order`).

How a step stays exact and cheap
--------------------------------
:class:`~sweep.kernels.running.PrunedPass` is the forward pass of the network with the
removed units' weights edited, kept up to date by a rank-1 update per removed unit, its
near-tie rows settled as ``MLPClassifier.predict`` does, so its predictions are sklearn's. A greedy step is
then one single-neuron sweep (:func:`~sweep.kernels.neurons.ablate_neurons`, screened
``accuracy`` metrics) over the remaining units with that pass as its base state, and the exact
loss only for the units tied at the best accuracy. Pure numerics, numpy or torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from sweep.kernels.backend import network_to_numpy, to_numpy
from sweep.kernels.basestate import BaseState
from sweep.kernels.metrics import DRAW_COLUMNS, METRIC_COLUMNS, mean_over_draws, no_draws
from sweep.kernels.modes import drawn_values, neuron_mode
from sweep.kernels.network import Network
from sweep.kernels.neurons import ablate_neurons
from sweep.kernels.orders import make_order, scope_units
from sweep.kernels.running import PrunedPass
from sweep.kernels.screen import gain_tables

PRUNING_METHODS: tuple[str, ...] = ("greedy", "single_shot", "magnitude", "activation", "random")
"""How the next unit to remove is chosen (see the module docstring)."""

SELECTION_SPLIT = "val"
"""The split every pruning choice is made on (selection hygiene: reported on the others)."""

PRUNING_COLUMNS: dict[str, str] = {
    "method": "str",
    "scope": "str",
    "repetition": "int64",
    "step": "int64",
    "fraction": "float64",
    "split": "str",
    "layer": "int64",
    "unit": "int64",
    **METRIC_COLUMNS,
    **DRAW_COLUMNS,
}
"""Columns of :func:`pruning_path`: one row per step and split; ``step`` 0 is the unpruned
network (``layer = unit = -1``), step ``k`` the network with the first ``k`` units removed,
``(layer, unit)`` the one removed at step ``k``, ``fraction = k / (units in the scope)``; the
metric columns compare the pruned network with the unpruned one on that split (a per-image
mode's: the mean over its draws, :data:`~sweep.kernels.metrics.DRAW_COLUMNS`; null for a
constant mode)."""


def removal_limit(max_removed: float | None, n_units: int) -> int:
    """How many of ``n_units`` units a path may remove.

    Parameters
    ----------
    max_removed : float, optional — ``None``: all; below 1: a fraction of ``n_units``
        (rounded down); from 1 on: a count (a whole number, capped at ``n_units``)

    Raises
    ------
    ValueError
        If ``max_removed`` is not positive, or a count that is not a whole number.
    """
    if max_removed is None:
        return n_units
    if max_removed <= 0:
        raise ValueError(f"ablation.max_removed must be positive, not {max_removed}")
    if max_removed < 1:
        return math.floor(max_removed * n_units + 1e-9)
    if max_removed != int(max_removed):
        raise ValueError(
            f"ablation.max_removed={max_removed} is neither a fraction below 1 nor a whole count"
        )
    return min(int(max_removed), n_units)


Tables = dict[int, tuple[np.ndarray, np.ndarray]]
"""Hidden layer -> its :func:`~sweep.kernels.screen.gain_tables`, computed once on the unpruned
network (they bound every pruned copy's)."""


def single_unit_ranking(
    base: BaseState,
    candidates: np.ndarray,
    values: list[np.ndarray],
    mode: str,
    metrics: str = "full",
    tables: Tables | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate removed on its own from the network of ``base``: rows right and loss.

    Parameters
    ----------
    base : BaseState — of the (possibly already pruned) network on the selection split
    candidates : ndarray of shape (m, 2), int — ``(layer, unit)`` not removed yet
    values : list of ndarray — replacement values per hidden layer
    mode : str
    metrics : str — ``full`` (exact loss) or ``accuracy`` (loss NaN, screened: faster)
    tables : Tables, optional — the screening tables of the candidates' layers (``accuracy``)

    Returns
    -------
    (right, loss) : ndarrays of shape (m,) — correctly classified rows (int64) and mean loss
    """
    right = np.empty(len(candidates), dtype=np.int64)
    loss = np.empty(len(candidates))
    n_right = int(to_numpy(base.right).sum())
    for layer in np.unique(candidates[:, 0]):
        at = np.flatnonzero(candidates[:, 0] == layer)
        columns = ablate_neurons(
            base.net, base.inputs[0], base.y_np, int(layer), candidates[at, 1], mode,
            metrics=metrics, base=base, replacement=values[layer],
            screen_tables=None if tables is None else tables.get(int(layer)),
        )
        right[at] = n_right - columns["broken"] + columns["fixed"]
        loss[at] = columns["loss"]
    return right, loss


def rank(candidates: np.ndarray, right: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Candidate positions, best first: most rows right, then lower loss, then lower
    ``(layer, unit)``; shape (m,)."""
    return np.lexsort((candidates[:, 1], candidates[:, 0], loss, -right))


def ranking_over_draws(
    draws: Sequence[PrunedPass], candidates: np.ndarray, metrics: str = "full", tables: Tables | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`single_unit_ranking` on the passes of one split, one per draw of a per-image
    mode (one pass of a constant mode): rows right summed over the draws (ranks as their
    mean) and the loss averaged, shapes (m,)."""
    parts = [single_unit_ranking(p.state(), candidates, p.values, p.mode, metrics, tables) for p in draws]
    return np.sum([right for right, _ in parts], axis=0), np.mean([loss for _, loss in parts], axis=0)


def greedy_choice(draws: Sequence[PrunedPass], candidates: np.ndarray, tables: Tables | None = None) -> int:
    """Position in ``candidates`` (m, 2) of the unit whose removal keeps the selection
    split's accuracy highest, averaged over ``draws`` (:func:`ranking_over_draws`; ties:
    lower loss, then lower ``(layer, unit)``).

    The accuracy of every candidate comes from one screened sweep per draw; the exact loss
    is then computed only for the candidates tied at the best accuracy.
    """
    right, _ = ranking_over_draws(draws, candidates, "accuracy", tables)
    tied = np.flatnonzero(right == right.max())
    if len(tied) == 1:
        return int(tied[0])
    tied_right, tied_loss = ranking_over_draws(draws, candidates[tied])
    return int(tied[rank(candidates[tied], tied_right, tied_loss)[0]])


def drawn_passes(
    net: Network, X: Any, y: np.ndarray, values: list[np.ndarray], mode: str, draws: int, resample_seed: int
) -> list[PrunedPass]:
    """The unpruned passes of ``net`` on ``(X, y)``: one per draw ``0..draws-1`` of
    ``resample_seed`` of a per-image mode (``values`` its pools, drawn for these rows:
    :func:`~sweep.kernels.modes.drawn_values`), or one of a constant mode."""
    if not neuron_mode(mode).per_image:
        return [PrunedPass.start(net, X, y, values, mode)]
    return [PrunedPass.start(net, X, y, drawn_values(values, mode, len(y), resample_seed, draw), mode)
            for draw in range(draws)]


def measured_over_draws(
    draws: Sequence[PrunedPass], unpruned: tuple[np.ndarray, np.ndarray], resample_seed: int
) -> dict[str, np.ndarray]:
    """The metric columns (length 1) of the pruned passes of one split against its unpruned
    outcome ``(pred, loss)``: a per-image mode's averaged over its draws
    (:func:`~sweep.kernels.metrics.mean_over_draws`, ``effect_sd`` the accuracy's sd), with
    :data:`~sweep.kernels.metrics.DRAW_COLUMNS` (null for a constant mode)."""
    tables = [p.metrics(*unpruned, *p.outcome()) for p in draws]
    if not neuron_mode(draws[0].mode).per_image:
        return {**tables[0], **no_draws(1)}
    return mean_over_draws(tables, resample_seed, spread="accuracy")


def fixed_order(
    method: str,
    net: Network,
    selection: Sequence[PrunedPass],
    units: np.ndarray,
    seed: int,
    repetition: int,
    scope: str,
) -> np.ndarray:
    """The removal order of a method other than ``greedy``, shape (m, 2).

    Parameters
    ----------
    method : str — ``single_shot``, ``magnitude``, ``activation`` or ``random``
    net : Network — the unpruned network
    selection : sequence of PrunedPass — the unpruned passes on the selection split, one per
        draw (:func:`drawn_passes`)
    units : ndarray of shape (m, 2) — the scope's units, sorted by ``(layer, unit)``
    seed, repetition : int — of the random order (:func:`~sweep.kernels.orders.make_order`)
    scope : str
    """
    if method == "random":
        return make_order("random", net, scope=scope, seed=seed, repetition=repetition)
    if method == "single_shot":
        right, loss = ranking_over_draws(selection, units)
        return units[rank(units, right, loss)]
    if method == "magnitude":
        key = np.array([np.linalg.norm(to_numpy(net.coefs[l + 1][u, :])) for l, u in units])
    elif method == "activation":
        key = np.array([np.abs(to_numpy(selection[0].inputs[l + 1][:, u])).mean() for l, u in units])
    else:
        raise ValueError(f"unknown pruning method {method!r}; expected one of {PRUNING_METHODS}")
    return units[np.lexsort((units[:, 1], units[:, 0], key))]


def pruning_path(
    net: Network,
    splits: dict[str, tuple[Any, np.ndarray]],
    method: str,
    values: list[np.ndarray],
    *,
    mode: str = "zero",
    scope: str = "network",
    max_removed: float | None = None,
    tolerance: float | None = None,
    seed: int = 0,
    repetition: int = 0,
    draws: int = 1,
    resample_seed: int = 0,
) -> dict[str, np.ndarray]:
    """One pruning path: units removed one at a time, chosen on ``splits["val"]``, and every
    split measured after each step.

    A per-image mode (``resample``) runs ``draws`` draws of ``resample_seed`` side by side:
    the greedy and single-shot choices rank the units by their accuracy summed over the
    draws, and every step's metrics are the mean over the draws (their sd kept).

    Parameters
    ----------
    net : Network — numpy or torch weights, same backend as the inputs
    splits : dict of str to (X, y) — ``"val"`` (the selection split) and any others, each
        ``X`` of shape (n, n_features) and ``y`` of shape (n,) class labels
    method : str — one of :data:`PRUNING_METHODS`
    values : list of ndarray — replacement values per hidden layer
        (:func:`~sweep.kernels.modes.unit_replacements` of the unpruned network in ``mode``;
        a per-image mode's pools, drawn here for each split)
    mode : str — one of :data:`~sweep.kernels.modes.NEURON_MODES`
    scope : str — ``"network"`` or ``"layer<l>"``: the units that may be removed
    max_removed : float, optional — see :func:`removal_limit`
    tolerance : float, optional — stop after the first step whose val accuracy (the mean
        over the draws) is more than this below the unpruned network's (that step is
        recorded); None: no such stop
    seed, repetition : int — of the ``random`` order
    draws, resample_seed : int — a per-image mode's draws and their seed (else unused)

    Returns
    -------
    dict of str to ndarray
        :data:`PRUNING_COLUMNS`, one row per step (0..k) and split, steps in order, splits in
        the order given; ``class_effect`` of shape (n_rows, n_classes).
    """
    if method not in PRUNING_METHODS:
        raise ValueError(f"unknown pruning method {method!r}; expected one of {PRUNING_METHODS}")
    if SELECTION_SPLIT not in splits:
        raise ValueError("pruning chooses on the validation split: splits needs a 'val' entry")
    units = scope_units(network_to_numpy(net), scope)
    limit = removal_limit(max_removed, len(units))
    passes = {name: drawn_passes(net, X, y, values, mode, draws, resample_seed) for name, (X, y) in splits.items()}
    unpruned = {name: p[0].outcome() for name, p in passes.items()}
    selection = passes[SELECTION_SPLIT]
    order = None
    if method != "greedy":
        order = fixed_order(method, net, selection, units, seed, repetition, scope)

    def measure() -> dict[str, dict[str, np.ndarray]]:
        return {name: measured_over_draws(p, unpruned[name], resample_seed) for name, p in passes.items()}

    steps = [measure()]
    removed = [(-1, -1)]
    remaining = units
    layers = np.unique(units[:, 0]).tolist()
    tables = {layer: gain_tables(net, layer) for layer in layers} if order is None else None
    for step in range(limit):
        if order is None:
            pick = greedy_choice(selection, remaining, tables)
        else:
            pick = int(np.flatnonzero((remaining == order[step]).all(axis=1))[0])
        layer, unit = (int(v) for v in remaining[pick])
        remaining = np.delete(remaining, pick, axis=0)
        removed.append((layer, unit))
        for draw_passes in passes.values():
            for p in draw_passes:
                p.remove(layer, unit)
        steps.append(measure())
        below = steps[0][SELECTION_SPLIT]["accuracy"][0] - steps[-1][SELECTION_SPLIT]["accuracy"][0]
        if tolerance is not None and below > tolerance:
            break
    rows = [(k, name) for k in range(len(steps)) for name in passes]
    where = np.array([removed[k] for k, _ in rows], dtype=np.int64).reshape(-1, 2)
    step = np.array([k for k, _ in rows], dtype=np.int64)
    columns: dict[str, np.ndarray] = {
        "method": np.full(len(rows), method, dtype=object),
        "scope": np.full(len(rows), scope, dtype=object),
        "repetition": np.full(len(rows), repetition, dtype=np.int64),
        "step": step,
        "fraction": step / len(units),
        "split": np.array([name for _, name in rows], dtype=object),
        "layer": where[:, 0],
        "unit": where[:, 1],
    }
    for column in (*METRIC_COLUMNS, *DRAW_COLUMNS):
        columns[column] = np.concatenate([steps[k][name][column] for k, name in rows])
    return columns
