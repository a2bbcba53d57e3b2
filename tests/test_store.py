"""Parquet parts: schema, atomic writes, round trips through pandas filters, resume checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from sweep.kernels import no_draws
from sweep.kinds import KINDS, SCHEMAS, STUDY_SCHEMA
from sweep.results.shards import RunKey, Shard
from sweep.results.store import ResultStore, StoreError, to_table


def neuron_columns(units: np.ndarray, n_classes: int = 3) -> dict[str, np.ndarray]:
    k = len(units)
    rng = np.random.default_rng(int(units[0]))
    return {
        "layer": np.zeros(k, dtype=np.int64), "unit": units, "n_samples": np.full(k, 50),
        "accuracy_base": np.full(k, 0.9), "accuracy": 0.9 + rng.integers(-2, 3, k) / 50,
        "effect": rng.integers(-2, 3, k) / 50, "loss_base": np.full(k, 0.3), "loss": rng.random(k),
        "broken": rng.integers(0, 3, k), "fixed": rng.integers(0, 3, k), "p_mcnemar": rng.random(k),
        "class_effect": rng.random((k, n_classes)), **no_draws(k),
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


def kind_columns(kind: str, rows: int, n_classes: int = 3) -> dict[str, np.ndarray]:
    """Columns of ``kind``'s schema (its constants left out), row ``i`` numbered ``i``."""
    out = {}
    for f in SCHEMAS[kind]:
        if f.name in KINDS[kind].constants:
            continue
        if pa.types.is_list(f.type):
            out[f.name] = np.arange(rows * n_classes, dtype=float).reshape(rows, n_classes)
        elif pa.types.is_string(f.type):
            out[f.name] = np.array(["test"] * rows)
        else:
            out[f.name] = np.arange(rows).astype(f.type.to_pandas_dtype())
    return out


def write_kind(store: ResultStore, kind: str, rows: int, **shard: object) -> Shard:
    constants = {"mode": "zero", "split": "test", "selection": "all"}
    part = Shard(RunKey("digits", "nn_392", 0), kind, "zero", "test", 0, 0, rows,
                 selection="all" if kind == "synapse" else "-", **shard)
    table = to_table(SCHEMAS[kind], kind_columns(kind, rows), {c: constants[c] for c in KINDS[kind].constants})
    store.write_part(part, table, {"fingerprint": "f", "weights": "w"})
    return part


@pytest.fixture
def mixed_study(tmp_path) -> Path:
    """A study of 10 neuron rows then 24 synapse rows, written by this release."""
    store = ResultStore(str(tmp_path), "study", SCHEMAS)
    write_kind(store, "neuron", 10)
    write_kind(store, "synapse", 24)
    return Path(store.location)


def check_every_column(frame: pd.DataFrame) -> None:
    assert len(frame) == 34 and set(STUDY_SCHEMA.names) <= set(frame.columns)
    synapses = frame[frame["kind"] == "synapse"]
    assert len(synapses) == 24 and synapses["source"].notna().all() and synapses["target"].notna().all()
    assert sorted(synapses["target"].astype(int)) == list(range(24)) and (synapses["selection"] == "all").all()
    neurons = frame[frame["kind"] == "neuron"]
    assert sorted(neurons["unit"].astype(int)) == list(range(10)) and neurons["source"].isna().all()


def test_a_whole_mixed_study_reads_every_column_with_pandas_and_pyarrow_defaults(mixed_study):
    check_every_column(pd.read_parquet(mixed_study))
    check_every_column(pads.dataset(mixed_study, partitioning="hive").to_table().to_pandas())


def test_a_whole_mixed_study_reads_every_column_with_duckdb_and_polars_defaults(mixed_study):
    duckdb = pytest.importorskip("duckdb")
    polars = pytest.importorskip("polars")
    files = f"{mixed_study}/**/*.parquet"
    check_every_column(duckdb.sql(f"select * from read_parquet('{files}', hive_partitioning=true)").df())
    check_every_column(polars.read_parquet(files, hive_partitioning=True).to_pandas())


def test_kind_reads_return_that_kind_s_columns_with_or_without_the_registry(mixed_study):
    for store in (ResultStore(str(mixed_study.parent), "study", SCHEMAS), ResultStore(str(mixed_study.parent), "study")):
        synapses = store.read("synapse")
        assert list(synapses.columns) == [*SCHEMAS["synapse"].names, "dataset", "model", "seed"]
        assert len(synapses) == 24 and list(synapses["target"]) == list(range(24))
        neurons = store.read_model_rows("neuron", RunKey("digits", "nn_392", 0), "w")
        assert list(neurons.columns) == SCHEMAS["neuron"].names and list(neurons["unit"]) == list(range(10))


def test_a_part_written_before_a_unit_statistic_was_added_stays_valid_and_reads_it_as_null(tmp_path):
    """Release 0.1's unit parts hold the statistics of that release; a statistic added since
    (here: every part but the new column) reads as null there, and nothing is recomputed."""
    store = ResultStore(str(tmp_path), "study", SCHEMAS)
    shard = Shard(RunKey("digits", "nn_392", 0), "unit", "stats", "test", -1, 0, 6, "binary2")
    older = to_table(SCHEMAS["unit"], kind_columns("unit", 6), {"split": "test"}).drop_columns(["kl_selectivity"])
    ResultStore(str(tmp_path), "study", {"unit": older.schema}).write_part(shard, older, {"fingerprint": "f"})
    assert store.pending([shard], {shard.run: "f"}) == []
    rows = store.read("unit")
    assert list(rows.columns[:-3]) == SCHEMAS["unit"].names and rows["kl_selectivity"].isna().all()
    np.testing.assert_array_equal(rows["entropy"], np.arange(6.0))
    renamed = older.rename_columns([c if c != "entropy" else "entropy2" for c in older.column_names])
    ResultStore(str(tmp_path), "study", {"unit": renamed.schema}).write_part(shard, renamed, {"fingerprint": "f"})
    assert store.pending([shard], {shard.run: "f"}) == [shard]  # a column this release does not know: redone


def test_manifest_keeps_the_environment_and_older_entries_without_it_still_read(tmp_path):
    store = ResultStore(str(tmp_path), "s", SCHEMAS)
    store.write_manifest({"a": 1}, [{"dataset": "d", "model": "m", "seed": 0}], {"numpy": "1"})
    assert store.read_manifest()["environment"] == {}  # an entry of an earlier release
    made = {"commit": "abc1234", "blas": ["openblas 0.3.30 Haswell"], "machine": "x86_64"}
    store.write_manifest({"a": 2}, [{"dataset": "d", "model": "m", "seed": 1}], {"numpy": "1"}, made)
    assert store.read_manifest()["environment"] == made
    later = {"commit": "def5678", "blas": ["openblas 0.3.30 SkylakeX"], "machine": "x86_64"}
    for seed in (2, 3):  # two runs on a second machine: one more environment, listed once
        store.write_manifest({"a": 3}, [{"dataset": "d", "model": "m", "seed": seed}], {"numpy": "1"}, later)
    manifest = store.read_manifest()
    assert manifest["environment"] == later and manifest["environments"] == [made, later]

    from analysis.docs import provenance
    from analysis.study import Study

    text = provenance(Study.open(str(tmp_path), "s"))
    assert text.startswith("runs made at commits abc1234, def5678 (BLAS: openblas 0.3.30 Haswell, openblas 0.3.30 "
                           "SkylakeX) with numpy 1; analysis at commit ")


def test_source_commit_names_the_checkout_and_its_uncommitted_changes(tmp_path):
    import subprocess

    from sweep.results.provenance import blas_code_paths, source_commit

    assert source_commit(tmp_path) == "unknown"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "f.txt").write_text("1")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    assert source_commit(tmp_path) == head
    (tmp_path / "f.txt").write_text("2")
    assert source_commit(tmp_path) == head + "+dirty"
    from threadpoolctl import threadpool_info

    assert len(blas_code_paths()) == len(threadpool_info())
    assert any(path.startswith("openblas ") for path in blas_code_paths())
