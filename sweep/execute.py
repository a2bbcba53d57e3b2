"""Ray orchestration: the only module that imports ``ray``.

Coarse tasks, arrays in the object store once (data per dataset, weights per model),
in-flight work capped with ``ray.wait``, a progress bar, BLAS threads set per worker,
and GPU shards in long-lived actors.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from sweep import backend, models, tasks
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
    _check_reachable(cfg.address)
    try:
        ray.init(
            address=cfg.address or "local",  # null: a new Ray, never one recorded in /tmp/ray
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


REACH_TIMEOUT_S = 5.0
"""How long :func:`connect` waits for a ``host:port`` address to accept a connection."""


def _host_port(address: str | None) -> tuple[str, int] | None:
    """``(host, port)`` of an explicit address (``ray://`` included); None for null / ``auto``."""
    if address in (None, "auto", "local"):
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


def _check_reachable(address: str | None) -> None:
    """Fail in seconds when an explicit address refuses connections (``ray.init`` retries for minutes)."""
    target = _host_port(address)
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=REACH_TIMEOUT_S).close()
    except OSError as error:
        raise ExecutionError(
            f"cannot reach Ray at ray.address={address!r} ({error.strerror or error}); start the cluster "
            "(`ray up cluster.yaml` or `ray start --head`) and pass its address, or use ray.address=null "
            "for a local Ray"
        ) from error


def cluster_cpus() -> int:
    """CPUs of the whole cluster (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def node_cpus() -> int:
    """CPUs of the largest alive node (at least 1): the most one task can be given."""
    return max([1] + [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n["Alive"]])


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
    """Train the jobs in parallel, each on an equal share of the cluster's cores (at most one node's).

    ``data`` is the object-store reference of the dataset's :class:`~sweep.tasks.DataArrays`.
    """
    if not jobs:
        return {}
    threads = max(1, min(node_cpus(), cluster_cpus() // len(jobs)))
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


def to_device(model: tasks.ModelInputs, data: tasks.DataArrays, device: str) -> tuple[tasks.ModelInputs, tasks.DataArrays]:
    """A model's weights and a dataset's inputs as torch tensors on ``device`` (labels stay numpy)."""
    convert = backend.CONVERTERS["torch"](device)
    net = model.net.with_weights(tuple(map(convert, model.net.coefs)), tuple(map(convert, model.net.intercepts)))
    splits = {name: (convert(X), y) for name, (X, y) in data.splits.items()}
    return replace(model, net=net), tasks.DataArrays(splits)


@ray.remote
class GpuShardWorker:
    """A long-lived actor holding a GPU share; runs shards with the torch kernels.

    Inputs arrive as object references (inside a list, so Ray does not resolve them) and
    are moved to the actor's device when they change; one (model, dataset) pair is kept,
    which bounds the device memory used.
    """

    def __init__(self) -> None:
        import torch

        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self._inputs: dict[tuple[ray.ObjectRef, ray.ObjectRef], tuple[tasks.ModelInputs, tasks.DataArrays]] = {}

    def describe(self) -> dict[str, Any]:
        """The actor's device and the GPU ids Ray assigned it."""
        return {"device": self.device, "gpu_ids": ray.get_gpu_ids()}

    def run(self, shard: Shard, refs: list[ray.ObjectRef], store: ResultStore,
            metadata: dict[str, Any]) -> tuple[str, int, float]:
        key = (refs[0], refs[1])
        if key not in self._inputs:
            self._inputs = {key: to_device(*ray.get(refs), self.device)}
        return tasks.run_shard(shard, *self._inputs[key], store, metadata)


def _as_completed(refs: Iterable[ray.ObjectRef]) -> Iterator[tuple[ray.ObjectRef, Any]]:
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        yield ready[0], _get(ready[0])


def _get(ref: ray.ObjectRef) -> Any:
    try:
        return ray.get(ref)
    except RayTaskError as error:
        raise ExecutionError(f"a task failed: {error.cause!r}") from error
    except RayError as error:
        raise ExecutionError(f"a task was lost after its retries: {error}") from error


@dataclass(frozen=True)
class ShardInputs:
    """Object-store references a shard's task needs."""

    model: ray.ObjectRef
    data: ray.ObjectRef


Submit = Callable[[Shard, ShardInputs, ResultStore, dict[str, Any]], ray.ObjectRef]
"""Starts one shard's task (CPU task or GPU actor call) and returns its result reference."""


def run_shards(
    shards: list[Shard], inputs: dict[RunKey, ShardInputs], store: ResultStore,
    metadata: dict[RunKey, dict[str, Any]], cfg: RayConfig, progress: bool,
) -> int:
    """Run every shard, writing each part as it completes; returns the rows written.

    The costliest shards go first (so no long one is left alone at the end). At most
    ``cfg.max_in_flight`` shards (default twice the worker slots: CPU tasks or GPU actors)
    are submitted at once. With ``cfg.num_gpus_per_worker > 0`` shards go to GPU actors. The progress
    bar counts ablations done out of the total, with the rate and the time left.
    """
    if not shards:
        return 0
    submit, slots = _gpu_submitter(cfg) if cfg.num_gpus_per_worker > 0 else _cpu_submitter(cfg)
    limit = cfg.max_in_flight or 2 * slots
    queue = deque(sorted(shards, key=lambda s: -s.cost))
    in_flight: list[ray.ObjectRef] = []
    rows = 0
    with tqdm(total=sum(s.n_rows for s in shards), desc="ablations", unit="abl", disable=not progress) as bar:
        while queue or in_flight:
            while queue and len(in_flight) < limit:
                shard = queue.popleft()
                in_flight.append(submit(shard, inputs[shard.run], store, metadata[shard.run]))
            ready, in_flight = ray.wait(in_flight, num_returns=1)
            _, n, _ = _get(ready[0])
            rows += n
            bar.update(n)
    return rows


def _cpu_submitter(cfg: RayConfig) -> tuple[Submit, int]:
    """Shards as tasks of ``cfg.threads_per_worker`` CPUs; also the number of task slots."""
    task = _run_shard.options(num_cpus=cfg.threads_per_worker, max_retries=cfg.max_retries)

    def submit(shard: Shard, refs: ShardInputs, store: ResultStore, metadata: dict[str, Any]) -> ray.ObjectRef:
        return task.remote(shard, refs.model, refs.data, store, metadata, cfg.threads_per_worker)

    return submit, max(1, cluster_cpus() // cfg.threads_per_worker)


def start_gpu_workers(cfg: RayConfig) -> list[ray.actor.ActorHandle]:
    """One :class:`GpuShardWorker` per ``cfg.num_gpus_per_worker`` share of the cluster's GPUs.

    Raises
    ------
    ExecutionError
        If the cluster has less than one share of GPU.
    """
    n_gpus = ray.cluster_resources().get("GPU", 0)
    n_actors = int(n_gpus / cfg.num_gpus_per_worker)
    if n_actors < 1:
        raise ExecutionError(
            f"ray.num_gpus_per_worker={cfg.num_gpus_per_worker} but the cluster has {n_gpus:g} GPUs; "
            "add GPU workers or set ray.num_gpus_per_worker=0"
        )
    options = GpuShardWorker.options(num_gpus=cfg.num_gpus_per_worker, num_cpus=0,
                                     max_restarts=cfg.max_retries, max_task_retries=cfg.max_retries)
    return [options.remote() for _ in range(n_actors)]


def _gpu_submitter(cfg: RayConfig) -> tuple[Submit, int]:
    """Shards as calls to GPU actors, in turn; also the number of actors."""
    actors = start_gpu_workers(cfg)
    turn = iter(range(1 << 62))

    def submit(shard: Shard, refs: ShardInputs, store: ResultStore, metadata: dict[str, Any]) -> ray.ObjectRef:
        actor = actors[next(turn) % len(actors)]
        return actor.run.remote(shard, [refs.model, refs.data], store, metadata)

    return submit, len(actors)
