"""Shards: the work of a sweep as coarse, deterministic units (each kind's planner makes them).

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
        The result kind (a key of :data:`sweep.kinds.KINDS`), e.g. ``neuron`` (``layer`` is
        the hidden layer, the range indexes its units) or ``synapse`` (``layer`` is the
        weight matrix, the range indexes its selected synapses).
    selection : str
        What the kind's rows are chosen by: the synapse selection (``all`` or a digest),
        ``<scope>.<order>`` of a cumulative curve; ``-`` for neurons.
    cost : float
        Estimated multiply-adds of the whole shard (scheduling only: not part of the id
        nor of equality).
    cut_short : bool
        The part may hold fewer rows than ``n_rows`` (a pruning path ends at its stop rule);
        ``n_rows`` is then the most it can hold. Not part of the id nor of equality.
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
    cut_short: bool = field(default=False, compare=False)

    @property
    def id(self) -> str:
        """Deterministic part name: what it computes, nothing about where."""
        return f"{self.kind}-{self.mode}-{self.split}-{self.selection}-l{self.layer}-{self.start:07d}-{self.stop:07d}"

    @property
    def n_rows(self) -> int:
        return self.stop - self.start

    def holds(self, rows: int) -> bool:
        """Whether a part of ``rows`` rows is this shard's whole output."""
        return 0 < rows <= self.n_rows if self.cut_short else rows == self.n_rows


def shard_ranges(count: int, unit_cost: float, shard_cost: float) -> list[tuple[int, int]]:
    """Split ``range(count)`` into near-equal ranges of about ``shard_cost`` each."""
    per_shard = max(MIN_UNITS_PER_SHARD, int(shard_cost // max(unit_cost, 1.0)))
    n_shards = max(1, math.ceil(count / per_shard))
    edges = [round(i * count / n_shards) for i in range(n_shards + 1)]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]
