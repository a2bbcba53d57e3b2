"""What a worker does with one shard: compute its rows with the kernels, write its part.

No Ray here: :mod:`sweep.execute` ships these functions to workers, and tests call them
in-process. A shard's kind selects its routine from :data:`SHARD_ROUTINES`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from sweep import ablate, cumulative, unitstats
from sweep.config import AblationConfig
from sweep.datasets import DatasetSplits, reference_inputs
from sweep.backend import network_to_numpy, to_numpy
from sweep.network import ACTIVATION_AT_ZERO, Network
from sweep.plan import Shard
from sweep.store import ResultStore, to_table


@dataclass(frozen=True)
class DataArrays:
    """The splits of one dataset, shipped to the object store once per dataset.

    Attributes
    ----------
    splits : dict of str to (ndarray, ndarray)
        ``name -> (X of shape (n, n_features), y of shape (n,))`` for ``train``, ``val``, ``test``.
    """

    splits: dict[str, tuple[np.ndarray, np.ndarray]]

    @classmethod
    def from_splits(cls, data: DatasetSplits) -> "DataArrays":
        return cls({"train": (data.X_train, data.y_train), "val": (data.X_val, data.y_val),
                    "test": (data.X_test, data.y_test)})

    @property
    def reference(self) -> np.ndarray:
        """Inputs ``mean`` ablation averages over (:func:`sweep.datasets.reference_inputs`)."""
        return reference_inputs(self.splits["train"][0], self.splits["val"][0])


@dataclass(frozen=True)
class ModelInputs:
    """One trained model and what its shards need besides the data, shipped once per model.

    Attributes
    ----------
    ablation : AblationConfig
        The run's ablation settings (cumulative orders, repetitions, quantizer...).
    synapses : dict of int to (ndarray, ndarray)
        Weight-matrix index -> (sources, targets), each of shape (n_selected,).
    unit_stats : DataFrame, optional
        ``kind=unit`` rows of this model, for statistic-ordered cumulative ablation.
    effects : dict of str to DataFrame
        Mode -> this model's neuron-sweep rows on val (``layer, unit, effect``), for effect
        orders and the ``effect`` column of unit statistics.
    fingerprint : str
        What this model's results are computed from (:func:`sweep.pipeline.fingerprint`);
        keys the per-process cache of unablated forward passes.
    """

    net: Network
    ablation: AblationConfig
    synapses: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    unit_stats: pd.DataFrame | None = None
    effects: dict[str, pd.DataFrame] = field(default_factory=dict)
    fingerprint: str = ""


CACHE_SIZE = 4
"""Per-model arrays a worker process keeps (unablated forward passes, replacement values)."""

_CACHE: dict[tuple[str, ...], Any] = {}


def _per_process(key: tuple[str, ...], compute: Callable[[], Any]) -> Any:
    """``compute()`` once per worker process and key; the oldest entry goes first."""
    if key not in _CACHE:
        while len(_CACHE) >= CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = compute()
    return _CACHE[key]


def base_state(model: ModelInputs, data: DataArrays, split: str) -> ablate.BaseState:
    """The unablated forward pass of ``model`` on ``split``, computed once per worker process
    and reused by every shard of that model and split that the process runs."""
    X, y = data.splits[split]
    return _per_process((model.fingerprint, "base", split, type(X).__module__),
                        lambda: ablate.prepare(model.net, X, y))


def replacements(model: ModelInputs, data: DataArrays, mode: str) -> list[np.ndarray]:
    """:func:`sweep.ablate.unit_replacements` of ``model`` in ``mode``, once per worker
    process (``mean`` is a forward pass over the whole reference split)."""
    net = network_to_numpy(model.net)
    return _per_process((model.fingerprint, "replacements", mode),
                        lambda: ablate.unit_replacements(net, mode, to_numpy(data.reference)))


def neuron_rows(shard: Shard, model: ModelInputs, data: DataArrays) -> dict[str, np.ndarray]:
    """Columns of a neuron shard: each unit of ``[start, stop)`` ablated alone."""
    X, y = data.splits[shard.split]
    units = np.arange(shard.start, shard.stop)
    return ablate.ablate_neurons(
        model.net, X, y, shard.layer, units, shard.mode, data.reference,
        metrics=model.ablation.metrics, base=base_state(model, data, shard.split),
        replacement=replacements(model, data, shard.mode)[shard.layer],
    )


def synapse_rows(shard: Shard, model: ModelInputs, data: DataArrays) -> dict[str, np.ndarray]:
    """Columns of a synapse shard: each selected synapse of ``[start, stop)`` set to 0."""
    X, y = data.splits[shard.split]
    sources, targets = model.synapses[shard.layer]
    window = slice(shard.start, shard.stop)
    return ablate.ablate_synapses(
        model.net, X, y, shard.layer, sources[window], targets[window],
        metrics=model.ablation.metrics, base=base_state(model, data, shard.split),
    )


def unit_rows(shard: Shard, model: ModelInputs, data: DataArrays) -> dict[str, np.ndarray]:
    """Columns of a unit-statistics shard: every hidden unit's statistics on the shard's split,
    and its zero-mode single-ablation effect on val where that neuron sweep exists (else NaN).

    A unit "fires" when its output exceeds ``act(0)`` (0 for ReLU and tanh, 0.5 for logistic).
    """
    X, y = data.splits[shard.split]
    settings = model.ablation
    columns = unitstats.unit_statistics(
        model.net, X, y, quantizer=settings.quantizer, threshold=ACTIVATION_AT_ZERO[model.net.activation],
        n_bins=settings.n_bins,
    )
    effects = model.effects.get("zero")
    by_unit = {} if effects is None else dict(zip(zip(effects["layer"], effects["unit"]), effects["effect"]))
    columns["effect"] = np.array([by_unit.get(key, np.nan) for key in zip(columns["layer"], columns["unit"])])
    return columns


def cumulative_rows(shard: Shard, model: ModelInputs, data: DataArrays) -> dict[str, np.ndarray]:
    """Columns of a cumulative shard: the curve(s) of one order in one scope.

    ``shard.selection`` is ``"<scope>.<order>"``.
    """
    X, y = data.splits[shard.split]
    scope, order = shard.selection.split(".")
    settings = model.ablation
    return cumulative.cumulative_rows(
        model.net, X, y, [order], scopes=[scope], mode=shard.mode, repetitions=settings.repetitions,
        seed=shard.run.seed, stats=model.unit_stats, effects=model.effects.get(shard.mode),
        n_points=settings.k_points or None, reference=data.reference,
    )


SHARD_ROUTINES: dict[str, Callable[[Shard, ModelInputs, DataArrays], dict[str, np.ndarray]]] = {
    "neuron": neuron_rows,
    "synapse": synapse_rows,
    "unit": unit_rows,
    "cumulative": cumulative_rows,
}


def run_shard(
    shard: Shard, model: ModelInputs, data: DataArrays, store: ResultStore, metadata: dict[str, Any]
) -> tuple[str, int, float]:
    """Compute one shard and write its part; returns (shard id, rows, seconds)."""
    start = time.perf_counter()
    columns = SHARD_ROUTINES[shard.kind](shard, model, data)
    table = to_table(shard.kind, columns, {"mode": shard.mode, "split": shard.split, "selection": shard.selection})
    store.write_part(shard, table, metadata)
    return shard.id, table.num_rows, time.perf_counter() - start
