"""The steps of a sweep, in order: data, models, plan, pending shards, execution, manifest.

Takes a validated :class:`~sweep.config.RunConfig` (plain objects, no Hydra) and returns a
:class:`~sweep.summary.SweepSummary`.
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
from sweep.network import Network
from sweep.plan import NetworkShape, RunKey, Shard, plan_neurons, plan_synapses
from sweep.store import ResultStore, StoreError
from sweep.summary import SUMMARIES, SweepSummary
from sweep.tasks import DataArrays, ModelInputs


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
    return {"model": asdict(cfg.model), "dataset": cfg.dataset.content_params(),
            "ablation": asdict(cfg.ablation), "versions": versions()}


RESULT_SETTINGS: dict[str, tuple[str, ...]] = {
    "neuron": ("metrics",),
    "synapse": ("metrics",),
    "unit": ("quantizer", "n_bins"),
    "cumulative": ("quantizer", "n_bins", "repetitions", "k_points"),
}
"""Ablation settings that change a result kind's rows without changing its part names."""


def fingerprint(cfg: RunConfig, artifact: models.ModelArtifact, kind: str) -> str:
    """What a run's parts of ``kind`` are computed from: the model's weights, the data
    settings and the row-changing ablation settings (16 hex digits)."""
    settings = {name: getattr(cfg.ablation, name) for name in RESULT_SETTINGS[kind]}
    payload = {"weights": artifact.meta["sha256"], "dataset": cfg.dataset.content_params(), "settings": settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def split_sizes(data: DatasetSplits) -> dict[str, int]:
    """Rows of each split: ``{"train": n, "val": n, "test": n}``."""
    return {"train": len(data.y_train), "val": len(data.y_val), "test": len(data.y_test)}


def measured_splits(cfg: RunConfig, sizes: dict[str, int]) -> dict[str, int]:
    """Rows of each split the ablations are measured on: ``ablation.splits``, or by default
    test, and val too when the dataset has one (selections are made on val)."""
    default = ["test", "val"] if sizes["val"] else ["test"]
    return {split: sizes[split] for split in cfg.ablation.splits or default}


def statistics_split(sizes: dict[str, int]) -> str:
    """Unit statistics (which order cumulative ablation) come from val when it exists, else train."""
    return "val" if sizes["val"] else "train"


def _train_or_reuse(cfg: RunConfig, data_ref: Any) -> dict[RunKey, models.ModelArtifact]:
    models_root = cfg.paths.models or storage.join(cfg.paths.results, "models")
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
    return dict(sorted(artifacts.items(), key=lambda item: item[0].seed))


@dataclass(frozen=True)
class PlanInputs:
    """What a planner knows of one trained model: its key, weights, weights hash, and the
    sizes of the dataset's splits."""

    run: RunKey
    net: Network
    weights: str
    sizes: dict[str, int]

    @property
    def shape(self) -> NetworkShape:
        return NetworkShape((self.net.coefs[0].shape[0], *self.net.hidden_sizes, self.net.coefs[-1].shape[1]))


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


Planner = Callable[[RunConfig, PlanInputs, ResultStore], tuple[list[Shard], ModelInputs]]
"""``(cfg, model, store) -> (its shards, what they need besides the data)``."""


def _plan_neurons(cfg: RunConfig, model: PlanInputs, store: ResultStore) -> tuple[list[Shard], ModelInputs]:
    settings = cfg.ablation
    splits = measured_splits(cfg, model.sizes)
    shards = plan_neurons(model.run, model.shape, settings.layers, settings.modes, splits, settings.shard_cost)
    return shards, ModelInputs(model.net, settings)


def _plan_synapses(cfg: RunConfig, model: PlanInputs, store: ResultStore) -> tuple[list[Shard], ModelInputs]:
    settings = cfg.ablation
    neurons = harmful_units(store, model, settings.top_harmful) if settings.top_harmful else None
    selection = ablate.select_synapses(model.net, layers=settings.layers, neurons=neurons, direction=settings.direction)
    synapses = {layer: (sources, targets) for layer, sources, targets in selection}
    tag = "all" if neurons is None and settings.layers is None else _digest(synapses)
    counts = {layer: len(sources) for layer, (sources, _) in synapses.items()}
    splits = measured_splits(cfg, model.sizes)
    shards = plan_synapses(model.run, model.shape, counts, tag, splits, settings.shard_cost, settings.metrics)
    return shards, ModelInputs(model.net, settings, synapses=synapses)


def _plan_units(cfg: RunConfig, model: PlanInputs, store: ResultStore) -> tuple[list[Shard], ModelInputs]:
    settings = cfg.ablation
    tag = f"{settings.quantizer}{settings.n_bins}"
    shard = Shard(model.run, "unit", "stats", statistics_split(model.sizes), -1, 0, sum(model.net.hidden_sizes), tag)
    zero = store.read_model_rows("neuron", model.run, model.weights)
    zero = zero[(zero["mode"] == "zero") & (zero["split"] == "val")]
    written = store.read_model_rows("unit", model.run, model.weights)
    if len(zero) and len(written) and written["effect"].isna().all():
        store.remove_part(shard)  # written before the neuron sweep existed: add its effects now
    return [shard], ModelInputs(model.net, settings, effects={"zero": zero} if len(zero) else {})


def _plan_cumulative(cfg: RunConfig, model: PlanInputs, store: ResultStore) -> tuple[list[Shard], ModelInputs]:
    settings = cfg.ablation
    stats = store.read_model_rows("unit", model.run, model.weights)
    stats = stats[stats["split"] == statistics_split(model.sizes)]
    by_effect = any(order.startswith("effect_") for order in settings.orders)
    effects = {mode: validation_rows(store, model, mode) for mode in settings.modes} if by_effect else {}
    shards = []
    for split in measured_splits(cfg, model.sizes):
        for mode in settings.modes:
            for scope in settings.scopes:
                n_k = len(cumulative.grid(len(cumulative.scope_units(model.net, scope)), settings.k_points or None))
                for order in settings.orders:
                    rows = n_k * (settings.repetitions if order == "random" else 1)
                    shards.append(Shard(model.run, "cumulative", mode, split, -1, 0, rows, f"{scope}.{order}"))
    return shards, ModelInputs(model.net, settings, unit_stats=stats, effects=effects)


PHASES: dict[str, tuple[tuple[str, Planner], ...]] = {
    "neurons": (("neuron", _plan_neurons),),
    "synapses": (("synapse", _plan_synapses),),
    "cumulative": (("unit", _plan_units), ("cumulative", _plan_cumulative)),
}
"""What each ``ablation.kind`` runs: phases of (result kind, planner), each planned after the
previous one ran (cumulative orders read the unit statistics)."""


def _run_phase(
    cfg: RunConfig, kind: str, planner: Planner, artifacts: dict[RunKey, models.ModelArtifact],
    nets: dict[RunKey, Network], sizes: dict[str, int], data_ref: Any, store: ResultStore,
) -> tuple[int, set[str]]:
    """Plan, skip what exists, run the rest; returns (rows written, selection tags planned)."""
    shards: list[Shard] = []
    inputs: dict[RunKey, execute.ShardInputs] = {}
    fingerprints = {key: fingerprint(cfg, artifact, kind) for key, artifact in artifacts.items()}
    metadata = {
        key: {**result_metadata(cfg), "seed": key.seed, "weights": artifact.meta["sha256"],
              "fingerprint": fingerprints[key]}
        for key, artifact in artifacts.items()
    }
    for key, net in nets.items():
        run_shards, model_inputs = planner(cfg, PlanInputs(key, net, artifacts[key].meta["sha256"], sizes), store)
        shards += run_shards
        inputs[key] = execute.ShardInputs(execute.put(replace(model_inputs, fingerprint=fingerprints[key])), data_ref)
    todo = store.pending(shards, fingerprints)
    rows = execute.run_shards(todo, inputs, store, metadata, cfg.ray, cfg.progress)
    return rows, {s.selection for s in shards}


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
    nets = {key: models.load_network(artifact.path) for key, artifact in artifacts.items()}
    rows, selections = 0, set()
    for kind, planner in PHASES[cfg.ablation.kind]:
        written, selections = _run_phase(cfg, kind, planner, artifacts, nets, split_sizes(data), data_ref, store)
        rows += written
    times["ablate"] = time.perf_counter() - clock

    runs = [_manifest_run(cfg, key, artifact) for key, artifact in artifacts.items()]
    store.write_manifest(asdict(cfg), runs, versions())
    kind = PHASES[cfg.ablation.kind][-1][0]
    results = store.read(kind, [("dataset", "=", cfg.dataset.tag), ("model", "=", cfg.model.name)])
    results = results[results["seed"].isin(cfg.seeds) & results["split"].isin(measured_splits(cfg, split_sizes(data)))]
    if "selection" in results:
        results = results[results["selection"].isin(selections)]
    return SweepSummary(store.location, kind, SUMMARIES[kind](results), rows, times, runs)


def _manifest_run(cfg: RunConfig, key: RunKey, artifact: models.ModelArtifact) -> dict[str, Any]:
    """A run's manifest entry: where its model is, how to load its data (this sweep's
    absolute paths), its accuracies and training time."""
    meta = artifact.meta
    return {
        "dataset": key.dataset, "model": key.model, "seed": key.seed, "model_path": artifact.path,
        "dataset_params": cfg.dataset.loader_params(), "hidden_sizes": meta["hidden_sizes"],
        "train_accuracy": meta["train_accuracy"], "val_accuracy": meta["val_accuracy"],
        "test_accuracy": meta["test_accuracy"], "n_iter": meta["n_iter"],
        "timings": {"train_seconds": meta["train_seconds"]},
    }
