"""``kind=cumulative``: accuracy after removing the first k units of an order, for every k
(``ablation=cumulative``, after its ``unit`` phase)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from sweep.kernels import (
    CUMULATIVE_COLUMNS,
    ORDER_KEYS,
    QUANTIZERS,
    cumulative_rows,
    grid,
    scope_units,
)
from sweep.kinds import unit
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
    measured_splits,
    validation_rows,
)
from sweep.results.shards import Shard
from sweep.results.store import ResultStore

if TYPE_CHECKING:
    from sweep.spec import RunSpec


EVERY_LAYER = "layers"
"""The scope that stands for every hidden layer on its own (``layer0``, ``layer1``, ...)."""


def expand_scopes(scopes: list[str], n_layers: int) -> list[str]:
    """``scopes`` with :data:`EVERY_LAYER` replaced by ``layer0 .. layer<n_layers-1>``, each once."""
    layers = [f"layer{i}" for i in range(n_layers)]
    return list(dict.fromkeys(s for scope in scopes for s in (layers if scope == EVERY_LAYER else [scope])))


@dataclass(frozen=True)
class CumulativeSettings(ModeSettings, AblationSettings):
    """``ablation=cumulative``: ``orders`` (random; effect_high/low, which need this model's
    neuron sweep on val; ``<statistic>_high/low``), ``scopes`` (network, layer<i>, or layers:
    each hidden layer),
    ``repetitions`` of the random order, ``k_points`` (0: every k), and the ``quantizer`` /
    ``n_bins`` of the information statistics; ``resample_draws`` and ``resample_seed`` as for
    neurons (:class:`~sweep.kinds.base.ModeSettings`)."""

    kind: str = "cumulative"
    orders: list[str] = field(default_factory=lambda: ["random"], metadata={"choices": tuple(ORDER_KEYS)})
    scopes: list[str] = field(default_factory=lambda: ["network"])
    repetitions: int = field(default=5, metadata={"interval": (1, None, True)})
    k_points: int = field(default=0, metadata={"interval": (0, None, True)})
    quantizer: str = field(default="binary", metadata={"choices": tuple(QUANTIZERS)})
    n_bins: int = field(default=2, metadata={"interval": (2, None, True)})

    def check(self, hidden_sizes: tuple[int, ...], has_val: bool) -> None:
        scopes = ["network", EVERY_LAYER, *(f"layer{i}" for i in range(len(hidden_sizes)))]
        for scope in self.scopes:
            if scope not in scopes:
                raise ValueError(f"ablation.scopes has {scope!r}; choose from {', '.join(scopes)}")
        by_effect = [order for order in self.orders if order.startswith("effect_")]
        if by_effect and not has_val:
            raise ValueError(f"ablation.orders has {by_effect[0]}, chosen on the validation split, but {NEEDS_VAL}")


def plan(cfg: RunSpec, model: PlanInputs, store: ResultStore) -> Plan:
    settings = cfg.ablation
    stats = store.read_model_rows("unit", model.run, model.weights)
    stats = stats[stats["split"] == unit.statistics_split(model.sizes)]
    by_effect = any(order.startswith("effect_") for order in settings.orders)
    effects = {mode: validation_rows(store, model, mode) for mode in settings.modes} if by_effect else {}
    shards = []
    for split in measured_splits(settings, model.sizes):
        for mode in settings.modes:
            for scope in expand_scopes(settings.scopes, len(model.net.hidden_sizes)):
                n_k = len(grid(len(scope_units(model.net, scope)), settings.k_points or None))
                for order in settings.orders:
                    rows = n_k * (settings.repetitions if order == "random" else 1)
                    shards.append(Shard(model.run, "cumulative", mode, split, -1, 0, rows, f"{scope}.{order}"))
    return Plan(shards, ModelInputs(model.net, settings, unit_stats=stats, effects=effects))


def compute(shard: Shard, model: ModelInputs, data: DataArrays) -> Columns:
    """The curve(s) of one order in one scope; ``shard.selection`` is ``"<scope>.<order>"``."""
    X, y = data.splits[shard.split]
    scope, order = shard.selection.split(".")
    settings = model.settings
    return cumulative_rows(
        model.net, X, y, [order], scopes=[scope], mode=shard.mode, repetitions=settings.repetitions,
        seed=shard.run.seed, stats=model.unit_stats, effects=model.effects.get(shard.mode),
        n_points=settings.k_points or None, reference=data.reference, draws=settings.resample_draws,
        resample_seed=settings.seed_for(shard.run.seed),
    )


def curve_areas(df: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy over each cumulative curve (its normalised area), per seed, scope and order."""
    keys = ["dataset", "model", "seed", "mode", "split", "scope", "order"]
    return df.groupby(keys, observed=True)["accuracy"].mean().rename("mean_accuracy").reset_index()


KIND = ResultKind(
    name="cumulative",
    columns={"mode": "str", "split": "str", **CUMULATIVE_COLUMNS},
    constants=("mode", "split"),
    settings=("quantizer", "n_bins", "repetitions", "k_points"),
    added_settings=RESAMPLE_SETTINGS,
    plan=plan,
    compute=compute,
    summary=curve_areas,
    summary_title="mean accuracy over each cumulative-ablation curve (higher: the order hurts less):",
)

ABLATION = Ablation(
    "cumulative", CumulativeSettings, (unit.KIND, KIND),
    "units removed cumulatively in orders (random, by effect, by unit statistic)",
)
