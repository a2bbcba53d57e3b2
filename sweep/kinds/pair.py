"""``kind=pair``: every unordered pair of a set of hidden units removed together, with each
pair's interaction against its two single effects (``ablation=pairs``).

The units are every hidden unit of ``ablation.layers`` (all layers when null), or the
``ablation.top_k`` of them with the largest |effect| in this model's neuron sweep on val.
A shard is a range of pairs in order (first unit, then second), cut at first units and
balanced by cost: an early first unit has more partners.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

from sweep.kernels import DRAW_COLUMNS, METRIC_SETS, PAIR_COLUMNS, ablate_pairs, pair_count
from sweep.kernels.engine import ranges
from sweep.kernels.screen import gain_tables
from sweep.kinds.base import (
    NEEDS_VAL,
    RESAMPLE_SETTINGS,
    Ablation,
    AblationSettings,
    Columns,
    DataArrays,
    ModelInputs,
    ModeSettings,
    Plan,
    PlanInputs,
    ResultKind,
    base_state,
    check_layers,
    measured_splits,
    over_draws,
    per_process,
    replacements,
    validation_rows,
)
from sweep.kinds.neuron import neuron_cost
from sweep.results.shards import Shard
from sweep.results.store import ResultStore

if TYPE_CHECKING:
    from sweep.spec import RunSpec


@dataclass(frozen=True)
class PairSettings(ModeSettings, AblationSettings):
    """``ablation=pairs``: ``modes`` and ``metrics`` as for neurons (``accuracy`` by default),
    ``layers`` (hidden layers whose units are paired, within and across them; all when null),
    ``top_k`` (only the k units with the largest |effect| in this model's neuron sweep on val;
    needs that sweep and a val split), ``shard_cost`` (multiply-adds per shard)."""

    kind: str = "pairs"
    metrics: str = field(default="accuracy", metadata={"choices": METRIC_SETS})
    layers: Optional[list[int]] = None
    top_k: Optional[int] = field(default=None, metadata={"interval": (2, None, True)})
    shard_cost: float = field(default=1e11, metadata={"interval": (0.0, None, False)})

    def check(self, hidden_sizes: tuple[int, ...], has_val: bool) -> None:
        check_layers(self.layers, len(hidden_sizes), "hidden layers")
        if self.top_k is None:
            return
        if not has_val:
            raise ValueError(f"ablation.top_k chooses units by their effect on the validation split, but {NEEDS_VAL}")
        available = sum(hidden_sizes[l] for l in (range(len(hidden_sizes)) if self.layers is None else self.layers))
        if self.top_k > available:
            raise ValueError(f"ablation.top_k={self.top_k} exceeds the {available} units of the chosen layers")


def chosen_units(
    hidden_sizes: tuple[int, ...], layers: list[int] | None, top_k: int | None, effects: pd.DataFrame | None
) -> np.ndarray:
    """The paired units, ``(layer, unit)`` rows sorted, shape (m, 2).

    Parameters
    ----------
    effects : DataFrame, optional — this model's neuron-sweep rows on val (``layer, unit,
        effect``), for ``top_k``: the k largest |effect| (ties: lower ``(layer, unit)``)
    """
    chosen = range(len(hidden_sizes)) if layers is None else sorted(set(layers))
    units = np.array([(l, u) for l in chosen for u in range(hidden_sizes[l])], dtype=np.int64).reshape(-1, 2)
    if top_k is None:
        return units
    rows = effects[effects["layer"].isin(list(chosen))]
    layer, unit, size = (rows[c].to_numpy() for c in ("layer", "unit", "effect"))
    best = np.lexsort((unit, layer, -np.abs(size)))[:top_k]
    picked = np.column_stack([layer[best], unit[best]]).astype(np.int64)
    return picked[np.lexsort((picked[:, 1], picked[:, 0]))]


def first_units(n_units: int, start: int, stop: int) -> tuple[int, int]:
    """The positions ``[first, last)`` of the first units of pairs ``[start, stop)``.

    Raises
    ------
    ValueError
        If the range is not cut at first units.
    """
    offsets = np.cumsum([0, *(n_units - 1 - i for i in range(n_units))])
    first, last = np.searchsorted(offsets, [start, stop])
    if offsets[first] != start or offsets[last] != stop:
        raise ValueError(f"pairs [{start}, {stop}) are not cut at first units of {n_units} units")
    return int(first), int(last)


def plan(cfg: RunSpec, model: PlanInputs, store: ResultStore) -> Plan:
    settings = cfg.ablation
    splits = measured_splits(settings, model.sizes)
    effects = {mode: validation_rows(store, model, mode) for mode in settings.modes} if settings.top_k else {}
    shards = []
    for mode in settings.modes:
        units = chosen_units(model.net.hidden_sizes, settings.layers, settings.top_k, effects.get(mode))
        for split, n_samples in splits.items():
            pair_cost = np.array([neuron_cost(model.shape, int(l), n_samples) for l, _ in units])
            costs = np.cumsum(pair_cost[::-1])[::-1] - pair_cost  # of each first unit's partners
            for a, b in ranges(costs, settings.shard_cost):
                start, stop = pair_count(len(units), 0, a), pair_count(len(units), 0, b)
                if stop > start:
                    shards.append(Shard(model.run, "pair", mode, split, -1, start, stop, cost=float(costs[a:b].sum())))
    return Plan(shards, ModelInputs(model.net, settings, effects=effects))


def compute(shard: Shard, model: ModelInputs, data: DataArrays) -> Columns:
    """Columns of a pair shard: pairs ``[start, stop)`` of the chosen units, in order."""
    settings = model.settings
    net = model.net
    units = chosen_units(net.hidden_sizes, settings.layers, settings.top_k, model.effects.get(shard.mode))
    X, y = data.splits[shard.split]
    tables = {}
    if settings.metrics == "accuracy":
        tables = per_process((model.fingerprint, "gain_tables"),
                             lambda: {l: gain_tables(net, l) for l in range(len(net.hidden_sizes))})
    return over_draws(shard, model, replacements(model, data, shard.mode), len(y), lambda values: ablate_pairs(
        net, X, y, units, *first_units(len(units), shard.start, shard.stop), shard.mode,
        metrics=settings.metrics, base=base_state(model, data, shard.split), values=values, tables=tables,
    ))


PAIR_KEYS: list[str] = ["dataset", "model", "seed", "mode", "split"]
"""Columns identifying one pair sweep."""


def pair_categories(df: pd.DataFrame) -> pd.DataFrame:
    """Pairs per sweep: ``redundant`` (removing both is worse than the sum of the single
    effects: interaction < 0), ``additive`` (= 0), ``better_than_sum`` (> 0: removing both costs
    less, or gains more, than the sum), and ``cancelling`` (removing both is better than removing either alone)."""
    keys = [k for k in PAIR_KEYS if k in df.columns]
    columns = [*keys, "pairs", "redundant", "additive", "better_than_sum", "cancelling"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    flags = df.assign(
        pairs=1,
        redundant=df["interaction"] < 0,
        additive=df["interaction"] == 0,
        better_than_sum=df["interaction"] > 0,
        cancelling=df["effect"] > np.maximum(df["effect_a"], df["effect_b"]),
    )
    return flags.groupby(keys, observed=True)[columns[len(keys):]].sum().astype("int64").reset_index()


KIND = ResultKind(
    name="pair",
    columns={"mode": "str", "split": "str", **PAIR_COLUMNS, **DRAW_COLUMNS},
    constants=("mode", "split"),
    settings=("metrics", "layers", "top_k"),
    added_settings=RESAMPLE_SETTINGS,
    plan=plan,
    compute=compute,
    summary=pair_categories,
    summary_title="unit pairs per seed: redundant (interaction < 0) / additive / better than the sum (> 0), and "
    "cancelling (both removed beats either alone):",
)

ABLATION = Ablation("pairs", PairSettings, (KIND,), "every pair of hidden units removed together, with interactions")
