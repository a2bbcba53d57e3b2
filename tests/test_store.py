"""Parquet parts: schema, atomic writes, round trips through pandas filters, resume checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sweep.results.shards import RunKey, Shard
from sweep.kinds import KINDS, SCHEMAS
from sweep.results.store import ResultStore, StoreError, to_table


def neuron_columns(units: np.ndarray, n_classes: int = 3) -> dict[str, np.ndarray]:
    k = len(units)
    rng = np.random.default_rng(int(units[0]))
    return {
        "layer": np.zeros(k, dtype=np.int64), "unit": units, "n_samples": np.full(k, 50),
        "accuracy_base": np.full(k, 0.9), "accuracy": 0.9 + rng.integers(-2, 3, k) / 50,
        "effect": rng.integers(-2, 3, k) / 50, "loss_base": np.full(k, 0.3), "loss": rng.random(k),
        "broken": rng.integers(0, 3, k), "fixed": rng.integers(0, 3, k), "p_mcnemar": rng.random(k),
        "class_effect": rng.random((k, n_classes)),
    }


def write(store: ResultStore, seed: int, start: int, stop: int) -> tuple[Shard, dict]:
    shard = Shard(RunKey("digits", "nn_392", seed), "neuron", "zero", "test", 0, start, stop)
    columns = neuron_columns(np.arange(start, stop))
    store.write_part(shard, to_table(SCHEMAS["neuron"], columns, {"mode": "zero", "split": "test"}), {"config": "x"})
    return shard, columns


def test_round_trip_through_pandas_filters(tmp_path):
    store = ResultStore(str(tmp_path), "study", SCHEMAS)
    written = {seed: write(store, seed, 0, 10)[1] for seed in (0, 1, 2)}
    df = pd.read_parquet(f"{store.location}/kind=neuron", filters=[("seed", "=", 1)])
    assert len(df) == 10 and set(df["seed"].astype(int)) == {1}
    np.testing.assert_array_equal(df["effect"].to_numpy(), written[1]["effect"])
    np.testing.assert_array_equal(np.stack(df["class_effect"].to_numpy()), written[1]["class_effect"])
    typed = store.read("neuron", [("seed", ">=", 1)])
    assert typed["seed"].dtype == np.int64 and sorted(typed["seed"].unique()) == [1, 2]
    assert list(typed.columns[: len(KINDS["neuron"].schema)]) == KINDS["neuron"].schema.names


def test_parts_are_written_atomically_and_bytes_are_reproducible(tmp_path):
    store = ResultStore(str(tmp_path), "study", SCHEMAS)
    shard, _ = write(store, 0, 0, 10)
    path = store.part_path(shard)
    first = open(path, "rb").read()
    write(store, 0, 0, 10)
    assert open(path, "rb").read() == first
    folder = tmp_path / "study" / "kind=neuron" / "dataset=digits" / "model=nn_392" / "seed=0"
    assert [p.name for p in folder.iterdir()] == [f"part-{shard.id}.parquet"]


def test_pending_skips_complete_parts_and_redoes_broken_ones(tmp_path):
    store = ResultStore(str(tmp_path), "study", SCHEMAS)
    a, _ = write(store, 0, 0, 10)
    b, _ = write(store, 0, 10, 20)
    c = Shard(a.run, "neuron", "zero", "test", 0, 20, 30)
    prints = {a.run: ""}
    assert store.pending([a, b, c], prints) == [c]
    with open(store.part_path(b), "r+b") as f:  # truncate: a killed writer without atomic rename
        f.truncate(100)
    assert store.pending([a, b, c], prints) == [b, c]


def test_wrong_row_count_is_refused_and_foreign_plans_are_reported(tmp_path):
    store = ResultStore(str(tmp_path), "study", SCHEMAS)
    shard = Shard(RunKey("digits", "nn_392", 0), "neuron", "zero", "test", 0, 0, 5)
    with pytest.raises(StoreError, match="expected 5"):
        store.write_part(shard, to_table(SCHEMAS["neuron"], neuron_columns(np.arange(3)), {"mode": "zero", "split": "test"}), {})
    write(store, 0, 0, 10)
    other_plan = [Shard(shard.run, "neuron", "zero", "test", 0, 0, 20)]
    with pytest.raises(StoreError, match="different shard plan"):
        store.pending(other_plan, {shard.run: ""})
    other_mode = [Shard(shard.run, "neuron", "mean", "test", 0, 0, 20)]
    assert store.pending(other_mode, {shard.run: ""}) == other_mode


def test_manifest_merges_runs(tmp_path):
    import json

    store = ResultStore(str(tmp_path), "study", SCHEMAS)
    store.write_manifest({"a": 1}, [{"dataset": "d", "model": "m", "seed": 0, "x": 1}], {"numpy": "1"})
    store.write_manifest({"a": 2}, [{"dataset": "d", "model": "m", "seed": 1, "x": 2},
                                    {"dataset": "d", "model": "m", "seed": 0, "x": 3}], {"numpy": "1"})
    manifest = json.loads((tmp_path / "study" / "_manifest.json").read_text())
    assert [(r["seed"], r["x"]) for r in manifest["runs"]] == [(0, 3), (1, 2)]
