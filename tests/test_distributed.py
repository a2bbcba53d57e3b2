"""Ray execution: unreachable addresses, multi-node clusters on one machine, GPU actors,
results independent of the number of workers, Hydra multirun on one Ray.

Clusters here listen on 127.0.0.1 only (Ray otherwise swaps loopback for the machine's
address); a test that starts one shuts down whatever Ray the session had first.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from sweep.run import pipeline
from sweep.run import ray_executor as execute
from sweep.kinds.neuron import plan_neurons
from sweep.kinds.synapse import plan_synapses
from sweep.results.shards import NetworkShape, RunKey
from tests.conftest import REPO

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""Makes Ray (this process and the ones it starts) keep 127.0.0.1 instead of the node's address."""

TINY = ["model.hidden_layer_sizes=[64,32]", "model.name=tiny", "model.max_iter=20"]
"""A model that trains in a second on digits."""

SYNAPSES = [*TINY, "ablation=synapses", "ablation.shard_cost=1"]
"""A sweep of its 6,464 synapses in about a hundred 64-synapse shards."""


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sweep_command(*arguments: str) -> list[str]:
    """``python -m sweep ARGUMENTS``, quiet, with Hydra's output folders in the working directory."""
    return [sys.executable, "-m", "sweep", *arguments, "progress=false", "hydra.run.dir=.", "hydra.sweep.dir=."]


def sweep_env() -> dict[str, str]:
    return {**os.environ, **LOOPBACK_ENV, "PYTHONPATH": str(REPO)}


def part_bytes(results: Path) -> dict[str, bytes]:
    """Every part under a results folder, by path relative to it."""
    return {str(p.relative_to(results)): p.read_bytes() for p in sorted(results.rglob("part-*.parquet"))}


@pytest.fixture
def ray_cluster(monkeypatch) -> Iterator[Callable[..., object]]:
    """Factory: ``start(*nodes)`` starts a cluster on 127.0.0.1 and connects this process.

    The head has no CPUs, so tasks run on the worker nodes (each a dict of ``add_node``
    arguments, e.g. ``{"num_cpus": 1}``); returns the ``ray.cluster_utils.Cluster``.
    """
    import ray
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    for key, value in LOOPBACK_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
    # keep the cluster out of /tmp/ray/ray_current_cluster, where any `ray.init()` on this machine looks
    monkeypatch.setattr(ray._private.utils, "write_ray_address", lambda *args, **kwargs: None)
    clusters: list[Cluster] = []

    def start(*nodes: dict) -> Cluster:
        ray.shutdown()
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False})
        clusters.append(cluster)
        for node in nodes:
            cluster.add_node(node_ip_address="127.0.0.1", **node)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        return cluster

    yield start
    ray.shutdown()
    for cluster in clusters:
        cluster.shutdown()


def test_plans_are_deterministic_cover_everything_and_balance_cost_across_layers():
    run, shape = RunKey("mnist", "nn_392_196", 0), NetworkShape((784, 392, 196, 10))
    shards = plan_neurons(run, shape, None, ["zero"], {"test": 7000}, shard_cost=1e11)
    assert [s.id for s in shards] == [s.id for s in plan_neurons(run, shape, None, ["zero"], {"test": 7000}, 1e11)]
    assert len({s.id for s in shards}) == len(shards)
    for layer, width in enumerate(shape.hidden_sizes):
        ranges = sorted((s.start, s.stop) for s in shards if s.layer == layer)
        assert ranges[0][0] == 0 and ranges[-1][1] == width and all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    per_layer = {layer: [s.n_rows for s in shards if s.layer == layer] for layer in (0, 1)}
    assert max(per_layer[0]) < min(per_layer[1])  # layer 0 recomputes more per unit: smaller shards
    assert all(s.cost <= 1e11 for s in shards)
    synapses = plan_synapses(run, shape, {0: 784 * 392, 2: 1960}, "all", {"test": 7000}, shard_cost=2e9)
    assert sum(s.n_rows for s in synapses) == 784 * 392 + 1960 and all(s.n_rows >= 64 for s in synapses)


def test_unreachable_address_fails_fast_with_one_line(tmp_path):
    clock = time.monotonic()
    done = subprocess.run(sweep_command(f"ray.address=127.0.0.1:{unused_port()}", f"paths.results={tmp_path}"),
                          cwd=tmp_path, env=sweep_env(), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and time.monotonic() - clock < 30
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot reach Ray at ray.address='127.0.0.1:") and "ray up cluster.yaml" in last


@pytest.mark.slow
@pytest.mark.ray
def test_same_bytes_on_a_cluster_one_task_at_a_time_and_one_local_worker(ray_cluster, run_config, tmp_path):
    import ray

    models = f"paths.models={tmp_path / 'models'}"
    ray_cluster({"num_cpus": 1}, {"num_cpus": 1})
    roots = {name: tmp_path / name for name in ("cluster", "serial", "local")}
    pipeline.run(run_config(*SYNAPSES, models, f"paths.results={roots['cluster']}"))
    pipeline.run(run_config(*SYNAPSES, models, f"paths.results={roots['serial']}", "ray.max_in_flight=1"))
    ray.shutdown()
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    pipeline.run(run_config(*SYNAPSES, models, f"paths.results={roots['local']}"))
    cluster, serial, local = (part_bytes(root) for root in roots.values())
    assert len(cluster) > 90 and cluster == serial == local


GPU_KINDS = {
    "neuron": (["ablation=neurons"], ["mode", "split", "layer", "unit"]),
    "synapse": (["ablation=synapses", "ablation.layers=[1,2]"], ["split", "layer", "source", "target"]),
    "unit": (["ablation=cumulative", "ablation.orders=[random,selectivity_high]", "ablation.k_points=6",
              "ablation.repetitions=2"], ["split", "layer", "unit"]),
    "cumulative": (None, ["mode", "split", "scope", "order", "repetition", "k"]),
    "pruning": (["ablation=pruning", "dataset.val_fraction=0.2", "ablation.repetitions=2", "ablation.max_removed=0.5"],
                ["mode", "scope", "method", "repetition", "step", "split"]),
    "knockout": (["ablation=class_knockout", "dataset.val_fraction=0.2", "ablation.classes=[1]",
                  "ablation.scopes=[network]"], ["mode", "scope", "target", "step", "split"]),
    "pair": (["ablation=pairs", "ablation.metrics=full", "ablation.modes=[zero,mean]"],
             ["mode", "split", "layer_a", "unit_a", "layer_b", "unit_b"]),
}
"""Every result kind: the sweep that writes it (cumulative rides on the unit sweep) and its row keys."""


@pytest.mark.slow
@pytest.mark.ray
def test_gpu_shares_become_actors_and_every_kind_matches_the_cpu_results(ray_cluster, run_config, tmp_path):
    pytest.importorskip("torch")
    import ray

    from sweep.kinds import KINDS

    assert set(GPU_KINDS) == set(KINDS)  # a new kind must be added here
    ray_cluster({"num_cpus": 1, "num_gpus": 1})
    gpu_run = lambda *o: run_config(*TINY, "ray.num_gpus_per_worker=0.5", *o)  # noqa: E731
    actors = execute.start_gpu_workers(gpu_run().ray)
    assert [a["gpu_ids"] for a in ray.get([a.describe.remote() for a in actors])] == [[0], [0]]
    del actors
    results = {}
    for overrides, _ in (v for v in GPU_KINDS.values() if v[0]):
        on_gpu = pipeline.run(gpu_run(*overrides))
        on_cpu = pipeline.run(run_config(*TINY, *overrides, f"paths.results={tmp_path / 'cpu'}"))
        results.update({kind: (on_gpu.results, on_cpu.results) for kind in KINDS})
    for kind, (_, keys) in GPU_KINDS.items():
        gpu, cpu = (pd.read_parquet(f"{root}/kind={kind}").sort_values(keys, ignore_index=True) for root in results[kind])
        assert len(gpu) == len(cpu) > 0
        exact = [c for c in gpu.columns if not c.startswith("loss") and gpu[c].dtype != float]
        pd.testing.assert_frame_equal(gpu[exact], cpu[exact])  # keys, counts, modes: identical
        pd.testing.assert_frame_equal(gpu.drop(columns=exact), cpu.drop(columns=exact), rtol=1e-9)


@pytest.mark.slow
@pytest.mark.ray
def test_hydra_multirun_writes_both_models_from_one_ray(tmp_path):
    command = sweep_command("-m", "model=nn_392,nn_392_196", "dataset=digits", "model.hidden_layer_sizes=[16]",
                            "model.max_iter=5", "ray.num_cpus=1", f"paths.results={tmp_path / 'results'}")
    process = subprocess.Popen(command, cwd=tmp_path, env=sweep_env(), stderr=subprocess.PIPE, text=True)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-2000:]
    folder = tmp_path / "results" / "default" / "kind=neuron" / "dataset=digits"
    assert sorted(p.name for p in folder.iterdir()) == ["model=nn_392", "model=nn_392_196"]
    assert len(list(Path("/tmp/ray").glob(f"session_*_{process.pid}"))) == 1  # Ray names sessions by the driver's pid
