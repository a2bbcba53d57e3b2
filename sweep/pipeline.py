"""The steps of a sweep, in order: data, models, plan, pending shards, execution, manifest.

Takes a validated :class:`~sweep.config.RunConfig` (plain objects, no Hydra) and returns a
:class:`SweepSummary`.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from sweep import ablate, execute, models, storage
from sweep.config import RunConfig
from sweep.datasets import DatasetSplits, load_dataset
from sweep.plan import NetworkShape, RunKey, Shard, plan_neurons, plan_synapses
from sweep.store import ResultStore
from sweep.tasks import DataArrays, ModelInputs

LOCATION_KEYS = ("data_dir", "cache_dir", "mirrors")
"""Dataset settings that say where data is, not what it is: kept out of result metadata."""


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep did: where its results are, and the per-layer category counts."""

    results: str
    kind: str
    counts: pd.DataFrame
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


def measured_splits(cfg: RunConfig, data: DatasetSplits) -> dict[str, int]:
    """Rows of each split the ablations are measured on."""
    sizes = {"test": len(data.y_test), "val": len(data.y_val)}
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


def _shape(net: Any) -> NetworkShape:
    return NetworkShape((net.coefs[0].shape[0], *net.hidden_sizes, net.coefs[-1].shape[1]))


def _plan_neurons(cfg: RunConfig, run: RunKey, net: Any, splits: dict[str, int], store: ResultStore) -> tuple[list[Shard], ModelInputs]:
    shards = plan_neurons(run, _shape(net), cfg.ablation.layers, cfg.ablation.modes, splits, cfg.ablation.shard_cost)
    return shards, ModelInputs(net)


def harmful_units(store: ResultStore, run: RunKey, k: int) -> list[tuple[int, int]]:
    """The ``k`` most harmful (layer, unit) pairs of a run's zero-mode neuron sweep.

    Chosen on the val split when it was measured, else on test.
    """
    df = store.read("neuron", [("dataset", "=", run.dataset), ("model", "=", run.model), ("seed", "=", run.seed)])
    df = df[df["mode"] == "zero"]
    if df.empty:
        raise execute.ExecutionError(
            f"ablation.top_harmful needs a neuron sweep of {run} in study {store.study!r}; run ablation=neurons first"
        )
    split = "val" if (df["split"] == "val").any() else "test"
    chosen = df[(df["split"] == split) & (df["effect"] > 0)].sort_values(["effect", "layer", "unit"], ascending=[False, True, True])
    return [(int(r.layer), int(r.unit)) for r in chosen.head(k).itertuples()]


def _plan_synapses(cfg: RunConfig, run: RunKey, net: Any, splits: dict[str, int], store: ResultStore) -> tuple[list[Shard], ModelInputs]:
    neurons = harmful_units(store, run, cfg.ablation.top_harmful) if cfg.ablation.top_harmful else None
    selection = ablate.select_synapses(net, layers=cfg.ablation.layers, neurons=neurons, direction=cfg.ablation.direction)
    synapses = {layer: (sources, targets) for layer, sources, targets in selection}
    tag = "all" if neurons is None and cfg.ablation.layers is None else _digest(synapses)
    counts = {layer: len(sources) for layer, (sources, _) in synapses.items()}
    return plan_synapses(run, _shape(net), counts, tag, splits, cfg.ablation.shard_cost), ModelInputs(net, synapses)


def _digest(synapses: dict[int, tuple[np.ndarray, np.ndarray]]) -> str:
    import hashlib

    h = hashlib.sha256()
    for layer in sorted(synapses):
        h.update(np.int64(layer).tobytes())
        for array in synapses[layer]:
            h.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return h.hexdigest()[:10]


PLANNERS: dict[str, Callable[..., tuple[list[Shard], ModelInputs]]] = {
    "neurons": _plan_neurons,
    "synapses": _plan_synapses,
}
RESULT_KIND = {"neurons": "neuron", "synapses": "synapse"}


def category_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Helpful / neutral / harmful counts per (dataset, model, seed, mode, split, layer)."""
    if df.empty:
        return pd.DataFrame(columns=["dataset", "model", "seed", "mode", "split", "layer", "helpful", "neutral", "harmful"])
    category = np.select([df["effect"] < 0, df["effect"] > 0], ["helpful", "harmful"], "neutral")
    keys = ["dataset", "model", "seed", "mode", "split", "layer"]
    table = df.assign(category=category).pivot_table(index=keys, columns="category", values="effect", aggfunc="size", fill_value=0)
    return table.reindex(columns=["helpful", "neutral", "harmful"], fill_value=0).reset_index()


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
    artifacts = _train_or_reuse(cfg, data_ref)
    times["train"] = time.perf_counter() - clock

    clock = time.perf_counter()
    splits = measured_splits(cfg, data)
    shards: list[Shard] = []
    inputs: dict[RunKey, execute.ShardInputs] = {}
    for key, artifact in sorted(artifacts.items(), key=lambda item: item[0].seed):
        run_shards, model_inputs = PLANNERS[cfg.ablation.kind](cfg, key, models.load_network(artifact.path), splits, store)
        shards += run_shards
        inputs[key] = execute.ShardInputs(execute.put(model_inputs), data_ref)
    pending = store.pending(shards)
    metadata = {key: {**result_metadata(cfg), "seed": key.seed} for key in inputs}
    rows = execute.run_shards(pending, inputs, store, metadata, cfg.ray, cfg.progress)
    times["ablate"] = time.perf_counter() - clock

    runs = [_manifest_run(key, artifact) for key, artifact in sorted(artifacts.items(), key=lambda item: item[0].seed)]
    store.write_manifest(result_metadata(cfg), runs, versions())
    kind = RESULT_KIND[cfg.ablation.kind]
    results = store.read(kind, [("dataset", "=", cfg.dataset.tag), ("model", "=", cfg.model.name)])
    results = results[results["seed"].isin(cfg.seeds)]
    return SweepSummary(store.location, kind, category_counts(results), rows, times, runs)


def _manifest_run(key: RunKey, artifact: models.ModelArtifact) -> dict[str, Any]:
    meta = artifact.meta
    return {
        "dataset": key.dataset, "model": key.model, "seed": key.seed, "model_path": artifact.path,
        "dataset_params": meta["dataset_params"], "hidden_sizes": meta["hidden_sizes"],
        "train_accuracy": meta["train_accuracy"], "val_accuracy": meta["val_accuracy"],
        "test_accuracy": meta["test_accuracy"], "n_iter": meta["n_iter"],
        "timings": {"train_seconds": meta["train_seconds"]},
    }
