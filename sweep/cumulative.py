"""Joint ablation of unit sets, incremental cumulative-ablation curves, and unit orders.

Pure numerics: no I/O. A unit is ``(layer, unit)`` over the hidden layers. Every neuron mode
of :data:`sweep.ablate.NEURON_MODES` replaces the unit's output by a constant
(:func:`sweep.ablate.replacement_values`, computed on the *unablated* network: ``mean`` mode
uses each unit's mean over the reference inputs in the intact network), so ablating a set of
units is equivalent to the naive oracle that edits the weights of all of them at once.

Cumulative curves are computed incrementally: the network's running outputs are kept per
layer; ablating units of layer ``L`` adds a rank-r term to the pre-activations of layer
``L + 1``, and only the layers after that are recomputed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sweep.ablate import class_index, unit_replacements
from sweep.metrics import ablation_metrics, sample_log_loss
from sweep.network import HIDDEN_ACTIVATIONS, Network, output_probabilities, predicted_index

CUMULATIVE_COLUMNS: tuple[str, ...] = (
    "mode",
    "scope",
    "order",
    "repetition",
    "k",
    "accuracy",
    "loss",
    "accuracy_base",
)
"""Columns of :func:`cumulative_rows` (the ``kind=cumulative`` file columns without ``split``)."""


# --------------------------------------------------------------------------- running state


def as_units(units: Sequence[tuple[int, int]] | np.ndarray, net: Network) -> np.ndarray:
    """Validate a unit list and return it as an int64 array of shape ``(k, 2)``.

    Raises
    ------
    ValueError
        On a layer or unit index out of range, or a unit listed twice.
    """
    arr = np.asarray(units, dtype=np.int64).reshape(-1, 2)
    sizes = np.asarray(net.hidden_sizes)
    layer, unit = arr[:, 0], arr[:, 1]
    if np.any((layer < 0) | (layer >= len(sizes))):
        raise ValueError(f"layer index out of range 0..{len(sizes) - 1}")
    if np.any((unit < 0) | (unit >= sizes[layer])):
        raise ValueError("unit index out of range for its layer")
    if len(np.unique(arr, axis=0)) != len(arr):
        raise ValueError("a unit is listed more than once")
    return arr


@dataclass
class _State:
    """Running outputs of a network with a set of hidden units replaced by constants.

    ``a[l]`` (n, width_l): outputs of hidden layer ``l`` (ablated columns hold their values);
    ``z[l]`` (n, width_{l+1} or n_outputs): pre-activations of the layer after hidden layer
    ``l``, so ``z[-1]`` are the output logits; ``ablated[l]``: bool mask (width_l,).
    """

    a: list[np.ndarray]
    z: list[np.ndarray]
    ablated: list[np.ndarray]

    def copy(self) -> _State:
        return _State(
            [x.copy() for x in self.a], [x.copy() for x in self.z], [x.copy() for x in self.ablated]
        )


def _forward_state(
    net: Network, X: np.ndarray, units: np.ndarray, values: list[np.ndarray]
) -> _State:
    """Forward pass from scratch with ``units`` (k, 2) replaced by ``values[layer]``."""
    act = HIDDEN_ACTIVATIONS[net.activation]
    state = _State([], [], [np.zeros(w, dtype=bool) for w in net.hidden_sizes])
    h = X
    for layer in range(net.n_hidden_layers):
        h = act(h @ net.coefs[layer] + net.intercepts[layer])
        mask = state.ablated[layer]
        mask[units[units[:, 0] == layer, 1]] = True
        h[:, mask] = values[layer][mask]
        state.a.append(h)
        state.z.append(h @ net.coefs[layer + 1] + net.intercepts[layer + 1])
    return state


SPARSE_ROWS = 0.5
"""Recompute only the changed rows when they are at most this share of all rows."""


def _changed_rows(delta: np.ndarray) -> np.ndarray | slice:
    """Rows of ``delta`` (n, k) with a nonzero entry, or every row when most are."""
    rows = np.flatnonzero(delta.any(axis=1))
    return rows if len(rows) <= SPARSE_ROWS * len(delta) else slice(None)


def _ablate_more(net: Network, state: _State, units: np.ndarray, values: list[np.ndarray]) -> None:
    """Ablate ``units`` (k >= 1, 2) not yet ablated, updating ``state`` in place.

    The earliest layer involved updates the next pre-activations by a rank-k term; the
    layers after it are recomputed with their ablated columns held at their values, only
    on the rows whose pre-activations changed (all rows from a layer with new units on).
    """
    act = HIDDEN_ACTIVATIONS[net.activation]
    first = int(units[:, 0].min())
    new = units[units[:, 0] == first, 1]
    state.ablated[first][new] = True
    delta = values[first][new] - state.a[first][:, new]
    rows = _changed_rows(delta)
    state.z[first][rows] += delta[rows] @ net.coefs[first + 1][new, :]
    state.a[first][:, new] = values[first][new]
    for layer in range(first + 1, net.n_hidden_layers):
        new = units[units[:, 0] == layer, 1]
        if len(new):
            rows = slice(None)
        mask = state.ablated[layer]
        mask[new] = True
        h = act(state.z[layer - 1][rows])
        if np.may_share_memory(h, state.z[layer - 1]):  # identity: keep pre-activations intact
            h = h.copy()
        h[:, mask] = values[layer][mask]
        state.a[layer][rows] = h
        state.z[layer][rows] = h @ net.coefs[layer + 1] + net.intercepts[layer + 1]


def _evaluate(net: Network, state: _State, y_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class index and per-row loss, each of shape (n_samples,)."""
    prob = output_probabilities(state.z[-1], net.out_activation)
    return predicted_index(prob), sample_log_loss(prob, y_index)


# --------------------------------------------------------------------------- joint / cumulative


def ablate_joint(
    net: Network,
    X: np.ndarray,
    y: np.ndarray,
    units: Sequence[tuple[int, int]] | np.ndarray,
    mode: str = "zero",
    reference: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Ablate a set of hidden units (any layers) all at once and measure on ``(X, y)``.

    Parameters
    ----------
    net : Network
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,) — class labels
    units : sequence of (layer, unit) or ndarray of shape (k, 2), int — may be empty
    mode : str — one of :data:`sweep.ablate.NEURON_MODES`
    reference : ndarray of shape (n_ref, n_features), optional — for ``mode='mean'``

    Returns
    -------
    dict of str to ndarray
        The :data:`sweep.metrics.METRIC_COLUMNS` (accuracy_base, accuracy, effect,
        loss_base, loss, broken, fixed, ...) for this one ablation, each an array of
        length 1 (``class_effect`` of shape (1, n_classes)).
    """
    units = as_units(units, net)
    y_index = class_index(net, y)
    values = unit_replacements(net, mode, reference)
    base_pred, base_loss = _evaluate(net, _forward_state(net, X, units[:0], values), y_index)
    pred, loss = _evaluate(net, _forward_state(net, X, units, values), y_index)
    return ablation_metrics(y_index, base_pred, base_loss, pred[None], loss[None], len(net.classes))


def _check_ks(ks: np.ndarray | None, n_units: int) -> np.ndarray:
    """Sorted unique prefix lengths in ``[0, n_units]``; every length when ``None``."""
    if ks is None:
        return np.arange(n_units + 1, dtype=np.int64)
    ks = np.unique(np.asarray(ks, dtype=np.int64))
    if ks.size and (ks[0] < 0 or ks[-1] > n_units):
        raise ValueError(f"prefix lengths must lie in 0..{n_units}")
    return ks


def _curve_from_state(
    net: Network,
    state: _State,
    y_index: np.ndarray,
    order: np.ndarray,
    ks: np.ndarray,
    values: list[np.ndarray],
) -> dict[str, np.ndarray]:
    """Cumulative curve from an unablated ``state`` (modified in place)."""
    accuracy = np.empty(len(ks))
    loss = np.empty(len(ks))
    done = 0
    for i, k in enumerate(ks):
        if k > done:
            _ablate_more(net, state, order[done:k], values)
            done = int(k)
        pred, row_loss = _evaluate(net, state, y_index)
        accuracy[i] = np.mean(pred == y_index)
        loss[i] = row_loss.mean()
    return {"k": ks, "accuracy": accuracy, "loss": loss}


def cumulative_curve(
    net: Network,
    X: np.ndarray,
    y: np.ndarray,
    order: Sequence[tuple[int, int]] | np.ndarray,
    ks: np.ndarray | None = None,
    mode: str = "zero",
    reference: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Accuracy and loss after ablating the first ``k`` units of ``order``, for each ``k``.

    Computed incrementally (see the module docstring), not from scratch per prefix.

    Parameters
    ----------
    net : Network
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,) — class labels
    order : sequence of (layer, unit) or ndarray of shape (K, 2), int — no repeats
    ks : ndarray of shape (n_points,), int, optional — prefix lengths in ``0..K``
        (sorted and deduplicated); default every ``k`` in ``0..K``
    mode : str — one of :data:`sweep.ablate.NEURON_MODES`
    reference : ndarray of shape (n_ref, n_features), optional — for ``mode='mean'``

    Returns
    -------
    dict of str to ndarray of shape (n_points,)
        ``k`` (int64), ``accuracy``, ``loss`` (mean log-loss), and ``accuracy_base``
        (the unablated accuracy, repeated).
    """
    order = as_units(order, net)
    y_index = class_index(net, y)
    values = unit_replacements(net, mode, reference)
    state = _forward_state(net, X, order[:0], values)
    base_pred, _ = _evaluate(net, state, y_index)
    curve = _curve_from_state(net, state, y_index, order, _check_ks(ks, len(order)), values)
    curve["accuracy_base"] = np.full(len(curve["k"]), np.mean(base_pred == y_index))
    return curve


# --------------------------------------------------------------------------- orders


def scope_units(net: Network, scope: str) -> np.ndarray:
    """The units a scope covers, shape (m, 2), sorted by (layer, unit).

    Parameters
    ----------
    scope : str — ``"network"`` (every hidden unit) or ``"layer<l>"`` (hidden layer ``l``)
    """
    sizes = net.hidden_sizes
    if scope == "network":
        layers = range(len(sizes))
    elif scope.startswith("layer") and scope[5:].isdigit() and int(scope[5:]) < len(sizes):
        layers = [int(scope[5:])]
    else:
        raise ValueError(
            f"unknown scope {scope!r}; expected 'network' or 'layer0'..'layer{len(sizes) - 1}'"
        )
    return np.array([(layer, u) for layer in layers for u in range(sizes[layer])], dtype=np.int64)


def _lookup(
    table: Mapping[str, Any] | pd.DataFrame | None, column: str, units: np.ndarray, what: str
) -> np.ndarray:
    """``table[column]`` for each unit (m, 2), matched on the table's layer and unit columns."""
    if table is None:
        raise ValueError(f"this order needs {what} with a {column!r} column")
    frame = pd.DataFrame({c: np.asarray(table[c]) for c in ("layer", "unit", column)})
    series = frame.set_index(["layer", "unit"])[column]
    found = series.reindex(pd.MultiIndex.from_arrays([units[:, 0], units[:, 1]])).to_numpy(float)
    if np.isnan(found).any():
        raise ValueError(f"{what} lack a {column!r} value for some units of the scope")
    return found


KeyFunction = Callable[[np.ndarray, Any, Any, np.random.Generator], np.ndarray]
"""``key(units (m, 2), stats, effects, rng) -> (m,)``: units are ablated by ascending key."""


def _random_key(
    units: np.ndarray, stats: Any, effects: Any, rng: np.random.Generator
) -> np.ndarray:
    return rng.permutation(len(units)).astype(float)


def _column_key(source: str, column: str, high_first: bool) -> KeyFunction:
    sign = -1.0 if high_first else 1.0

    def key(units: np.ndarray, stats: Any, effects: Any, rng: np.random.Generator) -> np.ndarray:
        table = stats if source == "stats" else effects
        return sign * _lookup(table, column, units, source)

    return key


STAT_ORDER_COLUMNS: tuple[str, ...] = (
    "mean_activation",
    "activation_rate",
    "selectivity",
    "entropy",
    "mutual_information",
    "kl_selectivity",
)
"""Unit-statistic columns (:func:`sweep.unitstats.unit_statistics`) that orders can use."""

ORDER_KEYS: dict[str, KeyFunction] = {
    "random": _random_key,
    "effect_high": _column_key("effects", "effect", True),
    "effect_low": _column_key("effects", "effect", False),
    **{
        f"{c}_{d}": _column_key("stats", c, d == "high")
        for c in STAT_ORDER_COLUMNS
        for d in ("high", "low")
    },
}
"""Order names to key functions. ``random``: a uniformly random permutation;
``effect_high`` / ``effect_low``: by single-ablation effect (high first removes the most
harmful units first, low first the most important ones); ``<statistic>_high`` /
``<statistic>_low``: by a unit statistic, high or low value first."""


def make_order(
    kind: str,
    net: Network,
    stats: Mapping[str, Any] | pd.DataFrame | None = None,
    effects: Mapping[str, Any] | pd.DataFrame | None = None,
    scope: str = "network",
    seed: int = 0,
    repetition: int = 0,
) -> np.ndarray:
    """An ablation order of the units of a scope.

    Parameters
    ----------
    kind : str — a key of :data:`ORDER_KEYS`
    net : Network
    stats : mapping or DataFrame with ``layer``, ``unit`` and statistic columns, optional
        (e.g. the output of :func:`sweep.unitstats.unit_statistics`); needed by statistic orders
    effects : mapping or DataFrame with ``layer``, ``unit``, ``effect``, optional
        (single-neuron sweep rows of one mode and split); needed by effect orders
    scope : str — ``"network"`` or ``"layer<l>"``
    seed, repetition : int — the random order of repetition ``r`` is the permutation drawn
        by ``numpy.random.default_rng([seed, r])``; its prefixes are the nested random sets

    Returns
    -------
    ndarray of shape (m, 2), int64
        ``(layer, unit)`` rows, ties broken by ascending (layer, unit).
    """
    if kind not in ORDER_KEYS:
        raise ValueError(f"unknown order {kind!r}; expected one of {sorted(ORDER_KEYS)}")
    units = scope_units(net, scope)
    rng = np.random.default_rng([seed, repetition])
    key = ORDER_KEYS[kind](units, stats, effects, rng)
    return units[np.lexsort((units[:, 1], units[:, 0], key))]


def grid(n_units: int, n_points: int | None) -> np.ndarray:
    """Prefix lengths: every ``k`` in ``0..n_units`` or about ``n_points`` evenly spaced ones
    (always including 0 and ``n_units``), int64 of shape (<= n_points,)."""
    if n_points is None or n_points > n_units:
        return np.arange(n_units + 1, dtype=np.int64)
    return np.unique(np.linspace(0, n_units, max(n_points, 2)).round().astype(np.int64))


def cumulative_rows(
    net: Network,
    X: np.ndarray,
    y: np.ndarray,
    orders: Sequence[str],
    *,
    scopes: Sequence[str] = ("network",),
    mode: str = "zero",
    repetitions: int = 1,
    seed: int = 0,
    stats: Mapping[str, Any] | pd.DataFrame | None = None,
    effects: Mapping[str, Any] | pd.DataFrame | None = None,
    n_points: int | None = None,
    reference: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Cumulative-ablation curves of several orders and scopes, as ``kind=cumulative`` columns.

    The unablated forward pass is computed once and shared by every curve. ``random`` is
    drawn ``repetitions`` times (repetition ``0..R-1``); every other order is deterministic
    and has the single repetition 0.

    Parameters
    ----------
    net : Network
    X : ndarray of shape (n_samples, n_features) — the split measured (the pipeline adds
        its name as the ``split`` column)
    y : ndarray of shape (n_samples,) — class labels
    orders : sequence of str — keys of :data:`ORDER_KEYS`
    scopes : sequence of str — ``"network"`` and/or ``"layer<l>"``
    mode : str — one of :data:`sweep.ablate.NEURON_MODES`
    repetitions, seed : int — see :func:`make_order`
    stats, effects : see :func:`make_order` (chosen on the validation split; curves are
        then measured on the split given here)
    n_points : int, optional — prefix lengths per curve (:func:`grid`); default every ``k``
    reference : ndarray of shape (n_ref, n_features), optional — for ``mode='mean'``

    Returns
    -------
    dict of str to ndarray of shape (n_rows,)
        :data:`CUMULATIVE_COLUMNS`: ``mode``, ``scope``, ``order`` (object str),
        ``repetition``, ``k`` (int64), ``accuracy``, ``loss``, ``accuracy_base`` (float64).
    """
    y_index = class_index(net, y)
    values = unit_replacements(net, mode, reference)
    base = _forward_state(net, X, np.empty((0, 2), dtype=np.int64), values)
    base_pred, _ = _evaluate(net, base, y_index)
    accuracy_base = float(np.mean(base_pred == y_index))
    parts: list[dict[str, np.ndarray]] = []
    for scope in scopes:
        for name in orders:
            for rep in range(repetitions if name == "random" else 1):
                order = make_order(name, net, stats, effects, scope, seed, rep)
                curve = _curve_from_state(
                    net, base.copy(), y_index, order, grid(len(order), n_points), values
                )
                n = len(curve["k"])
                parts.append(
                    {
                        "mode": np.full(n, mode, dtype=object),
                        "scope": np.full(n, scope, dtype=object),
                        "order": np.full(n, name, dtype=object),
                        "repetition": np.full(n, rep, dtype=np.int64),
                        **curve,
                        "accuracy_base": np.full(n, accuracy_base),
                    }
                )
    return {c: np.concatenate([p[c] for p in parts]) for c in CUMULATIVE_COLUMNS}
