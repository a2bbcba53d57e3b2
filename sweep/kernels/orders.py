"""Unit orders for cumulative ablation: random nested permutations, by single-ablation effect,
or by any unit statistic of :data:`sweep.kernels.unitstats.STATISTICS`, high or low first.

Pure numerics: tables of statistics or effects are read by column (a dict of arrays or a
DataFrame alike), matched on their ``layer`` and ``unit`` columns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from sweep.kernels.network import Network
from sweep.kernels.unitstats import STATISTICS

Table = Mapping[str, Any]
"""Columns by name (``layer``, ``unit`` and value columns), e.g. a dict of arrays or a DataFrame."""


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


def _lookup(table: Table | None, column: str, units: np.ndarray, what: str) -> np.ndarray:
    """``table[column]`` for each unit (m, 2), matched on the table's layer and unit columns."""
    if table is None:
        raise ValueError(f"this order needs {what} with a {column!r} column")
    keys = zip(np.asarray(table["layer"]).tolist(), np.asarray(table["unit"]).tolist())
    by_unit = dict(zip(keys, np.asarray(table[column], dtype=float)))
    found = np.array([by_unit.get(key, np.nan) for key in map(tuple, units.tolist())], dtype=float)
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


ORDER_KEYS: dict[str, KeyFunction] = {
    "random": _random_key,
    "effect_high": _column_key("effects", "effect", True),
    "effect_low": _column_key("effects", "effect", False),
    **{
        f"{c}_{d}": _column_key("stats", c, d == "high")
        for c in STATISTICS
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
    stats: Table | None = None,
    effects: Table | None = None,
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
        (e.g. the output of :func:`sweep.kernels.unitstats.unit_statistics`); needed by statistic orders
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


