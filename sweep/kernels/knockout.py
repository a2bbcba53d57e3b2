"""Class knockout ("is there a unit for this class?"): the smallest set of hidden units, found
greedily on the validation split, whose joint removal brings one class's accuracy down to
chance while every other class loses at most a set amount.

At each step every remaining unit is removed on its own from the network pruned so far (one
screened single-neuron sweep with the pruned pass as its base state, as the greedy pruning
path does: :class:`~sweep.kernels.pruning.PrunedPass`), and the unit chosen is the one that
lowers the target class's val accuracy most among those that keep every other class within
``max_other_loss`` of its unablated val accuracy and that make progress (fewer target rows right,
or a higher log-loss on them: a unit that changes nothing is never added). Ties (common: most single removals change
no target row) go to the highest log-loss on the target class's val rows (exact, from a second
pruned pass on those rows only: progress before the first row flips), then fewer other-class
rows lost, then lower ``(layer, unit)``. The search ends when the target class is at or below ``chance`` (knocked
out), when no unit makes progress while keeping the other classes within bounds (stuck), or at ``max_units``. Every
split given is measured after every step. Pure numerics, numpy or torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sweep.kernels.backend import network_to_numpy
from sweep.kernels.metrics import DRAW_COLUMNS, METRIC_COLUMNS
from sweep.kernels.network import Network, class_index
from sweep.kernels.neurons import ablate_neurons
from sweep.kernels.orders import scope_units
from sweep.kernels.pruning import (
    SELECTION_SPLIT,
    PrunedPass,
    drawn_passes,
    measured_over_draws,
    removal_limit,
)
from sweep.kernels.screen import gain_tables

KNOCKOUT_COLUMNS: dict[str, str] = {
    "scope": "str",
    "target": "int64",
    "step": "int64",
    "split": "str",
    "layer": "int64",
    "unit": "int64",
    "knocked_out": "int64",
    "target_accuracy": "float64",
    "other_max_loss": "float64",
    **METRIC_COLUMNS,
    **DRAW_COLUMNS,
}
"""Columns of :func:`class_knockout`: one row per step and split; ``target`` the class index
(into the network's classes) being knocked out; ``step`` 0 is the unablated network (``layer =
unit = -1``), step ``k`` the network with the first ``k`` units of the set removed;
``knocked_out`` 1 on every row of a search that reached chance on val; ``target_accuracy`` the
target class's accuracy on that split after the step and ``other_max_loss`` the largest
accuracy loss of another class against the unablated network (fractions); the metric columns
compare with the unablated network on that split (``class_effect``: every class's change); a
per-image mode's are the mean over its draws (:data:`~sweep.kernels.metrics.DRAW_COLUMNS`, null
for a constant mode)."""


def class_accuracies(pred: np.ndarray, y_index: np.ndarray, n_classes: int) -> np.ndarray:
    """Accuracy of each true class, shape (n_classes,) (0 for a class without rows)."""
    right = np.bincount(y_index, weights=pred == y_index, minlength=n_classes)
    return right / np.maximum(np.bincount(y_index, minlength=n_classes), 1)


def class_knockout(
    net: Network,
    splits: dict[str, tuple[Any, np.ndarray]],
    target: int,
    values: list[np.ndarray],
    *,
    mode: str = "zero",
    scope: str = "network",
    max_units: float | None = None,
    max_other_loss: float = 0.01,
    chance: float | None = None,
    draws: int = 1,
    resample_seed: int = 0,
) -> dict[str, np.ndarray]:
    """The greedy knockout set of one class, chosen on ``splits["val"]``, every split measured.

    A per-image mode (``resample``) runs ``draws`` draws of ``resample_seed`` side by side:
    every quantity the search compares (class accuracies, the target's rows right and loss)
    is the mean over the draws, and so are the rows' metrics (their sd kept).

    Parameters
    ----------
    net : Network — numpy or torch weights, same backend as the inputs
    splits : dict of str to (X, y) — ``"val"`` (where the set is chosen) and any others, ``X``
        of shape (n, n_features), ``y`` of shape (n,) class labels
    target : int — index of the class to knock out (into ``net.classes``)
    values : list of ndarray — replacement values per hidden layer
        (:func:`~sweep.kernels.modes.unit_replacements` of the unablated network in ``mode``;
        a per-image mode's pools, drawn here for each split)
    mode : str — a key of :data:`~sweep.kernels.modes.NEURON_MODES`
    scope : str — ``"network"`` or ``"layer<l>"``: the units that may be removed
    max_units : float, optional — the most units removed (see
        :func:`~sweep.kernels.pruning.removal_limit`); None: every unit of the scope
    max_other_loss : float — the most val accuracy any other class may lose (fraction)
    chance : float, optional — the target class's val accuracy that counts as knocked out;
        None: ``1 / n_classes``
    draws, resample_seed : int — a per-image mode's draws and their seed (else unused)

    Returns
    -------
    dict of str to ndarray
        :data:`KNOCKOUT_COLUMNS`, one row per step (0..k) and split, steps in order, splits in
        the order given; ``class_effect`` of shape (n_rows, n_classes).
    """
    if SELECTION_SPLIT not in splits:
        raise ValueError("class knockout chooses on the validation split: splits needs a 'val' entry")
    net_np = network_to_numpy(net)
    n_classes = len(net_np.classes)
    if not 0 <= target < n_classes:
        raise ValueError(f"target class index {target} is outside 0..{n_classes - 1}")
    chance = 1.0 / n_classes if chance is None else chance
    units = scope_units(net_np, scope)
    limit = removal_limit(max_units, len(units))
    passes = {name: drawn_passes(net, X, y, values, mode, draws, resample_seed) for name, (X, y) in splits.items()}
    labels = {name: class_index(net_np, np.asarray(y)) for name, (_, y) in splits.items()}
    unablated = {name: p[0].outcome() for name, p in passes.items()}
    base_accuracy = {name: class_accuracies(unablated[name][0], labels[name], n_classes) for name in passes}
    selection = passes[SELECTION_SPLIT]
    X_val, y_val_labels = splits[SELECTION_SPLIT]
    y_val = labels[SELECTION_SPLIT]
    on_target = np.flatnonzero(y_val == target)
    target_passes = [  # the target class's val rows alone, each with its draw's values
        PrunedPass.start(net, X_val[on_target], np.asarray(y_val_labels)[on_target],
                         [v[on_target] if np.ndim(v) == 2 else v for v in p.values], mode)
        for p in selection
    ]
    val_counts = np.bincount(y_val, minlength=n_classes)
    others = np.arange(n_classes) != target
    tables = {layer: gain_tables(net, layer) for layer in np.unique(units[:, 0]).tolist()}

    def accuracies(name: str) -> np.ndarray:
        """Each class's accuracy on split ``name``, the mean over the draws, shape (n_classes,)."""
        return np.mean([class_accuracies(p.outcome()[0], labels[name], n_classes) for p in passes[name]], axis=0)

    def measure() -> dict[str, dict[str, np.ndarray]]:
        out = {}
        for name, p in passes.items():
            accuracy = accuracies(name)
            lost = base_accuracy[name][others] - accuracy[others]
            out[name] = {**measured_over_draws(p, unablated[name], resample_seed),
                         "target_accuracy": np.array([accuracy[target]]),
                         "other_max_loss": np.array([lost.max() if lost.size else 0.0])}
        return out

    steps = [measure()]
    removed = [(-1, -1)]
    remaining = units
    knocked_out = steps[0][SELECTION_SPLIT]["target_accuracy"][0] <= chance
    while not knocked_out and len(removed) - 1 < limit:
        after = np.zeros((len(remaining), n_classes))  # val class accuracies, summed over the draws
        target_right = np.zeros(len(remaining))  # target rows right, summed over the draws
        target_loss = np.zeros(len(remaining))  # the target's mean loss, summed over the draws
        now_right, now_loss = 0.0, 0.0  # the same of the network as it stands
        for p, target_pass in zip(selection, target_passes):
            base, target_base = p.state(), target_pass.state()
            current = class_accuracies(np.asarray(p.outcome()[0]), y_val, n_classes)
            now_right += np.rint(current[target] * len(on_target))
            now_loss += float(target_pass.outcome()[1].mean())
            for layer in np.unique(remaining[:, 0]):
                at = np.flatnonzero(remaining[:, 0] == layer)
                columns = ablate_neurons(base.net, base.inputs[0], base.y_np, int(layer), remaining[at, 1], mode,
                                         metrics="accuracy", base=base, replacement=p.values[layer],
                                         screen_tables=tables[int(layer)])
                after[at] += current + columns["class_effect"]
                exact = ablate_neurons(target_base.net, target_base.inputs[0], target_base.y_np, int(layer),
                                       remaining[at, 1], mode, base=target_base, replacement=target_pass.values[layer])
                target_right[at] += np.rint(exact["accuracy"] * len(on_target))
                target_loss[at] += exact["loss"]
        lost = base_accuracy[SELECTION_SPLIT][None, others] - after[:, others] / len(selection)
        progress = (target_right < now_right) | (target_loss > now_loss + 1e-12 * len(selection))
        feasible = np.flatnonzero((lost <= max_other_loss + 1e-12).all(axis=1) & progress)
        if not len(feasible):
            break
        rows_lost = np.rint((np.clip(lost[feasible], 0, None) * val_counts[others] * len(selection)).sum(axis=1))
        candidates = remaining[feasible]
        order = np.lexsort((candidates[:, 1], candidates[:, 0], rows_lost, -target_loss[feasible],
                            target_right[feasible]))
        pick = int(feasible[order[0]])
        layer, unit = (int(v) for v in remaining[pick])
        remaining = np.delete(remaining, pick, axis=0)
        removed.append((layer, unit))
        for p in (*(q for draw_passes in passes.values() for q in draw_passes), *target_passes):
            p.remove(layer, unit)
        steps.append(measure())
        knocked_out = steps[-1][SELECTION_SPLIT]["target_accuracy"][0] <= chance
    rows = [(k, name) for k in range(len(steps)) for name in passes]
    where = np.array([removed[k] for k, _ in rows], dtype=np.int64).reshape(-1, 2)
    columns: dict[str, np.ndarray] = {
        "scope": np.full(len(rows), scope, dtype=object),
        "target": np.full(len(rows), target, dtype=np.int64),
        "step": np.array([k for k, _ in rows], dtype=np.int64),
        "split": np.array([name for _, name in rows], dtype=object),
        "layer": where[:, 0],
        "unit": where[:, 1],
        "knocked_out": np.full(len(rows), int(knocked_out), dtype=np.int64),
    }
    for column in ("target_accuracy", "other_max_loss", *METRIC_COLUMNS, *DRAW_COLUMNS):
        columns[column] = np.concatenate([steps[k][name][column] for k, name in rows])
    return columns
