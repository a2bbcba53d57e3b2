"""The steps of a sweep, in order: data, models, plan, pending shards, execution, manifest.

Takes a validated :class:`~sweep.config.RunConfig` (plain objects, no Hydra) and returns a
:class:`SweepSummary`.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import numpy as np
import pandas as pd

from sweep import ablate, cumulative, execute, models, storage
from sweep.config import RunConfig
from sweep.datasets import DatasetSplits, load_dataset
from sweep.plan import NetworkShape, RunKey, Shard, plan_neurons, plan_synapses
from sweep.network import Network
from sweep.store import ResultStore, StoreError
from sweep.tasks import DataArrays, ModelInputs

LOCATION_KEYS = ("data_dir", "cache_dir", "mirrors")
"""Dataset settings that say where data is, not what it is: kept out of result metadata."""


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep did: where its results are and a small table of what it found
    (category counts per layer for neurons and synapses, curve areas for cumulative)."""

    results: str
    kind: str
    table: pd.DataFrame
    rows_written: int
    seconds: dict[str, float]
    runs: list[dict[str, Any]]


def versions() -> dict[str, str]:
    """Versions of the packages that determine the numbers."""
    import pyarrow
    import ray
    import sklearn

    import sweep

    return {
        "sweep": sweep.__version__, "python": platform.python_version(), "numpy": np.__version__,
        "scikit-learn": sklearn.__version__, "pyarrow": pyarrow.__version__, "ray": ray.__version__,
    }


def result_metadata(cfg: RunConfig) -> dict[str, Any]:
    """The settings that determine a part's bytes (not where data, Ray or results live)."""
    dataset = {k: v for k, v in cfg.dataset.loader_params().items() if k not in LOCATION_KEYS}
    return {"model": asdict(cfg.model), "dataset": dataset, "ablation": asdict(cfg.ablation), "versions": versions()}


RESULT_SETTINGS: dict[str, tuple[str, ...]] = {
    "neuron": ("metrics",),
    "synapse": ("metrics",),
    "unit": ("quantizer",),
    "cumulative": ("metrics", "quantizer", "repetitions", "k_points"),
}
"""Ablation settings that change a result kind's rows without changing its part names."""


def fingerprint(cfg: RunConfig, artifact: models.ModelArtifact, kind: str) -> str:
    """What a run's parts of ``kind`` are computed from: the model's weights, the data
    settings and the row-changing ablation settings (16 hex digits)."""
    dataset = {k: v for k, v in cfg.dataset.loader_params().items() if k not in LOCATION_KEYS}
    settings = {name: getattr(cfg.ablation, name) for name in RESULT_SETTINGS[kind]}
    payload = {"weights": artifact.meta["sha256"], "dataset": dataset, "settings": settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def split_sizes(data: DatasetSplits) -> dict[str, int]:
    """Rows of each split: ``{"train": n, "val": n, "test": n}``."""
    return {"train": len(data.y_train), "val": len(data.y_val), "test": len(data.y_test)}


def measured_splits(cfg: RunConfig, sizes: dict[str, int]) -> dict[str, int]:
    """Rows of each split the ablations are measured on."""
    return {split: sizes[split] for split in cfg.ablation.splits}


def _train_or_reuse(cfg: RunConfig, data_ref: Any) -> dict[RunKey, models.ModelArtifact]:
    models_root = storage.absolute(cfg.paths.models or storage.join(cfg.paths.results, "models"))
    jobs, artifacts = [], {}
    for seed in cfg.seeds:
        run = RunKey(cfg.dataset.tag, cfg.model.name, seed)
        path = models.artifact_path(models_root, cfg.model, cfg.dataset, seed)
        cached = models.read_artifact(path)
        if cached is None:
            jobs.append(execute.TrainJob(run, cfg.model, cfg.dataset, seed, path))
        else:
            artifacts[run] = cached
    artifacts.update(execute.train_models(jobs, data_ref, cfg.ray.max_retries))
    return artifacts


def _shape(net: Network) -> NetworkShape:
    return NetworkShape((net.coefs[0].shape[0], *net.hidden_sizes, net.coefs[-1].shape[1]))


def _run_filter(run: RunKey) -> list[tuple[str, str, Any]]:
    return [("dataset", "=", run.dataset), ("model", "=", run.model), ("seed", "=", run.seed)]


def selection_split(store: ResultStore, kind: str, run: RunKey, mode: str) -> pd.DataFrame:
    """A run's rows of ``kind`` in ``mode`` on the split that selections are made on.

    Selection hygiene: anything chosen from results (harmful neurons, an ablation order) is
    chosen on the val split when it was measured, else on test.
    """
    df = store.read(kind, _run_filter(run))
    df = df[df["mode"] == mode]
    split = "val" if (df["split"] == "val").any() else "test"
    return df[df["split"] == split]


def harmful_units(store: ResultStore, run: RunKey, k: int) -> list[tuple[int, int]]:
    """The ``k`` most harmful (layer, unit) pairs of a run's zero-mode neuron sweep."""
    df = selection_split(store, "neuron", run, "zero")
    if df.empty:
        raise StoreError(
            f"ablation.top_harmful needs a neuron sweep of {run} in study {store.study!r}; run ablation=neurons first"
        )
    chosen = df[df["effect"] > 0].sort_values(["effect", "layer", "unit"], ascending=[False, True, True])
    return [(int(r.layer), int(r.unit)) for r in chosen.head(k).itertuples()]


def _digest(synapses: dict[int, tuple[np.ndarray, np.ndarray]]) -> str:
    h = hashlib.sha256()
    for layer in sorted(synapses):
        h.update(np.int64(layer).tobytes())
        for array in synapses[layer]:
            h.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return h.hexdigest()[:10]


Planner = Callable[[RunConfig, RunKey, Network, dict[str, int], ResultStore], tuple[list[Shard], ModelInputs]]
"""``(cfg, run, net, split sizes, store) -> (shards, what the shards need)``."""


def _plan_neurons(cfg: RunConfig, run: RunKey, net: Network, sizes: dict[str, int], store: ResultStore) -> tuple[list[Shard], ModelInputs]:
    splits = measured_splits(cfg, sizes)
    shards = plan_neurons(run, _shape(net), cfg.ablation.layers, cfg.ablation.modes, splits, cfg.ablation.shard_cost)
    return shards, ModelInputs(net, cfg.ablation)


def _plan_synapses(cfg: RunConfig, run: RunKey, net: Network, sizes: dict[str, int], store: ResultStore) -> tuple[list[Shard], ModelInputs]:
    neurons = harmful_units(store, run, cfg.ablation.top_harmful) if cfg.ablation.top_harmful else None
    selection = ablate.select_synapses(net, layers=cfg.ablation.layers, neurons=neurons, direction=cfg.ablation.direction)
    synapses = {layer: (sources, targets) for layer, sources, targets in selection}
    tag = "all" if neurons is None and cfg.ablation.layers is None else _digest(synapses)
    counts = {layer: len(sources) for layer, (sources, _) in synapses.items()}
    shards = plan_synapses(run, _shape(net), counts, tag, measured_splits(cfg, sizes), cfg.ablation.shard_cost,
                           cfg.ablation.metrics)
    return shards, ModelInputs(net, cfg.ablation, synapses=synapses)


def statistics_split(sizes: dict[str, int]) -> str:
    """Unit statistics (which order cumulative ablation) come from val when it exists, else train."""
    return "val" if sizes["val"] else "train"


def _plan_units(cfg: RunConfig, run: RunKey, net: Network, sizes: dict[str, int], store: ResultStore) -> tuple[list[Shard], ModelInputs]:
    n_units = sum(net.hidden_sizes)
    shard = Shard(run, "unit", "stats", statistics_split(sizes), -1, 0, n_units, cfg.ablation.quantizer)
    return [shard], ModelInputs(net, cfg.ablation)


def _plan_cumulative(cfg: RunConfig, run: RunKey, net: Network, sizes: dict[str, int], store: ResultStore) -> tuple[list[Shard], ModelInputs]:
    settings = cfg.ablation
    stats = store.read("unit", _run_filter(run))
    stats = stats[stats["split"] == statistics_split(sizes)]
    effect_orders = [o for o in settings.orders if o.startswith("effect_")]
    effects = {mode: selection_split(store, "neuron", run, mode) for mode in settings.modes} if effect_orders else {}
    if effect_orders and any(df.empty for df in effects.values()):
        raise StoreError(
            f"orders {effect_orders} need a neuron sweep of {run} in modes {settings.modes} in study "
            f"{store.study!r}; run ablation=neurons ablation.modes={list(settings.modes)} first"
        )
    shards = []
    for split in cfg.ablation.splits:
        for mode in settings.modes:
            for scope in settings.scopes:
                n_k = len(cumulative.grid(len(cumulative.scope_units(net, scope)), settings.k_points or None))
                for order in settings.orders:
                    rows = n_k * (settings.repetitions if order == "random" else 1)
                    shards.append(Shard(run, "cumulative", mode, split, -1, 0, rows, f"{scope}.{order}"))
    neuron_effects = pd.concat(effects.values()) if effects else None
    return shards, ModelInputs(net, settings, unit_stats=stats, effects=neuron_effects)


PHASES: dict[str, tuple[tuple[str, Planner], ...]] = {
    "neurons": (("neuron", _plan_neurons),),
    "synapses": (("synapse", _plan_synapses),),
    "cumulative": (("unit", _plan_units), ("cumulative", _plan_cumulative)),
}
"""What each ``ablation.kind`` runs: phases of (result kind, planner), each planned after the
previous one ran."""

RESULT_KIND = {"neurons": "neuron", "synapses": "synapse", "cumulative": "cumulative"}


def category_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Helpful / neutral / harmful counts per (dataset, model, seed, mode, split, layer)."""
    keys = ["dataset", "model", "seed", "mode", "split", "layer"]
    if df.empty:
        return pd.DataFrame(columns=[*keys, "helpful", "neutral", "harmful"])
    category = np.select([df["effect"] < 0, df["effect"] > 0], ["helpful", "harmful"], "neutral")
    table = df.assign(category=category).pivot_table(index=keys, columns="category", values="effect", aggfunc="size", fill_value=0)
    return table.reindex(columns=["helpful", "neutral", "harmful"], fill_value=0).reset_index()


def curve_areas(df: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy over each cumulative curve (its normalised area), per seed, scope and order."""
    keys = ["dataset", "model", "seed", "mode", "split", "scope", "order"]
    return df.groupby(keys, observed=True)["accuracy"].mean().rename("mean_accuracy").reset_index()


SUMMARIES: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "neuron": category_counts,
    "synapse": category_counts,
    "cumulative": curve_areas,
}


def run(cfg: RunConfig) -> SweepSummary:
    """Run a sweep end to end and return its summary."""
    times: dict[str, float] = {}
    clock = time.perf_counter()
    data = load_dataset(**cfg.dataset.loader_params())
    times["load_data"] = time.perf_counter() - clock
    execute.connect(cfg.ray)
    store = ResultStore(cfg.paths.results, cfg.study)

    clock = time.perf_counter()
    data_ref = execute.put(DataArrays.from_splits(data))
    artifacts = dict(sorted(_train_or_reuse(cfg, data_ref).items(), key=lambda item: item[0].seed))
    times["train"] = time.perf_counter() - clock

    clock = time.perf_counter()
    nets = {key: models.load_network(artifact.path) for key, artifact in artifacts.items()}
    sizes = split_sizes(data)
    rows = 0
    for kind, planner in PHASES[cfg.ablation.kind]:
        prints = {key: fingerprint(cfg, artifact, kind) for key, artifact in artifacts.items()}
        metadata = {key: {**result_metadata(cfg), "seed": key.seed, "fingerprint": prints[key]} for key in nets}
        shards: list[Shard] = []
        inputs: dict[RunKey, execute.ShardInputs] = {}
        for key, net in nets.items():
            run_shards, model_inputs = planner(cfg, key, net, sizes, store)
            shards += run_shards
            inputs[key] = execute.ShardInputs(execute.put(replace(model_inputs, fingerprint=prints[key])), data_ref)
        rows += execute.run_shards(store.pending(shards, prints), inputs, store, metadata, cfg.ray, cfg.progress)
    times["ablate"] = time.perf_counter() - clock

    runs = [_manifest_run(key, artifact) for key, artifact in artifacts.items()]
    store.write_manifest(result_metadata(cfg), runs, versions())
    kind = RESULT_KIND[cfg.ablation.kind]
    results = store.read(kind, [("dataset", "=", cfg.dataset.tag), ("model", "=", cfg.model.name)])
    results = results[results["seed"].isin(cfg.seeds)]
    return SweepSummary(store.location, kind, SUMMARIES[kind](results), rows, times, runs)


def _manifest_run(key: RunKey, artifact: models.ModelArtifact) -> dict[str, Any]:
    meta = artifact.meta
    return {
        "dataset": key.dataset, "model": key.model, "seed": key.seed, "model_path": artifact.path,
        "dataset_params": meta["dataset_params"], "hidden_sizes": meta["hidden_sizes"],
        "train_accuracy": meta["train_accuracy"], "val_accuracy": meta["val_accuracy"],
        "test_accuracy": meta["test_accuracy"], "n_iter": meta["n_iter"],
        "timings": {"train_seconds": meta["train_seconds"]},
    }
