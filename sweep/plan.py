"""Shard planning: the work of a sweep as a table of coarse, deterministic shards.

A shard is a contiguous range of ablations of one kind, in one layer, of one trained
model, measured in one mode on one split. Its id depends only on what it computes, never
on the number of workers, so a rerun finds the same shards and the results are the same
whatever the cluster.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

MIN_UNITS_PER_SHARD = 64
"""Ray costs ~2 ms per task; shards of fewer than ~50 neurons lose to a single process."""


@dataclass(frozen=True)
class RunKey:
    """One trained model: a (dataset, model, seed) triple; ``dataset`` is the partition tag."""

    dataset: str
    model: str
    seed: int


@dataclass(frozen=True)
class NetworkShape:
    """What the planner needs to know of a trained network.

    Attributes
    ----------
    layer_sizes : tuple of int
        ``(n_features, hidden_1, ..., hidden_L, n_outputs)``.
    """

    layer_sizes: tuple[int, ...]

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return self.layer_sizes[1:-1]

    def downstream_flops(self, layer: int) -> int:
        """Multiply-adds per row to recompute from hidden layer ``layer`` to the output."""
        sizes = self.layer_sizes
        return sum(sizes[i] * sizes[i + 1] for i in range(layer + 1, len(sizes) - 1))


@dataclass(frozen=True)
class Shard:
    """A contiguous range ``[start, stop)`` of ablations.

    Attributes
    ----------
    kind : str
        ``neuron`` (``layer`` is the hidden layer, the range indexes its units) or
        ``synapse`` (``layer`` is the weight matrix, the range indexes its selected synapses).
    selection : str
        Tag of the synapse selection (``all`` or a digest); ``-`` for neurons.
    cost : float
        Estimated multiply-adds of the whole shard (scheduling only: not part of the id
        nor of equality).
    """

    run: RunKey
    kind: str
    mode: str
    split: str
    layer: int
    start: int
    stop: int
    selection: str = "-"
    cost: float = field(default=0.0, compare=False)

    @property
    def id(self) -> str:
        """Deterministic part name: what it computes, nothing about where."""
        return f"{self.kind}-{self.mode}-{self.split}-{self.selection}-l{self.layer}-{self.start:07d}-{self.stop:07d}"

    @property
    def n_rows(self) -> int:
        return self.stop - self.start


def _shard_ranges(count: int, unit_cost: float, shard_cost: float) -> list[tuple[int, int]]:
    """Split ``range(count)`` into near-equal ranges of about ``shard_cost`` each."""
    per_shard = max(MIN_UNITS_PER_SHARD, int(shard_cost // max(unit_cost, 1.0)))
    n_shards = max(1, math.ceil(count / per_shard))
    edges = [round(i * count / n_shards) for i in range(n_shards + 1)]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def neuron_cost(shape: NetworkShape, layer: int, n_samples: int) -> float:
    """Estimated multiply-adds to ablate one unit of hidden layer ``layer``."""
    return float(n_samples * max(shape.downstream_flops(layer), 1))


SYNAPSE_WORK: dict[str, float] = {"accuracy": 1e-3, "full": 0.2}
"""Work of one synapse relative to one neuron of the same layer, per metric set. ``full``
recomputes every row where the source is active (about a fifth); ``accuracy`` lets the
kernel's margin bound prove most rows unchanged: measured, all 386,120 synapses of
NN_392_196 on 10,000 MNIST rows take about as long as 4 of its first-layer neurons."""


def synapse_cost(shape: NetworkShape, layer: int, n_samples: int, metrics: str = "accuracy") -> float:
    """Estimated multiply-adds to ablate one synapse of weight matrix ``layer``."""
    return SYNAPSE_WORK[metrics] * n_samples * max(shape.downstream_flops(layer), 1)


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
        for a, b in _shard_ranges(shape.hidden_sizes[layer], unit, shard_cost)
    ]


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
        for a, b in _shard_ranges(count, unit, shard_cost)
    ]

