"""Ray orchestration: the only module that imports ``ray``.

Coarse tasks, arrays in the object store once (data per dataset, weights per model),
in-flight work capped with ``ray.wait``, a progress bar, BLAS threads set per worker,
and GPU shards in long-lived actors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from sweep import models, tasks
from sweep.config import DatasetConfig, ModelConfig, RayConfig
from sweep.plan import RunKey, Shard
from sweep.store import ResultStore


class ExecutionError(RuntimeError):
    """A sweep could not run: Ray unreachable, or a shard failed for good."""


def connect(cfg: RayConfig) -> None:
    """Start or join Ray once per process (Hydra multirun jobs share it).

    Raises
    ------
    ExecutionError
        If ``cfg.address`` names a cluster that cannot be reached.
    """
    if ray.is_initialized():
        return
    try:
        ray.init(
            address=cfg.address,
            num_cpus=cfg.num_cpus if cfg.address is None else None,
            num_gpus=cfg.num_gpus if cfg.address is None else None,
            include_dashboard=cfg.include_dashboard,
            dashboard_host="127.0.0.1",
            logging_level=logging.WARNING,
            configure_logging=True,
        )
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ExecutionError(
            f"cannot reach Ray at ray.address={cfg.address!r} ({str(error).splitlines()[0]}); "
            "start the cluster (`ray up cluster.yaml` or `ray start --head`) and pass its address, "
            "or use ray.address=null for a local Ray"
        ) from error


def cluster_cpus() -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


@dataclass(frozen=True)
class TrainJob:
    """One model to train: its settings, its seed and where its artifact goes."""

    run: RunKey
    model: ModelConfig
    dataset: DatasetConfig
    seed: int
    path: str


@ray.remote
def _train(job: TrainJob, data: tasks.DataArrays, threads: int) -> models.ModelArtifact:
    return models.train_and_save(job.model, job.dataset, data.splits, job.seed, job.path, threads)


def train_models(jobs: list[TrainJob], data: ray.ObjectRef, max_retries: int) -> dict[RunKey, models.ModelArtifact]:
    """Train the jobs in parallel, each on an equal share of the cluster's cores.

    ``data`` is the object-store reference of the dataset's :class:`~sweep.tasks.DataArrays`.
    """
    if not jobs:
        return {}
    threads = max(1, cluster_cpus() // len(jobs))
    refs = {
        _train.options(num_cpus=threads, max_retries=max_retries).remote(job, data, threads): job.run
        for job in jobs
    }
    done: dict[RunKey, models.ModelArtifact] = {}
    with tqdm(total=len(refs), desc="training", unit="model", leave=False) as bar:
        for ref, artifact in _as_completed(refs):
            done[refs[ref]] = artifact
            bar.update(1)
    return done


def put(value: Any) -> ray.ObjectRef:
    """Place a value in the object store once; tasks receive it zero-copy."""
    return ray.put(value)


@ray.remote
def _run_shard(shard: Shard, model: tasks.ModelInputs, data: tasks.DataArrays, store: ResultStore,
               metadata: dict[str, Any], threads: int) -> tuple[str, int, float]:
    with threadpool_limits(limits=threads):
        return tasks.run_shard(shard, model, data, store, metadata)


@ray.remote
class GpuShardWorker:
    """A long-lived actor holding a GPU share; runs shards with the torch kernels."""

    def run(self, shard: Shard, model: tasks.ModelInputs, data: tasks.DataArrays, store: ResultStore,
            metadata: dict[str, Any]) -> tuple[str, int, float]:
        from sweep import backend

        with backend.use("torch"):
            return tasks.run_shard(shard, model, data, store, metadata)


def _as_completed(refs: Iterable[ray.ObjectRef]) -> Iterator[tuple[ray.ObjectRef, Any]]:
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        yield ready[0], _get(ready[0])


def _get(ref: ray.ObjectRef) -> Any:
    try:
        return ray.get(ref)
    except RayTaskError as error:
        raise ExecutionError(f"a shard failed: {error.cause!r}") from error
    except RayError as error:
        raise ExecutionError(f"a shard was lost after its retries: {error}") from error


@dataclass(frozen=True)
class ShardInputs:
    """Object-store references a shard's task needs."""

    model: ray.ObjectRef
    data: ray.ObjectRef


def run_shards(
    shards: list[Shard], inputs: dict[RunKey, ShardInputs], store: ResultStore,
    metadata: dict[RunKey, dict[str, Any]], cfg: RayConfig, progress: bool,
) -> int:
    """Run every shard, writing each part as it completes; returns the rows written.

    At most ``cfg.max_in_flight`` shards (default twice the cluster's worker slots) are
    submitted at once. With ``cfg.num_gpus_per_worker > 0`` shards go to GPU actors.
    """
    submit = _gpu_submitter(cfg) if cfg.num_gpus_per_worker > 0 else _cpu_submitter(cfg)
    limit = cfg.max_in_flight or 2 * max(1, cluster_cpus() // cfg.threads_per_worker)
    queue = list(shards)
    in_flight: list[ray.ObjectRef] = []
    rows = 0
    with tqdm(total=sum(s.n_rows for s in shards), desc="ablations", unit="abl", disable=not progress) as bar:
        while queue or in_flight:
            while queue and len(in_flight) < limit:
                shard = queue.pop(0)
                in_flight.append(submit(shard, inputs[shard.run], store, metadata[shard.run]))
            ready, in_flight = ray.wait(in_flight, num_returns=1)
            _, n, _ = _get(ready[0])
            rows += n
            bar.update(n)
    return rows


def _cpu_submitter(cfg: RayConfig):
    task = _run_shard.options(num_cpus=cfg.threads_per_worker, max_retries=cfg.max_retries)

    def submit(shard: Shard, refs: ShardInputs, store: ResultStore, metadata: dict[str, Any]) -> ray.ObjectRef:
        return task.remote(shard, refs.model, refs.data, store, metadata, cfg.threads_per_worker)

    return submit


def _gpu_submitter(cfg: RayConfig):
    n_gpus = ray.cluster_resources().get("GPU", 0)
    n_actors = int(n_gpus / cfg.num_gpus_per_worker)
    if n_actors < 1:
        raise ExecutionError(
            f"ray.num_gpus_per_worker={cfg.num_gpus_per_worker} but the cluster has {n_gpus:g} GPUs; "
            "add GPU workers or set ray.num_gpus_per_worker=0"
        )
    actors = [
        GpuShardWorker.options(num_gpus=cfg.num_gpus_per_worker, num_cpus=0, max_restarts=cfg.max_retries,
                               max_task_retries=cfg.max_retries).remote()
        for _ in range(n_actors)
    ]
    turn = iter(range(1 << 62))

    def submit(shard: Shard, refs: ShardInputs, store: ResultStore, metadata: dict[str, Any]) -> ray.ObjectRef:
        return actors[next(turn) % len(actors)].run.remote(shard, refs.model, refs.data, store, metadata)

    return submit
