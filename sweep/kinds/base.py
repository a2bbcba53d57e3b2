"""What every result kind is made of (:class:`ResultKind`, :class:`Ablation`), and the
worker-side inputs and helpers the kinds share.

A result kind is one module of :mod:`sweep.kinds`: its columns (from its kernel's column
table; the Parquet schema derives from them), the settings that change its rows, its planner
(driver side: which shards, and what they need), its routine (worker side: one shard's
columns through the kernels) and its summary. No Ray and no Hydra here: the executor ships
routines to workers, tests call them in-process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Optional

import numpy as np
import pandas as pd
import pyarrow as pa

from sweep.data.datasets import DatasetSplits, reference_inputs
from sweep.kernels import (
    NEURON_MODES,
    drawn_values,
    mean_over_draws,
    network_to_numpy,
    neuron_mode,
    no_draws,
    prepare,
    to_numpy,
    unit_replacements,
)
from sweep.kernels.network import Network
from sweep.kernels.torchnet import TorchNetwork, mode_values, prepare_torch
from sweep.results.shards import NetworkShape, RunKey, Shard
from sweep.results.store import ResultStore, StoreError
from sweep.spec import AblationSettings, RunSpec

ARROW_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "float64[]": pa.list_(pa.float64()),
}
"""Arrow type of each column type name the kernels' column tables use."""

NEEDS_VAL = "dataset.val_fraction=0 leaves no validation split to choose on; set dataset.val_fraction=0.1"
"""The fix named when a setting chooses from results (always on val) without a val split."""


def check_layers(layers: list[int] | None, count: int, what: str) -> None:
    """Raise ValueError if a listed layer is not in ``0..count-1``."""
    for layer in layers or []:
        if not 0 <= layer < count:
            raise ValueError(f"ablation.layers has {layer}; the model has {count} {what}: 0..{count - 1}")


@dataclass(frozen=True)
class ModeSettings:
    """The neuron modes of a kind that ablates hidden units, and a per-image mode's draws.

    Attributes
    ----------
    modes : list of str — keys of :data:`~sweep.kernels.NEURON_MODES` (zero: the paper's)
    resample_draws : int — draws per ablation of a per-image mode (``resample``), averaged
        (their sd kept in ``effect_sd``)
    resample_seed : int, optional — the draws' seed (``numpy.random.default_rng([seed,
        draw])``); null: the model's seed. Both are recorded in every row of such a mode.
    """

    modes: list[str] = field(default_factory=lambda: ["zero"], metadata={"choices": tuple(NEURON_MODES)})
    resample_draws: int = field(default=3, metadata={"interval": (1, None, True)})
    resample_seed: Optional[int] = field(default=None, metadata={"interval": (0, None, True)})

    def seed_for(self, model_seed: int) -> int:
        """The draws' seed for the model of seed ``model_seed``."""
        return model_seed if self.resample_seed is None else self.resample_seed


RESAMPLE_SETTINGS = ("resample_draws", "resample_seed")
""":class:`ModeSettings`' draw fields: row-changing settings added after release 0.2 (a
kind's :attr:`ResultKind.added_settings`)."""


# --------------------------------------------------------------------------- worker inputs


@dataclass(frozen=True)
class DataArrays:
    """The splits of one dataset, shipped to the workers once per dataset.

    Attributes
    ----------
    splits : dict of str to (ndarray, ndarray)
        ``name -> (X of shape (n, n_features), y of shape (n,))`` for ``train``, ``val``, ``test``.
    """

    splits: dict[str, tuple[Any, np.ndarray]]

    @classmethod
    def from_splits(cls, data: DatasetSplits) -> DataArrays:
        return cls({"train": (data.X_train, data.y_train), "val": (data.X_val, data.y_val),
                    "test": (data.X_test, data.y_test)})

    @property
    def reference(self) -> Any:
        """Inputs ``mean`` ablation averages over (:func:`sweep.data.datasets.reference_inputs`)."""
        return reference_inputs(self.splits["train"][0], self.splits["val"][0])


@dataclass(frozen=True)
class ModelInputs:
    """One trained model and what its shards need besides the data, shipped once per model.

    Attributes
    ----------
    net : Network or TorchNetwork
    settings : AblationSettings — the run's ablation settings
    synapses : dict of int to (ndarray, ndarray)
        Weight-matrix index -> (sources, targets), each of shape (n_selected,).
    unit_stats : DataFrame, optional
        ``kind=unit`` rows of this model, for statistic-ordered cumulative ablation.
    effects : dict of str to DataFrame
        Mode -> this model's neuron-sweep rows on val (``layer, unit, effect``).
    fingerprint : str
        What this model's results are computed from; keys the per-process caches.
    """

    net: Network | TorchNetwork
    settings: AblationSettings
    synapses: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    unit_stats: pd.DataFrame | None = None
    effects: dict[str, pd.DataFrame] = field(default_factory=dict)
    fingerprint: str = ""


CACHE_SIZE = 4
"""Per-model arrays a worker process keeps (unablated forward passes, replacement values)."""

_CACHE: dict[tuple[str, ...], Any] = {}


def per_process(key: tuple[str, ...], compute: Callable[[], Any]) -> Any:
    """``compute()`` once per worker process and key; the oldest entry goes first."""
    if key not in _CACHE:
        while len(_CACHE) >= CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = compute()
    return _CACHE[key]


def base_state(model: ModelInputs, data: DataArrays, split: str) -> Any:
    """The unablated forward pass of ``model`` on ``split``, once per worker process: a
    :class:`BaseState`, or a torch model's :class:`~sweep.kernels.torchnet.TorchBase` (its
    resumed passes in the settings' ``torch_precision``, float64 for a kind without one)."""
    X, y = data.splits[split]
    if isinstance(model.net, TorchNetwork):
        precision = getattr(model.settings, "torch_precision", "float64")
        return per_process((model.fingerprint, "torch-base", split, precision),
                           lambda: prepare_torch(model.net, X, y, precision))
    return per_process((model.fingerprint, "base", split, type(X).__module__),
                       lambda: prepare(model.net, X, y))


def replacements(model: ModelInputs, data: DataArrays, mode: str) -> list[np.ndarray]:
    """:func:`sweep.kernels.unit_replacements` of ``model`` in ``mode``, once per worker
    process (``mean`` is a forward pass over the whole reference split)."""
    reference = to_numpy(data.reference) if neuron_mode(mode).needs_reference else None
    if isinstance(model.net, TorchNetwork):  # per unit site: (width, *unit_shape) tensors
        return per_process((model.fingerprint, "replacements", mode), lambda: mode_values(model.net, mode, reference))
    return per_process((model.fingerprint, "replacements", mode),
                       lambda: unit_replacements(network_to_numpy(model.net), mode, reference))


def over_draws(
    shard: Shard, model: ModelInputs, values: list[Any], n_rows: int,
    measure: Callable[[list[Any]], dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """``measure`` (the kernel's column table from replacement values: one array per hidden
    layer, or per unit site of a torch network, numpy or torch, or the one layer the kernel
    needs) of ``shard``'s mode: once with a constant mode's ``values``, its
    :data:`~sweep.kernels.DRAW_COLUMNS` null; for a per-image mode, once per draw of
    ``model.settings`` (``resample_draws`` draws of the seed :meth:`ModeSettings.seed_for`
    gives, each of ``n_rows`` rows: :func:`~sweep.kernels.drawn_values`), averaged
    (:func:`~sweep.kernels.mean_over_draws`)."""
    if not neuron_mode(shard.mode).per_image:
        columns = measure(values)
        return {**columns, **no_draws(len(next(iter(columns.values()))))}
    seed = model.settings.seed_for(shard.run.seed)
    return mean_over_draws([measure(drawn_values(values, shard.mode, n_rows, seed, draw))
                            for draw in range(model.settings.resample_draws)], seed)


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class PlanInputs:
    """What a planner knows of one trained model: its key, weights, weights hash, and the
    sizes of the dataset's splits."""

    run: RunKey
    net: Network | TorchNetwork
    weights: str
    sizes: dict[str, int]

    @property
    def shape(self) -> NetworkShape:
        return NetworkShape(tuple(self.net.layer_sizes))


def measured_splits(settings: AblationSettings, sizes: Mapping[str, int]) -> dict[str, int]:
    """Rows of each split the ablations are measured on: ``settings.splits``, or by default
    test, and val too when the dataset has one (selections are made on val)."""
    default = ["test", "val"] if sizes["val"] else ["test"]
    return {split: sizes[split] for split in settings.splits or default}


def validation_rows(store: ResultStore, model: PlanInputs, mode: str) -> pd.DataFrame:
    """This model's neuron-sweep rows in ``mode`` on the validation split.

    Selection hygiene: anything chosen from results (harmful neurons, an ablation order) is
    chosen on val and reported on test; parts of an earlier model under the same names (a
    retrain with other settings) are never used.

    Raises
    ------
    StoreError
        If there are none, with the command that makes them.
    """
    df = store.read_model_rows("neuron", model.run, model.weights)
    df = df[(df["mode"] == mode) & (df["split"] == "val")]
    if df.empty:
        run = model.run
        raise StoreError(
            f"choosing by single-neuron effect needs this model's {mode}-mode neuron sweep on a validation split "
            f"({run.dataset}/{run.model} seed {run.seed}, study {store.study!r}); run `python -m sweep "
            f"ablation=neurons ablation.modes=[{mode}]` first with the same model and dataset settings "
            "and a dataset.val_fraction above 0 (e.g. 0.1)"
        )
    return df


@dataclass(frozen=True)
class Plan:
    """A planner's answer for one model.

    Attributes
    ----------
    shards : list of Shard — the work
    inputs : ModelInputs — what the shards need besides the data (shipped once)
    stale : tuple of Shard — shards whose existing parts are out of date and must be
        recomputed (the pipeline deletes them before it looks for pending work)
    """

    shards: list[Shard]
    inputs: ModelInputs
    stale: tuple[Shard, ...] = ()


Columns = dict[str, np.ndarray]
Planner = Callable[["RunSpec", PlanInputs, ResultStore], Plan]
"""``(run spec, model, store) -> Plan`` (reads earlier results, never writes)."""
Routine = Callable[[Shard, ModelInputs, DataArrays], Columns]
"""``(shard, model inputs, data) -> columns`` (worker side, through the kernels)."""
Summary = Callable[[pd.DataFrame], pd.DataFrame]
"""``(this run's rows) -> the small table printed when the sweep ends``."""


@dataclass(frozen=True)
class ResultKind:
    """One kind of result rows, stored under ``kind=<name>``.

    Attributes
    ----------
    name : str — the partition value
    columns : dict of str to str — every file column and its type name (a key of
        :data:`ARROW_TYPES`), in file order: the shard's string columns (``mode``,
        ``split``, ...) then the kernel's column table
    constants : tuple of str — the columns filled from the shard (its ``mode``, ``split``,
        ``selection``)
    settings : tuple of str — ablation settings that change the rows without changing the
        part names (they enter the parts' fingerprint)
    plan : Planner
    compute : Routine
    summary : Summary, optional
    summary_title : str — the line above the summary table
    added_settings : tuple of str — row-changing settings added after parts of the kind were
        first written: they enter the fingerprint only when set away from their default, so
        those parts keep theirs
    """

    name: str
    columns: dict[str, str]
    constants: tuple[str, ...]
    settings: tuple[str, ...]
    plan: Planner
    compute: Routine
    summary: Summary | None = None
    summary_title: str = ""
    added_settings: tuple[str, ...] = ()

    def row_settings(self, settings: AblationSettings) -> dict[str, Any]:
        """The settings of ``settings`` that change this kind's rows (the fingerprint's)."""
        defaults = {f.name: f.default for f in fields(settings)}
        chosen = {name: getattr(settings, name) for name in self.settings}
        chosen.update({name: getattr(settings, name) for name in self.added_settings
                       if getattr(settings, name) != defaults[name]})
        return chosen

    @property
    def schema(self) -> pa.Schema:
        """The kind's explicit Parquet schema, derived from :attr:`columns`."""
        return pa.schema([(name, ARROW_TYPES[kind]) for name, kind in self.columns.items()])


@dataclass(frozen=True)
class Ablation:
    """One ``ablation=<name>`` choice: its settings class and the result kinds it writes, in
    order (each planned after the previous one ran; the last one is summarised).

    Attributes
    ----------
    name : str
    settings : type — an :class:`AblationSettings` subclass (its fields are the ``ablation.*``
        keys; a key it lacks is an error)
    phases : tuple of ResultKind
    description : str — one line for help and docs
    """

    name: str
    settings: type
    phases: tuple[ResultKind, ...]
    description: str
