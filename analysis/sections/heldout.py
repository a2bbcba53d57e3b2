"""Held-out pruning: the neurons harmful on validation removed together, measured on test;
and the rows a set of removed units fixes and breaks.

:func:`prediction_change` and :func:`heldout_pruning` are pure numerics on a network (an MLP's
:class:`~sweep.kernels.Network` or a torch :class:`~sweep.kernels.torchnet.TorchNetwork`) and
arrays, through :func:`sweep.kernels.joint.joint_outcomes`; :func:`build` presents them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from analysis.formatting import count, in_units, value_range
from analysis.sections.base import Page, Section, Table
from analysis.study import NetworkKey, Study
from sweep.kernels import Network, TorchNetwork, ablate_joint, constant_modes, joint_outcomes

Unit = tuple[int, int]
"""(hidden layer, unit index)."""


class PredictionChange(NamedTuple):
    """Predictions before and after an ablation, and the rows it fixes and breaks.

    ``base`` and ``ablated`` have shape ``(n_samples,)`` (class labels); ``fixed`` and
    ``broken`` are row indices (wrong -> right, right -> wrong).
    """

    base: np.ndarray
    ablated: np.ndarray
    fixed: np.ndarray
    broken: np.ndarray


def prediction_change(
    net: Network | TorchNetwork,
    X: np.ndarray,
    y: np.ndarray,
    units: Sequence[Unit],
    mode: str = "zero",
    reference: np.ndarray | None = None,
) -> PredictionChange:
    """Which rows of ``(X, y)`` ablating ``units`` together fixes and breaks (units given as
    (layer, unit); ``reference`` (n_ref, n_features) for ``mean``)."""
    (before, _), (after, _) = joint_outcomes(net, X, y, units, mode, reference)
    base, ablated = net.classes[before], net.classes[after]
    right, right_after = base == y, ablated == y
    return PredictionChange(
        base, ablated, np.flatnonzero(~right & right_after), np.flatnonzero(right & ~right_after)
    )


def heldout_pruning(
    df: pd.DataFrame,
    net: Network | TorchNetwork,
    X_test: np.ndarray,
    y_test: np.ndarray,
    mode: str = "zero",
    reference: np.ndarray | None = None,
) -> dict[str, float | int] | None:
    """Remove the neurons that are harmful on validation, all at once, and measure on test.

    Parameters
    ----------
    df : DataFrame — the neuron rows of one run and ``mode`` (columns ``split, layer, unit,
        effect``), with ``split == "val"`` and ``split == "test"`` rows
    net : the run's network
    X_test : ndarray of shape (n_test, n_features)
    y_test : ndarray of shape (n_test,)

    Returns
    -------
    dict or None
        None when there are no validation rows. Otherwise ``n_selected`` (harmful on val),
        ``accuracy_base``, ``accuracy`` (test, all selected removed), ``joint_effect``,
        ``sum_single_effects`` (their single test effects summed; NaN when the test sweep
        lacks one of them), ``loss_base`` and ``loss``.
    """
    val = df[df["split"] == "val"]
    if val.empty:
        return None
    chosen = val[val["effect"] > 0]
    units = [(int(l), int(u)) for l, u in zip(chosen["layer"], chosen["unit"])]
    test = df[df["split"] == "test"].set_index(["layer", "unit"])["effect"]
    singles = test.reindex(pd.MultiIndex.from_tuples(units, names=["layer", "unit"]))
    joint = {k: v[0] for k, v in ablate_joint(net, X_test, y_test, units, mode, reference).items()}
    return {
        "n_selected": len(units),
        "accuracy_base": float(joint["accuracy_base"]),
        "accuracy": float(joint["accuracy"]),
        "joint_effect": float(joint["effect"]),
        "sum_single_effects": float(singles.sum(skipna=False)) if units else 0.0,
        "loss_base": float(joint["loss_base"]),
        "loss": float(joint["loss"]),
    }


def heldout_table(study: Study, neurons: pd.DataFrame) -> pd.DataFrame:
    """:func:`heldout_pruning` of every network and mode with validation rows (the modes with
    one value per unit, ``sweep.kernels.constant_modes``: a per-image mode's rows average
    draws that one joint ablation would not repeat).

    Returns
    -------
    DataFrame
        ``dataset, model, seed, mode`` and the keys of :func:`heldout_pruning` (fractions).
    """
    rows = []
    constant = neurons[neurons["mode"].isin(constant_modes())]
    for (dataset, model, seed, mode), family in constant.groupby(
            ["dataset", "model", "seed", "mode"], sort=True):
        key = NetworkKey(dataset, model, int(seed))
        if study.run(key) is None:
            continue
        X, y = study.split(key, "test")
        result = heldout_pruning(family, study.network(key), X, y, mode, study.reference(key, mode))
        if result is not None:
            rows.append({"dataset": dataset, "model": model, "seed": int(seed), "mode": mode,
                         **result})
    return pd.DataFrame(rows)


def build(study: Study, page: Page) -> list[Section]:
    """Held-out pruning: harmful-on-validation neurons removed together, measured on test."""
    if not study.has("neuron"):
        return []
    table = heldout_table(study, study.rows("neuron"))
    if table.empty:
        return []
    pruned = table[table["n_selected"] > 0]
    decimals = page.decimals
    summary = [] if pruned.empty else [
        "Removing together the neurons harmful on the validation split changes test accuracy "
        f"by {value_range(100 * pruned['joint_effect'], decimals, signed=True)} pp "
        f"({count(len(pruned), 'network')})"
        + ("; it never helps on test." if (pruned["joint_effect"] <= 0).all() else ".")]
    paragraphs = []
    if len(pruned) < len(table):
        paragraphs.append(f"{count(len(table) - len(pruned), 'network')} {'has' if len(table) - len(pruned) == 1 else 'have'} no "
                          "neuron harmful on validation: nothing is pruned there.")
    caption = (
        "Held-out pruning: the neurons harmful on the validation split (selected) removed "
        "together, measured on the test split: accuracy before and after, the joint change, "
        "the sum of their single test effects (blank when the test sweep lacks one), and the "
        "log-loss before and after.")
    units = in_units(table, pp=["joint_effect", "sum_single_effects"],
                     pct=["accuracy_base", "accuracy"])
    return [Section("Held-out pruning", paragraphs, {"heldout_pruning": Table(units, caption)},
                    [], summary)]
