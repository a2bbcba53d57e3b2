"""The Ray executor: the only module that imports ``ray``.

Coarse tasks, arrays in the object store once (data per dataset, weights per model),
in-flight work capped with ``ray.wait``, a progress bar, BLAS threads set per worker,
and GPU shards in long-lived actors, each fed a new shard as soon as it is idle. A local
Ray (``ray.address: null``) listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import queue
import socket
import threading
import time
from unittest import mock
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError
from ray.util import ActorPool
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from sweep.data.models import ModelArtifact, train_and_save
from sweep.kernels.backend import CONVERTERS
from sweep.kinds.base import DataArrays, ModelInputs
from sweep.results.shards import RunKey, Shard
from sweep.results.store import ResultStore
from sweep.run.executor import ExecutionError, ShardInputs, TrainJob
from sweep.run.worker import run_shard
from sweep.spec import RaySpec

LOOPBACK = "127.0.0.1"
"""The node address of a local Ray: every Ray process listens there only."""


def connect(cfg: RaySpec) -> "RayExecutor":
    """Start or join Ray once per process (Hydra multirun jobs share it).

    Raises
    ------
    ExecutionError
        If ``cfg.address`` names a cluster that cannot be reached.
    """
    if not ray.is_initialized():
        _init(cfg)
        if cfg.address is None:
            _warm_up()
    _check_gpus(cfg)
    n_gpus = ray.cluster_resources().get("GPU", 0)
    if cfg.num_gpus_per_train > n_gpus:
        raise ExecutionError(f"ray.num_gpus_per_train={cfg.num_gpus_per_train} but the cluster has {n_gpus:g} GPUs; "
                             "add GPU workers (or ray.num_gpus=N for a local Ray) or set ray.num_gpus_per_train=0 "
                             "to train on CPU")
    return RayExecutor(cfg)


def _check_gpus(cfg: RaySpec) -> int:
    """The number of GPU actors ``cfg.num_gpus_per_worker`` makes of the cluster's GPUs (0 for CPU
    tasks), checked when Ray starts, before any training.

    Raises
    ------
    ExecutionError
        If GPU shares are asked for and the cluster has less than one.
    """
    if cfg.num_gpus_per_worker == 0:
        return 0
    n_gpus = ray.cluster_resources().get("GPU", 0)
    n_actors = int(n_gpus / cfg.num_gpus_per_worker)
    if n_actors < 1:
        raise ExecutionError(
            f"ray.num_gpus_per_worker={cfg.num_gpus_per_worker} but the cluster has {n_gpus:g} GPUs; "
            "add GPU workers (or ray.num_gpus=N for a local Ray that should use N GPUs) or set "
            "ray.num_gpus_per_worker=0"
        )
    return n_actors


def shutdown() -> None:
    """Stop this process's Ray (a local one with all its processes)."""
    ray.shutdown()


@ray.remote(num_cpus=1)
def _import_worker_modules() -> None:
    import sweep.data.models  # noqa: F401  sklearn, scipy and the kernels: ~2 s per new process here
    import sweep.run.worker  # noqa: F401


def _warm_up() -> None:
    """Start one worker per CPU of a local Ray importing what tasks need, without waiting for
    them: the imports overlap the driver's data loading instead of delaying the first task."""
    for _ in range(cluster_cpus()):
        _import_worker_modules.remote()


@contextlib.contextmanager
def _keep_loopback_node_address() -> Iterator[None]:
    """Let ``ray.init`` keep 127.0.0.1 as the node address of a local Ray.

    ``ray.init`` rewrites a loopback ``_node_ip_address`` to the machine's reachable address
    (``ray._private.services.resolve_ip_for_localhost``), and then its GCS, raylet, workers and
    agents listen on every interface; with the node address left at 127.0.0.1 they all bind to
    it (checked by ``tests/test_loopback.py``). Only a private local Ray is started this way.
    """
    from ray._private import services

    with mock.patch.object(services, "resolve_ip_for_localhost", lambda host: host):
        yield


def _on_loopback(address: str | None) -> bool:
    """Whether an explicit cluster address is on this machine's loopback interface (a head
    started with ``ray start --head --node-ip-address=127.0.0.1``)."""
    target = _host_port(address)
    if target is None:
        return False
    try:
        return ipaddress.ip_address(socket.gethostbyname(target[0])).is_loopback
    except (OSError, ValueError):
        return False


def _use_this_machines_token() -> None:
    """Send this machine's Ray token (if any, and ``RAY_AUTH_MODE`` is unset) to a cluster on
    127.0.0.1, as ``ray.init`` does for a cluster it finds itself (``address=auto``): an
    explicit address gets no token from Ray, and a cluster with token authentication then
    refuses the driver only after half a minute of retries."""
    logging.getLogger(TOKEN_NOTICE_LOGGER).setLevel(logging.ERROR)  # its notice, as for a local Ray
    with contextlib.suppress(ImportError):  # Ray releases without token authentication
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )

        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _init(cfg: RaySpec) -> None:
    _check_reachable(cfg.address)
    local = cfg.address is None
    loopback = local or _on_loopback(cfg.address)
    if loopback and not local:
        _use_this_machines_token()
    try:
        # a driver joining a cluster on 127.0.0.1 must stay on 127.0.0.1 too: rewritten to the
        # machine's address it waits for ever for a GCS that listens on loopback only
        with _keep_loopback_node_address() if loopback else contextlib.nullcontext():
            _start(cfg, local, loopback)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ExecutionError(
            f"cannot reach Ray at ray.address={cfg.address!r} ({str(error).splitlines()[0]}); "
            "start the cluster (`ray up cluster.yaml` or `ray start --head`) and pass its address, "
            "or use ray.address=null for a local Ray"
        ) from error


WORKER_NICENESS = "0"
"""Niceness of a local Ray's workers. Ray's default (15) lets any busy program on a laptop
starve a sweep (measured: a training task got 6 % of a core beside two busy loops); on a
local Ray the workers are the user's own foreground work. A cluster keeps Ray's default: its
nodes are dedicated, and there the low priority keeps the raylet and GCS responsive."""


TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"
"""Where Ray announces, on every start, that token authentication is on: noise for a private
local Ray that listens on 127.0.0.1 only (the authentication itself stays on)."""


def _start(cfg: RaySpec, local: bool, loopback: bool) -> None:
    if local:
        os.environ.setdefault("RAY_worker_niceness", WORKER_NICENESS)
        logging.getLogger(TOKEN_NOTICE_LOGGER).setLevel(logging.ERROR)
    ray.init(
        address=cfg.address or "local",  # null: a new Ray, never one recorded in /tmp/ray
        num_cpus=cfg.num_cpus if local else None,
        num_gpus=cfg.num_gpus if local else None,
        include_dashboard=cfg.include_dashboard,
        dashboard_host=LOOPBACK,
        _node_ip_address=LOOPBACK if loopback else None,
        logging_level=logging.WARNING,
        configure_logging=True,
    )


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


@ray.remote
def _train(job: TrainJob, data: DataArrays, threads: int, device: str = "cpu") -> Iterator[tuple[int, float] | ModelArtifact]:
    """A generator task: yields ``(iteration, loss)`` as the model trains, then its artifact.

    The fit runs in a thread of the task; its iterations are streamed to the driver as they
    happen (no extra process)."""
    updates: queue.Queue = queue.Queue()
    outcome: list = []

    def fit() -> None:
        try:
            outcome.append(train_and_save(job.model, job.dataset, data.splits, job.seed, job.path, threads,
                                          lambda iteration, loss: updates.put((iteration, loss)), device))
        except BaseException as error:  # noqa: BLE001 - re-raised in the task below
            outcome.append(error)
        updates.put(None)

    threading.Thread(target=fit, daemon=True).start()
    while (update := updates.get()) is not None:
        yield update
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    yield outcome[0]


def _training_state(jobs: list[TrainJob], done: dict[RunKey, Any], latest: dict[RunKey, tuple[int, float]]) -> str:
    """``seed 0: it 12, loss 0.1234, seed 1: done`` for the progress line."""
    def state(run: RunKey) -> str:
        if run in done:
            return "done"
        return f"it {latest[run][0]}, loss {latest[run][1]:.4f}" if run in latest else "starting"

    return ", ".join(f"seed {job.run.seed}: {state(job.run)}" for job in sorted(jobs, key=lambda j: j.run.seed))


PROGRESS_INTERVAL_S = 0.5
"""How often the driver refreshes the training progress line when nothing new arrived."""


def train_models(
    jobs: list[TrainJob], data: Mapping[RunKey, ray.ObjectRef], threads: int, max_retries: int, progress: bool = True,
    gpus_per_train: float = 0.0,
) -> dict[RunKey, ModelArtifact]:
    """Train the jobs in parallel, each a task of ``threads`` CPUs and BLAS threads, showing
    each model's iteration, loss and time while it trains.

    ``data`` maps each run to the object-store reference of its :class:`~sweep.kinds.base.DataArrays`.
    One BLAS thread per task is the default (``ray.threads_per_worker``): measured on 2 cores,
    a second thread never made an MLP fit faster, and oversubscribed threads made it many
    times slower (``bench/training.py``). A torch model trains on a GPU share of
    ``gpus_per_train`` when above 0 (``ray.num_gpus_per_train``), on CPU otherwise.
    """
    def submit(job: TrainJob) -> ray.ObjectRef:
        gpus = gpus_per_train if job.model.architecture != "mlp" else 0.0
        task = _train.options(num_cpus=threads, num_gpus=gpus, max_retries=max_retries)
        return task.remote(job, data[job.run], threads, "cuda" if gpus else "cpu")

    streams = {submit(job): job for job in jobs}
    latest: dict[RunKey, tuple[int, float]] = {}
    done: dict[RunKey, ModelArtifact] = {}
    start = time.perf_counter()
    total = sum(job.model.iterations for job in jobs)
    with tqdm(total=total, desc="training", unit="it", disable=not progress or not jobs, leave=False) as bar:
        while len(done) < len(jobs):
            waiting = [stream for stream, job in streams.items() if job.run not in done]
            ready, _ = ray.wait(waiting, num_returns=1, timeout=PROGRESS_INTERVAL_S)
            for stream in ready:
                run, update = streams[stream].run, _get(next(stream))
                if isinstance(update, ModelArtifact):
                    done[run] = update
                else:
                    latest[run] = update
            bar.update(sum(job.model.iterations if job.run in done else latest.get(job.run, (0, 0.0))[0]
                           for job in jobs) - bar.n)
            bar.set_postfix_str(f"{_training_state(jobs, done, latest)} ({time.perf_counter() - start:.0f} s)",
                                refresh=False)  # drawn at tqdm's own rate, not once per iteration
    return done


@ray.remote
def _run_shard(shard: Shard, model: ModelInputs, data: DataArrays, store: ResultStore,
               metadata: dict[str, Any], threads: int) -> tuple[str, int, float]:
    with threadpool_limits(limits=threads):
        return run_shard(shard, model, data, store, metadata)


def to_device(model: ModelInputs, data: DataArrays, device: str) -> tuple[ModelInputs, DataArrays]:
    """A model's weights and a dataset's inputs as torch tensors on ``device`` (labels stay numpy)."""
    convert = CONVERTERS["torch"](device)
    net = model.net.with_weights(tuple(map(convert, model.net.coefs)), tuple(map(convert, model.net.intercepts)))
    splits = {name: (convert(X), y) for name, (X, y) in data.splits.items()}
    return replace(model, net=net), DataArrays(splits)


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
        self._inputs: dict[tuple[ray.ObjectRef, ray.ObjectRef], tuple[ModelInputs, DataArrays]] = {}

    def describe(self) -> dict[str, Any]:
        """The actor's device and the GPU ids Ray assigned it."""
        return {"device": self.device, "gpu_ids": ray.get_gpu_ids()}

    def run(self, shard: Shard, refs: list[ray.ObjectRef], store: ResultStore,
            metadata: dict[str, Any]) -> tuple[str, int, float]:
        key = (refs[0], refs[1])
        if key not in self._inputs:
            self._inputs = {key: to_device(*ray.get(refs), self.device)}
        return run_shard(shard, *self._inputs[key], store, metadata)


def _get(ref: ray.ObjectRef) -> Any:
    try:
        return ray.get(ref)
    except RayTaskError as error:
        raise ExecutionError(f"a task failed: {error.cause!r}") from error
    except RayError as error:
        raise ExecutionError(f"a task was lost after its retries: {error}") from error


def run_shards(
    shards: list[Shard], inputs: dict[RunKey, ShardInputs], store: ResultStore,
    metadata: dict[RunKey, dict[str, Any]], cfg: RaySpec, progress: bool,
) -> int:
    """Run every shard, writing each part as it completes; returns the rows written.

    The costliest shards go first (so no long one is left alone at the end). CPU shards are
    tasks, at most ``cfg.max_in_flight`` at once (default twice the worker slots); with
    ``cfg.num_gpus_per_worker > 0`` they go to GPU actors, each given the next shard as soon
    as it is idle. The progress bar counts ablations done out of the total.
    """
    if not shards:
        return 0
    queue = deque(sorted(shards, key=lambda s: -s.cost))
    results = _on_gpu_actors(queue, inputs, store, metadata, cfg) if cfg.num_gpus_per_worker > 0 \
        else _as_tasks(queue, inputs, store, metadata, cfg)
    rows = 0
    with tqdm(total=sum(s.n_rows for s in shards), desc="ablations", unit="abl", disable=not progress) as bar:
        for _, n, _ in results:
            rows += n
            bar.update(n)
    return rows


def _as_tasks(queue: deque[Shard], inputs: dict[RunKey, ShardInputs], store: ResultStore,
              metadata: dict[RunKey, dict[str, Any]], cfg: RaySpec) -> Iterator[tuple[str, int, float]]:
    """Shards as tasks of ``cfg.threads_per_worker`` CPUs, in-flight work capped."""
    task = _run_shard.options(num_cpus=cfg.threads_per_worker, max_retries=cfg.max_retries)
    limit = cfg.max_in_flight or 2 * max(1, cluster_cpus() // cfg.threads_per_worker)
    in_flight: list[ray.ObjectRef] = []
    while queue or in_flight:
        while queue and len(in_flight) < limit:
            shard = queue.popleft()
            refs = inputs[shard.run]
            in_flight.append(task.remote(shard, refs.model, refs.data, store, metadata[shard.run], cfg.threads_per_worker))
        ready, in_flight = ray.wait(in_flight, num_returns=1)
        yield _get(ready[0])


def start_gpu_workers(cfg: RaySpec) -> list[ray.actor.ActorHandle]:
    """One :class:`GpuShardWorker` per ``cfg.num_gpus_per_worker`` share of the cluster's GPUs.

    Raises
    ------
    ExecutionError
        If the cluster has less than one share of GPU.
    """
    n_actors = _check_gpus(cfg)
    options = GpuShardWorker.options(num_gpus=cfg.num_gpus_per_worker, num_cpus=0,
                                     max_restarts=cfg.max_retries, max_task_retries=cfg.max_retries)
    return [options.remote() for _ in range(n_actors)]


def _on_gpu_actors(queue: deque[Shard], inputs: dict[RunKey, ShardInputs], store: ResultStore,
                   metadata: dict[RunKey, dict[str, Any]], cfg: RaySpec) -> Iterator[tuple[str, int, float]]:
    """Shards as calls to GPU actors through an actor pool: an idle actor takes the next one."""
    pool = ActorPool(start_gpu_workers(cfg))
    for shard in queue:
        refs = inputs[shard.run]
        pool.submit(lambda actor, s, r=refs: actor.run.remote(s, [r.model, r.data], store, metadata[s.run]), shard)
    while pool.has_next():
        try:
            yield pool.get_next_unordered()
        except RayTaskError as error:
            raise ExecutionError(f"a task failed: {error.cause!r}") from error
        except RayError as error:
            raise ExecutionError(f"a task was lost after its retries: {error}") from error


class RayExecutor:
    """:class:`~sweep.run.executor.Executor` on Ray (local or a cluster)."""

    def __init__(self, cfg: RaySpec) -> None:
        self.cfg = cfg

    def put(self, value: Any) -> ray.ObjectRef:
        """Place a value in the object store once; tasks receive it zero-copy."""
        return ray.put(value)

    def train(self, jobs: list[TrainJob], data: Mapping[RunKey, ray.ObjectRef],
              progress: bool = True) -> dict[RunKey, ModelArtifact]:
        return train_models(jobs, data, self.cfg.threads_per_worker, self.cfg.max_retries, progress,
                            self.cfg.num_gpus_per_train)

    def run_shards(self, shards: list[Shard], inputs: dict[RunKey, ShardInputs], store: ResultStore,
                   metadata: dict[RunKey, dict[str, Any]], progress: bool) -> int:
        return run_shards(shards, inputs, store, metadata, self.cfg, progress)
