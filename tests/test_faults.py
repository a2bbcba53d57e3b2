"""Faults: lost worker nodes, a killed driver, broken parts, concurrent sweeps and manifests.

The cluster tests run a real multi-node Ray on 127.0.0.1 (``ray_cluster`` from
:mod:`tests.test_distributed`) and a sweep of about a hundred small synapse shards.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sweep.run import pipeline
from sweep.results.shards import RunKey, Shard
from sweep.kinds import SCHEMAS
from sweep.results.store import ResultStore, to_table
from tests import test_distributed
from tests.test_distributed import SYNAPSES, TINY, part_bytes, sweep_command, sweep_env
from tests.test_store import neuron_columns

ray_cluster = test_distributed.ray_cluster  # the fixture, shared

SYNAPSE_KEYS = ["seed", "layer", "source", "target"]

PAIRS = [*TINY, "ablation=pairs", "ablation.shard_cost=1e7"]
"""Every pair of the tiny net's 96 hidden units (4,560), in a few dozen shards."""


def wait_for_parts(results: Path, count: int, timeout: float = 60) -> int:
    """Block until ``results`` holds at least ``count`` parts; returns how many it holds."""
    deadline = time.monotonic() + timeout
    while (found := len(list(results.rglob("part-*.parquet")))) < count:
        assert time.monotonic() < deadline, f"only {found} parts after {timeout} s"
        time.sleep(0.02)
    return found


def in_thread(work: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_concurrent_manifest_writers_keep_every_run(tmp_path):
    store = ResultStore(str(tmp_path), "study", SCHEMAS)
    runs = [{"dataset": "digits", "model": "m", "seed": seed, "test_accuracy": seed / 10} for seed in range(8)]
    threads = [in_thread(lambda run=run: store.write_manifest({"seeds": [run["seed"]]}, [run], {"numpy": "1"}))
               for run in runs]
    for thread in threads:
        thread.join()
    manifest = json.loads((tmp_path / "study" / "_manifest.json").read_text())
    assert manifest["runs"] == runs == store.read_manifest()["runs"]
    assert sorted(p.name for p in (tmp_path / "study" / "_runs").iterdir()) == [f"digits-m-{s}-sweep.json" for s in range(8)]


def test_a_part_with_the_wrong_row_count_is_redone(tmp_path):
    store = ResultStore(str(tmp_path), "study", SCHEMAS)
    short = Shard(RunKey("digits", "m", 0), "neuron", "zero", "test", 0, 0, 5)
    full = Shard(short.run, "neuron", "zero", "test", 0, 0, 10)
    store.write_part(short, to_table(SCHEMAS["neuron"], neuron_columns(np.arange(5)), {"mode": "zero", "split": "test"}), {})
    Path(store.part_path(short)).rename(store.part_path(full))  # right name, right schema, 5 rows of 10
    assert store.pending([full], {full.run: ""}) == [full]


@pytest.mark.slow
@pytest.mark.ray
def test_killing_a_worker_node_mid_sweep_loses_no_row(ray_cluster, run_config, tmp_path):
    cluster = ray_cluster({"num_cpus": 1}, {"num_cpus": 1})
    cfg = run_config(*SYNAPSES)
    victim = next(iter(cluster.worker_nodes))
    parts_at_kill: list[int] = []

    def kill_when_parts_appear() -> None:
        parts_at_kill.append(wait_for_parts(Path(cfg.paths.results), 5))
        cluster.remove_node(victim, allow_graceful=False)

    killer = in_thread(kill_when_parts_appear)
    summary = pipeline.run(cfg)
    killer.join()
    df = pd.read_parquet(f"{summary.results}/kind=synapse")
    n_parts = len(list(Path(summary.results).rglob("part-*.parquet")))
    assert parts_at_kill[0] < n_parts  # the node died mid-sweep
    assert len(df) == 64 * 64 + 64 * 32 + 32 * 10 and not df.duplicated(SYNAPSE_KEYS).any()


@pytest.mark.slow
@pytest.mark.ray
def test_killing_a_worker_node_mid_pair_sweep_loses_no_row(ray_cluster, run_config, tmp_path):
    cluster = ray_cluster({"num_cpus": 1}, {"num_cpus": 1})
    cfg = run_config(*PAIRS)
    victim = next(iter(cluster.worker_nodes))
    parts_at_kill: list[int] = []

    def kill_when_parts_appear() -> None:
        parts_at_kill.append(wait_for_parts(Path(cfg.paths.results), 3))
        cluster.remove_node(victim, allow_graceful=False)

    killer = in_thread(kill_when_parts_appear)
    summary = pipeline.run(cfg)
    killer.join()
    df = pd.read_parquet(f"{summary.results}/kind=pair")
    n_parts = len(list(Path(summary.results).rglob("part-*.parquet")))
    assert parts_at_kill[0] < n_parts  # the node died mid-sweep
    assert len(df) == 96 * 95 // 2 and not df.duplicated(["layer_a", "unit_a", "layer_b", "unit_b"]).any()


@pytest.mark.slow
@pytest.mark.ray
def test_rerun_after_killing_the_driver_equals_an_uninterrupted_run(ray_cluster, run_config, tmp_path):
    cluster = ray_cluster({"num_cpus": 1}, {"num_cpus": 1})
    models = f"paths.models={tmp_path / 'models'}"
    reference = pipeline.run(run_config(*SYNAPSES, models, f"paths.results={tmp_path / 'reference'}"))
    killed = tmp_path / "killed"
    driver = subprocess.Popen(
        sweep_command(*SYNAPSES, models, f"paths.results={killed}", f"ray.address={cluster.address}",
                      "ray.max_in_flight=1"),
        cwd=tmp_path, env=sweep_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_parts(killed, 5)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    assert len(part_bytes(killed)) < len(part_bytes(Path(reference.results).parent))
    rerun = pipeline.run(run_config(*SYNAPSES, models, f"paths.results={killed}"))
    assert rerun.rows_written < len(pd.read_parquet(f"{reference.results}/kind=synapse"))
    assert part_bytes(killed) == part_bytes(tmp_path / "reference")
    frames = [pd.read_parquet(f"{s.results}/kind=synapse").sort_values(SYNAPSE_KEYS, ignore_index=True)
              for s in (reference, rerun)]
    pd.testing.assert_frame_equal(*frames)


@pytest.mark.slow
@pytest.mark.ray
def test_two_sweeps_into_one_results_root_at_once(ray_cluster, run_config, tmp_path):
    ray_cluster({"num_cpus": 1}, {"num_cpus": 1})
    summaries: dict[int, pipeline.SweepSummary] = {}
    configs = {seed: run_config(*SYNAPSES, f"seeds=[{seed}]") for seed in (0, 1)}  # Hydra composes in one thread
    threads = [in_thread(lambda seed=seed: summaries.update({seed: pipeline.run(configs[seed])})) for seed in configs]
    for thread in threads:
        thread.join()
    df = pd.read_parquet(f"{summaries[0].results}/kind=synapse")
    assert len(df) == 2 * (64 * 64 + 64 * 32 + 32 * 10) and not df.duplicated(SYNAPSE_KEYS).any()
    manifest = json.loads(Path(summaries[0].results, "_manifest.json").read_text())
    assert [r["seed"] for r in manifest["runs"]] == [0, 1]
