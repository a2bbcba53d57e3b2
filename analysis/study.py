"""A study loaded once: its rows, manifest and, per network, lazily cached resources.

Every report section and the explorer receive one :class:`Study`. Rows of each result kind
are read once (:func:`analysis.load.load`); a network's weights, its data split, its base
predictions and the per-image outcomes of removing each of its units (:class:`Flips`, from
which every bootstrap and split-half statistic follows exactly without another sweep) are
computed on first use and kept. Nothing here draws or formats.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.load import (
    RUN_KEYS,
    check_parts,
    has_kind,
    has_model,
    load,
    load_data,
    load_manifest,
    load_network,
    resolve_study,
    runs_table,
)
from sweep.data import DatasetSplits, image_shape, reference_inputs
from sweep.kernels import (
    NEURON_MODES,
    Flips,
    Network,
    TorchNetwork,
    drawn_values,
    forward,
    neuron_flips,
    predicted_index,
    torch_predictions,
    unit_values,
)

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""Splits a row may be measured on, as named in the ``split`` column."""


@dataclass(frozen=True)
class NetworkKey:
    """One trained network of a study: ``dataset`` (the partition label), ``model``, ``seed``."""

    dataset: str
    model: str
    seed: int

    @classmethod
    def of(cls, row: Any) -> NetworkKey:
        """The key of a row (a mapping or a named tuple with ``dataset, model, seed``)."""
        get = row.get if hasattr(row, "get") else lambda k: getattr(row, k)
        return cls(str(get("dataset")), str(get("model")), int(get("seed")))

    def label(self) -> str:
        """``digits/nn_392 seed 0``."""
        return f"{self.dataset}/{self.model} seed {self.seed}"


@dataclass(eq=False)
class Study:
    """One study of a results root, loaded once and handed to every section.

    Attributes
    ----------
    root : str — the results root (path or URI)
    name : str — the study
    """

    root: str
    name: str
    _rows: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    _cache: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, root: str | os.PathLike[str], name: str | None = None, *,
             check: bool = True) -> Study:
        """Resolve the study (the only one, or ``name``) and, with ``check``, refuse one with a
        truncated part (:class:`~analysis.load.AnalysisError` naming it) before any work."""
        root = os.fspath(root)
        name = resolve_study(root, name)
        if check:
            check_parts(root, name)
        return cls(root, name)

    # ------------------------------------------------------------------ rows

    def has(self, kind: str) -> bool:
        """Whether the study holds ``kind`` results."""
        if kind in self._rows:
            return not self._rows[kind].empty
        return has_kind(self.root, self.name, kind)

    def rows(self, kind: str, split: str | None = None) -> pd.DataFrame:
        """Every row of one result kind (read once), or those of one split.

        Returns
        -------
        DataFrame — empty (no columns) when the study has no such rows.
        """
        if kind not in self._rows:
            self._rows[kind] = load(self.root, self.name, kind) if self.has(kind) else pd.DataFrame()
        frame = self._rows[kind]
        if split is None or frame.empty:
            return frame
        return frame[frame["split"] == split]

    @functools.cached_property
    def manifest(self) -> dict[str, Any]:
        """The study's manifest (``runs``: one entry per trained network)."""
        return load_manifest(self.root, self.name)

    @functools.cached_property
    def runs(self) -> pd.DataFrame:
        """One row per trained network (:func:`analysis.load.runs_table`)."""
        return runs_table(self.manifest)

    def run(self, key: NetworkKey) -> dict[str, Any] | None:
        """The manifest entry of a network whose model artifact is present, else None."""
        for run in self.manifest.get("runs", []):
            if NetworkKey.of(run) == key:
                return run if has_model(run) else None
        return None

    # ------------------------------------------------------------------ per network

    def network(self, key: NetworkKey) -> Network | TorchNetwork:
        """The network's weights (loaded once): an MLP's :class:`~sweep.kernels.Network`, or a
        torch model's :class:`~sweep.kernels.torchnet.TorchNetwork` (float64, with its sites).

        Raises
        ------
        KeyError
            If the study has no model artifact for ``key`` (check :meth:`run` first).
        """
        return self._network(self._model_path(key))

    def data(self, key: NetworkKey) -> DatasetSplits:
        """The network's train / val / test arrays (each distinct split loaded once)."""
        run = self._require(key)
        return self._data(json.dumps(run["dataset_params"], sort_keys=True))

    def image_shape(self, key: NetworkKey) -> tuple[int, ...]:
        """The shape one input row reshapes to (``(8, 8)`` for digits)."""
        return image_shape(self._require(key)["dataset_params"]["name"])

    def split(self, key: NetworkKey, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(X, y)`` of one split of the network's data."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        data = self.data(key)
        return getattr(data, f"X_{split}"), getattr(data, f"y_{split}")

    def reference(self, key: NetworkKey, mode: str) -> np.ndarray | None:
        """The inputs a mode's replacement values come from (val, else train), or None when
        the mode needs none (:data:`~sweep.kernels.NEURON_MODES`' ``needs_reference``)."""
        if not NEURON_MODES[mode].needs_reference:
            return None
        data = self.data(key)
        return reference_inputs(data.X_train, data.X_val)

    def predictions(self, key: NetworkKey, split: str) -> np.ndarray:
        """The unablated network's predicted class index per row of a split, shape ``(n,)``."""
        return self._predictions(key, split)

    def flips(self, key: NetworkKey, layer: int, mode: str, split: str = "test", seed: int = 0) -> Flips:
        """The images each unit of ``layer`` fixes and breaks when removed (every unit, in
        index order: ``ablation`` is the unit), computed once per (network, layer, mode,
        split) with :func:`sweep.kernels.neuron_flips` (a torch network's: from its resumed-forward
        kernel, which settles every row's decision); a per-image mode's draw 0 of ``seed`` (the
        rows' ``resample_seed``)."""
        return self._flips(key, layer, mode, split, seed)

    # ------------------------------------------------------------------ caches

    def _require(self, key: NetworkKey) -> dict[str, Any]:
        run = self.run(key)
        if run is None:
            raise KeyError(f"no model artifact for {key.label()} in study {self.name!r}")
        return run

    def _model_path(self, key: NetworkKey) -> str:
        return self._require(key)["model_path"]

    def _cached(self, key: tuple[Any, ...], compute: Any) -> Any:
        """``compute()`` once per ``key`` for this study."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def _network(self, model_path: str) -> Network | TorchNetwork:
        return self._cached(("network", model_path),
                            lambda: load_network({"model_path": model_path}))

    def _data(self, params: str) -> DatasetSplits:
        return self._cached(("data", params),
                            lambda: load_data({"dataset_params": json.loads(params)}))

    def _predictions(self, key: NetworkKey, split: str) -> np.ndarray:
        def compute() -> np.ndarray:
            X, _ = self.split(key, split)
            net = self.network(key)
            return torch_predictions(net, X) if isinstance(net, TorchNetwork) else predicted_index(forward(net, X))

        return self._cached(("predictions", key, split), compute)

    def _flips(self, key: NetworkKey, layer: int, mode: str, split: str, seed: int) -> Flips:
        def compute() -> Flips:
            net = self.network(key)
            X, y = self.split(key, split)
            units = np.arange(net.hidden_sizes[layer])
            values = unit_values(net, mode, self.reference(key, mode))  # an MLP's or a torch network's
            replacement = drawn_values(values, mode, len(y), seed)[layer]
            return neuron_flips(net, X, y, layer, units, mode, base=None, replacement=replacement)

        return self._cached(("flips", key, layer, mode, split, seed), compute)


def resample_seed(rows: pd.DataFrame) -> int:
    """The seed a per-image mode's rows were drawn with (their ``resample_seed``; 0 for a
    constant mode's rows or a study written before the column existed), for :meth:`Study.flips`."""
    seeds = rows["resample_seed"].dropna() if "resample_seed" in rows else pd.Series(dtype=float)
    return int(seeds.iloc[0]) if len(seeds) else 0


def network_keys(rows: pd.DataFrame) -> list[NetworkKey]:
    """The distinct networks of some rows, sorted."""
    if rows.empty:
        return []
    keys = rows[RUN_KEYS].drop_duplicates().sort_values(RUN_KEYS)
    return [NetworkKey.of(r) for r in keys.itertuples(index=False)]
