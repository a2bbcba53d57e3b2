"""The steps of a sweep, in order: data, models, plan, pending shards, execution, manifest.

Takes a validated :class:`~sweep.spec.RunSpec` (plain objects, no Hydra) and returns a
:class:`~sweep.run.summary.SweepSummary`. What each step does for a result kind comes from
:data:`sweep.kinds.KINDS` / :data:`~sweep.kinds.ABLATIONS`; the work runs on an executor
(:mod:`sweep.run.executor`), imported only once the sweep starts.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, replace
from typing import Any

from sweep.data import models
from sweep.data.datasets import DatasetError, DatasetSplits, check_files, load_dataset
from sweep.kernels.network import Network
from sweep.kinds import ABLATIONS, SCHEMAS, ResultKind
from sweep.kinds.base import DataArrays, PlanInputs, measured_splits
from sweep.results import storage
from sweep.results.provenance import environment, versions
from sweep.results.shards import RunKey
from sweep.results.store import ResultStore, StoreError, check_writable
from sweep.run import executor as executors
from sweep.run.executor import ExecutionError, Executor, ShardInputs, TrainJob
from sweep.run.summary import SweepSummary
from sweep.spec import RunSpec, SpecError

USER_ERRORS = (SpecError, DatasetError, ExecutionError, StoreError)
"""Failures a user can fix: reported as one line, exit code 2."""


def result_metadata(cfg: RunSpec, seed: int) -> dict[str, Any]:
    """The settings that determine a part's bytes of model ``seed`` (not where data, Ray or
    results live)."""
    return {"model": asdict(cfg.model), "dataset": cfg.dataset.for_seed(seed).content_params(),
            "ablation": asdict(cfg.ablation), "versions": versions()}


def fingerprint(cfg: RunSpec, artifact: models.ModelArtifact, kind: ResultKind, seed: int) -> str:
    """What a run's parts of ``kind`` are computed from: the model's weights, the data
    settings of model ``seed`` and the kind's row-changing ablation settings (16 hex digits)."""
    settings = kind.row_settings(cfg.ablation)
    payload = {"weights": artifact.meta["sha256"], "dataset": cfg.dataset.for_seed(seed).content_params(),
               "settings": settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def split_sizes(data: DatasetSplits) -> dict[str, int]:
    """Rows of each split: ``{"train": n, "val": n, "test": n}``."""
    return {"train": len(data.y_train), "val": len(data.y_val), "test": len(data.y_test)}


def _load_data(cfg: RunSpec, executor: Executor) -> tuple[dict[RunKey, Any], dict[str, int]]:
    """Each seed's data placed once per distinct split (one for all seeds unless
    ``dataset.split_seed`` is null); returns the handles by run and the split sizes."""
    refs: dict[RunKey, Any] = {}
    placed: dict[int | None, Any] = {}
    sizes: dict[str, int] = {}
    for seed in cfg.seeds:
        dataset = cfg.dataset.for_seed(seed)
        if dataset.split_seed not in placed:
            data = load_dataset(**dataset.loader_params())
            sizes = split_sizes(data)  # the same for every split seed: set by the fractions
            placed[dataset.split_seed] = executor.put(DataArrays.from_splits(data))
            del data
        refs[RunKey(cfg.dataset.tag, cfg.model.name, seed)] = placed[dataset.split_seed]
    return refs, sizes


def _train_or_reuse(cfg: RunSpec, executor: Executor, data_refs: dict[RunKey, Any],
                    writable: bool) -> dict[RunKey, models.ModelArtifact]:
    models_root = cfg.paths.models or storage.join(cfg.paths.results, "models")
    jobs, artifacts = [], {}
    for run in data_refs:
        dataset = cfg.dataset.for_seed(run.seed)
        path = models.artifact_path(models_root, cfg.model, dataset, run.seed)
        cached = models.read_artifact(path)
        if cached is None:
            jobs.append(TrainJob(run, cfg.model, dataset, run.seed, path))
        else:
            artifacts[run] = cached
    if jobs and not (writable if cfg.paths.models is None else check_writable(models_root, "paths.models")):
        raise StoreError(f"{len(jobs)} model(s) must be trained but {models_root} is read-only; choose a "
                         "writable paths.results (or paths.models)")
    artifacts.update(executor.train(jobs, data_refs, cfg.progress))
    return dict(sorted(artifacts.items(), key=lambda item: item[0].seed))


def _run_phase(
    cfg: RunSpec, kind: ResultKind, executor: Executor, artifacts: dict[RunKey, models.ModelArtifact],
    nets: dict[RunKey, Network], sizes: dict[str, int], data_refs: dict[RunKey, Any], store: ResultStore,
    writable: bool,
) -> tuple[int, int, set[str]]:
    """Plan, drop stale parts, skip what exists, run the rest; returns (rows written, rows
    reused from earlier runs, selection tags planned).

    Raises
    ------
    StoreError
        If parts are missing or stale and the results folder is read-only.
    """
    inputs: dict[RunKey, ShardInputs] = {}
    fingerprints = {key: fingerprint(cfg, artifact, kind, key.seed) for key, artifact in artifacts.items()}
    metadata = {
        key: {**result_metadata(cfg, key.seed), "seed": key.seed, "weights": artifact.meta["sha256"],
              "fingerprint": fingerprints[key]}
        for key, artifact in artifacts.items()
    }
    plans = {key: kind.plan(cfg, PlanInputs(key, net, artifacts[key].meta["sha256"], sizes), store)
             for key, net in nets.items()}
    stale = [shard for plan in plans.values() for shard in plan.stale]
    for shard in stale if writable else []:
        store.remove_part(shard)
    shards = [shard for plan in plans.values() for shard in plan.shards]
    todo = store.pending(shards, fingerprints)
    if not writable and (todo or stale):
        raise StoreError(f"{store.location} is read-only and {len(todo) + len(stale)} {kind.name} part(s) are "
                         "missing or out of date; choose a writable paths.results")
    for key, plan in plans.items():
        inputs[key] = ShardInputs(executor.put(replace(plan.inputs, fingerprint=fingerprints[key])), data_refs[key])
    rows = executor.run_shards(todo, inputs, store, metadata, cfg.progress)
    reused = sum(store.part_rows(shard) for shard in shards if shard not in todo)
    return rows, reused, {s.selection for s in shards}


def preflight(cfg: RunSpec, store: ResultStore) -> bool:
    """What the world must offer, checked in seconds before Ray starts: the results root (a
    file, an unreachable store, a folder that cannot be created: :class:`StoreError`) and
    every data file (missing, truncated, corrupt, not downloadable: :class:`DatasetError`).
    Returns whether the study folder is writable."""
    writable = store.check_writable()
    check_files(cfg.dataset.name, cfg.dataset.data_dir, cfg.dataset.cache_dir, cfg.dataset.mirrors)
    return writable


def run(cfg: RunSpec) -> SweepSummary:
    """Run a sweep end to end and return its summary."""
    times: dict[str, float] = {}
    store = ResultStore(cfg.paths.results, cfg.study, SCHEMAS)
    writable = preflight(cfg, store)
    executor = executors.connect(cfg.ray)  # its workers start while the data loads
    clock = time.perf_counter()
    data_refs, sizes = _load_data(cfg, executor)
    times["load_data"] = time.perf_counter() - clock

    clock = time.perf_counter()
    artifacts = _train_or_reuse(cfg, executor, data_refs, writable)
    times["train"] = time.perf_counter() - clock

    clock = time.perf_counter()
    nets = {key: models.load_network(artifact.path) for key, artifact in artifacts.items()}
    phases = ABLATIONS[cfg.ablation.kind].phases
    rows, reused, selections = 0, 0, set()
    for kind in phases:
        written, kept, selections = _run_phase(cfg, kind, executor, artifacts, nets, sizes, data_refs, store, writable)
        rows, reused = rows + written, reused + kept
    times["ablate"] = time.perf_counter() - clock

    runs = [_manifest_run(cfg, key, artifact) for key, artifact in artifacts.items()]
    if writable:  # a read-only study got here only if complete: nothing to record
        store.write_manifest(asdict(cfg), runs, versions(), environment())
    kind = phases[-1]
    results = store.read(kind.name, [("dataset", "=", cfg.dataset.tag), ("model", "=", cfg.model.name)],
                         distinct=False)
    measured = measured_splits(cfg.ablation, sizes)
    if not results.empty:  # a selection can be empty (no neuron harmful on val): no rows
        results = results[results["seed"].isin(cfg.seeds) & results["split"].isin(measured)]
    if "selection" in results:
        results = results[results["selection"].isin(selections)]
    return SweepSummary(store.location, kind.name, kind.summary(results), rows, times, runs, reused)


def _manifest_run(cfg: RunSpec, key: RunKey, artifact: models.ModelArtifact) -> dict[str, Any]:
    """A run's manifest entry: where its model is, how to load its data (this sweep's
    absolute paths), its accuracies and training time."""
    meta = artifact.meta
    return {
        "dataset": key.dataset, "model": key.model, "seed": key.seed, "model_path": artifact.path,
        "dataset_params": cfg.dataset.for_seed(key.seed).loader_params(), "hidden_sizes": meta["hidden_sizes"],
        "train_accuracy": meta["train_accuracy"], "val_accuracy": meta["val_accuracy"],
        "test_accuracy": meta["test_accuracy"], "n_iter": meta["n_iter"],
        "timings": {"train_seconds": meta["train_seconds"]},
    }
