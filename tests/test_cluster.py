"""A multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``: a head without CPUs
and two 1-CPU nodes, all on 127.0.0.1) with results on an S3 server (moto): shards run on
several nodes, and ``python -m sweep ray=cluster ray.address=127.0.0.1:PORT`` (a driver
joining a cluster on loopback, which Ray would otherwise move to the machine's address and
leave waiting for ever) reuses every part."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sweep.run import pipeline
from sweep.run import ray_executor
from sweep.run.worker import run_shard
from tests.test_distributed import SYNAPSES, ray_cluster, sweep_env  # noqa: F401  (fixture)
from tests.test_s3 import s3_root  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def test_shards_run_on_several_nodes_and_a_loopback_driver_reuses_every_part(
        ray_cluster, run_config, s3_root, tmp_path, monkeypatch):  # noqa: F811
    import ray

    cluster = ray_cluster({"num_cpus": 1}, {"num_cpus": 1})
    nodes = tmp_path / "nodes"
    nodes.mkdir()

    @ray.remote
    def noting_node(shard, model, data, store, metadata, threads):
        """ray_executor's shard task, leaving a file named after the node that ran it."""
        (nodes / f"{ray.get_runtime_context().get_node_id()}-{shard.id}").touch()
        return run_shard(shard, model, data, store, metadata)

    monkeypatch.setattr(ray_executor, "_run_shard", noting_node)
    common = (*SYNAPSES, f"paths.results='{s3_root}'")  # about a hundred shards
    first = pipeline.run(run_config(*common))
    assert first.rows_written == 64 * 64 + 64 * 32 + 32 * 10
    worker_nodes = {n["NodeID"] for n in ray.nodes() if n["Resources"].get("CPU")}
    used = {p.name.split("-", 1)[0] for p in nodes.iterdir()}
    assert len(used) == 2 and used == worker_nodes

    ray.shutdown()  # the CLI's driver is another process, joining on 127.0.0.1
    done = subprocess.run(
        [sys.executable, "-m", "sweep", *common, "ray=cluster", f"ray.address={cluster.address}", "progress=false"],
        cwd=tmp_path, env=sweep_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"\n{first.rows_written:,} synapse ablations reused, 0 computed (" in done.stdout
    assert "Token authentication" not in done.stderr
    assert cluster.address.startswith("127.0.0.1:") and sorted(p.name for p in tmp_path.iterdir()) == ["nodes"]
