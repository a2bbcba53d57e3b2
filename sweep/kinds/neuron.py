"""``kind=neuron``: every hidden unit of the chosen layers removed on its own (``ablation=neurons``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import pandas as pd

from sweep.kernels import (
    DRAW_COLUMNS,
    METRIC_COLUMNS,
    METRIC_SETS,
    NEURON_COLUMNS,
    ablate_neurons,
)
from sweep.kernels.torchnet import PRECISIONS, TorchNetwork, ablate_torch_units
from sweep.kinds.base import (
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
    replacements,
)
from sweep.results.shards import NetworkShape, RunKey, Shard, shard_ranges
from sweep.results.store import ResultStore

if TYPE_CHECKING:
    from sweep.spec import RunSpec


@dataclass(frozen=True)
class NeuronSettings(ModeSettings, AblationSettings):
    """``ablation=neurons``: ``modes`` (:data:`~sweep.kernels.NEURON_MODES`; zero: the
    paper's), ``metrics`` (full: every column exact; accuracy: loss NaN, provably unchanged
    rows skipped), ``layers`` (hidden layers, all when null), ``resample_draws`` and
    ``resample_seed`` (a per-image mode's draws, averaged, and their seed:
    :class:`~sweep.kinds.base.ModeSettings`), ``torch_precision`` (a torch model's
    resumed passes: :data:`~sweep.kernels.torchnet.PRECISIONS`; auto: float32 on CUDA,
    float64 on CPU; float32 re-settles its near-ties in float64, so predictions are the same
    and losses agree to float32 rounding)."""

    kind: str = "neurons"
    metrics: str = field(default="full", metadata={"choices": METRIC_SETS})
    layers: Optional[list[int]] = None
    torch_precision: str = field(default="auto", metadata={"choices": PRECISIONS})

    def check(self, hidden_sizes: tuple[int, ...], has_val: bool) -> None:
        check_layers(self.layers, len(hidden_sizes), "hidden layers")


def neuron_cost(shape: NetworkShape, layer: int, n_samples: int) -> float:
    """Estimated multiply-adds to ablate one unit of hidden layer ``layer``."""
    return float(n_samples * max(shape.downstream_flops(layer), 1))


def plan_neurons(
    run: RunKey, shape: NetworkShape, layers: list[int] | None, modes: list[str],
    splits: dict[str, int], shard_cost: float,
) -> list[Shard]:
    """Shards covering every unit of the chosen hidden layers, per mode and split.

    Parameters
    ----------
    splits : dict of str to int — number of rows of each split measured
    """
    chosen = range(len(shape.hidden_sizes)) if layers is None else layers
    return [
        Shard(run, "neuron", mode, split, layer, a, b, cost=(b - a) * unit)
        for split, n_samples in splits.items()
        for mode in modes
        for layer in chosen
        for unit in [neuron_cost(shape, layer, n_samples)]
        for a, b in shard_ranges(shape.hidden_sizes[layer], unit, shard_cost)
    ]


def plan(cfg: RunSpec, model: PlanInputs, store: ResultStore) -> Plan:
    settings = cfg.ablation
    splits = measured_splits(settings, model.sizes)
    shards = plan_neurons(model.run, model.shape, settings.layers, settings.modes, splits, settings.shard_cost)
    return Plan(shards, ModelInputs(model.net, settings))


def compute(shard: Shard, model: ModelInputs, data: DataArrays) -> Columns:
    """Columns of a neuron shard: each unit of ``[start, stop)`` ablated alone (a torch
    model's: each unit of unit site ``layer``, exact loss whatever ``metrics``); a per-image
    mode's ``resample_draws`` draws averaged."""
    X, y = data.splits[shard.split]
    units = np.arange(shard.start, shard.stop)
    base = base_state(model, data, shard.split)

    def measured(values: list[Any]) -> Columns:  # this layer's values alone: [replacement]
        if isinstance(model.net, TorchNetwork):
            return ablate_torch_units(model.net, X, y, shard.layer, units, shard.mode, base=base, values=values[0])
        return ablate_neurons(model.net, X, y, shard.layer, units, shard.mode, metrics=model.settings.metrics,
                              base=base, replacement=values[0])

    return over_draws(shard, model, [replacements(model, data, shard.mode)[shard.layer]], len(y), measured)


def category_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Helpful / neutral / harmful counts per (dataset, model, seed, mode, split, layer)."""
    keys = ["dataset", "model", "seed", "mode", "split", "layer"]
    if df.empty:
        return pd.DataFrame(columns=[*keys, "helpful", "neutral", "harmful"])
    category = np.select([df["effect"] < 0, df["effect"] > 0], ["helpful", "harmful"], "neutral")
    table = df.assign(category=category).pivot_table(
        index=keys, columns="category", values="effect", aggfunc="size", fill_value=0, observed=True
    )
    return table.reindex(columns=["helpful", "neutral", "harmful"], fill_value=0).reset_index()


KIND = ResultKind(
    name="neuron",
    columns={"mode": "str", "split": "str", **NEURON_COLUMNS, **METRIC_COLUMNS, **DRAW_COLUMNS},
    constants=("mode", "split"),
    settings=("metrics",),
    added_settings=(*RESAMPLE_SETTINGS, "torch_precision"),
    plan=plan,
    compute=compute,
    summary=category_counts,
    summary_title="helpful (effect < 0) / neutral (= 0) / harmful (> 0) neurons per seed and layer:",
)

ABLATION = Ablation("neurons", NeuronSettings, (KIND,), "every hidden neuron removed on its own")
