"""``kind=synapse``: single weights set to 0, every one or the chosen neurons' (``ablation=synapses``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np

from sweep.kernels import (
    METRIC_COLUMNS,
    METRIC_SETS,
    SYNAPSE_COLUMNS,
    SYNAPSE_DIRECTIONS,
    ablate_synapses,
    select_synapses,
)
from sweep.kinds.base import (
    NEEDS_VAL,
    Ablation,
    AblationSettings,
    Columns,
    DataArrays,
    ModelInputs,
    Plan,
    PlanInputs,
    ResultKind,
    base_state,
    check_layers,
    measured_splits,
    validation_rows,
)
from sweep.kinds.neuron import category_counts
from sweep.results.shards import NetworkShape, RunKey, Shard, shard_ranges
from sweep.results.store import ResultStore

if TYPE_CHECKING:
    from sweep.spec import RunSpec


@dataclass(frozen=True)
class SynapseSettings(AblationSettings):
    """``ablation=synapses``: ``layers`` (weight matrices, the last is hidden -> output; all
    when null), ``top_harmful`` (only the synapses of the k most harmful neurons of this
    model's neuron sweep, chosen on val) in ``direction``, ``metrics`` (accuracy by default)."""

    kind: str = "synapses"
    metrics: str = field(default="accuracy", metadata={"choices": METRIC_SETS})
    layers: Optional[list[int]] = None
    top_harmful: Optional[int] = field(default=None, metadata={"interval": (1, None, True)})
    direction: str = field(default="both", metadata={"choices": SYNAPSE_DIRECTIONS})

    def check(self, hidden_sizes: tuple[int, ...], has_val: bool) -> None:
        check_layers(self.layers, len(hidden_sizes) + 1, "weight matrices")
        if self.top_harmful and not has_val:
            raise ValueError(f"ablation.top_harmful chooses neurons on the validation split, but {NEEDS_VAL}")


SYNAPSE_WORK: dict[str, float] = {"accuracy": 1e-3, "full": 0.2}
"""Work of one synapse relative to one neuron of the same layer, per metric set. ``full``
recomputes every row where the source is active (about a fifth); ``accuracy`` lets the
kernel's margin bound prove most rows unchanged: measured, all 386,120 synapses of
NN_392_196 on 10,000 MNIST rows take about as long as 4 of its first-layer neurons."""


def synapse_cost(shape: NetworkShape, layer: int, n_samples: int, metrics: str = "accuracy") -> float:
    """Estimated multiply-adds to ablate one synapse of weight matrix ``layer``."""
    return SYNAPSE_WORK[metrics] * n_samples * max(shape.downstream_flops(layer), 1)


def plan_synapses(
    run: RunKey, shape: NetworkShape, counts: dict[int, int], selection: str,
    splits: dict[str, int], shard_cost: float, metrics: str = "accuracy",
) -> list[Shard]:
    """Shards covering the selected synapses of each weight matrix.

    Parameters
    ----------
    counts : dict of int to int — number of selected synapses per weight matrix
    selection : str — tag of the selection (``all`` or a digest)
    metrics : str — the kernel's metric set, a key of :data:`SYNAPSE_WORK`
    """
    return [
        Shard(run, "synapse", "zero", split, layer, a, b, selection, cost=(b - a) * unit)
        for split, n_samples in splits.items()
        for layer, count in sorted(counts.items())
        for unit in [synapse_cost(shape, layer, n_samples, metrics)]
        for a, b in shard_ranges(count, unit, shard_cost)
    ]


def harmful_units(store: ResultStore, model: PlanInputs, k: int) -> list[tuple[int, int]]:
    """The ``k`` most harmful (layer, unit) pairs of a model by zero-mode effect on val (only
    units whose removal raises accuracy: fewer than ``k`` when fewer are harmful)."""
    df = validation_rows(store, model, "zero")
    chosen = df[df["effect"] > 0].sort_values(["effect", "layer", "unit"], ascending=[False, True, True])
    return [(int(r.layer), int(r.unit)) for r in chosen.head(k).itertuples()]


def _digest(synapses: dict[int, tuple[np.ndarray, np.ndarray]]) -> str:
    h = hashlib.sha256()
    for layer in sorted(synapses):
        h.update(np.int64(layer).tobytes())
        for array in synapses[layer]:
            h.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return h.hexdigest()[:10]


def plan(cfg: RunSpec, model: PlanInputs, store: ResultStore) -> Plan:
    settings = cfg.ablation
    neurons = harmful_units(store, model, settings.top_harmful) if settings.top_harmful else None
    selection = select_synapses(model.net, layers=settings.layers, neurons=neurons, direction=settings.direction)
    synapses = {layer: (sources, targets) for layer, sources, targets in selection}
    tag = "all" if neurons is None and settings.layers is None else _digest(synapses)
    counts = {layer: len(sources) for layer, (sources, _) in synapses.items()}
    splits = measured_splits(settings, model.sizes)
    shards = plan_synapses(model.run, model.shape, counts, tag, splits, settings.shard_cost, settings.metrics)
    return Plan(shards, ModelInputs(model.net, settings, synapses=synapses))


def compute(shard: Shard, model: ModelInputs, data: DataArrays) -> Columns:
    """Columns of a synapse shard: each selected synapse of ``[start, stop)`` set to 0."""
    X, y = data.splits[shard.split]
    sources, targets = model.synapses[shard.layer]
    window = slice(shard.start, shard.stop)
    return ablate_synapses(
        model.net, X, y, shard.layer, sources[window], targets[window],
        metrics=model.settings.metrics, base=base_state(model, data, shard.split),
    )


KIND = ResultKind(
    name="synapse",
    columns={"mode": "str", "split": "str", "selection": "str", **SYNAPSE_COLUMNS, **METRIC_COLUMNS},
    constants=("mode", "split", "selection"),
    settings=("metrics",),
    plan=plan,
    compute=compute,
    summary=category_counts,
    summary_title="helpful (effect < 0) / neutral (= 0) / harmful (> 0) synapses per seed and weight matrix:",
)

ABLATION = Ablation("synapses", SynapseSettings, (KIND,), "every weight (or the chosen neurons' weights) set to 0 on its own")
