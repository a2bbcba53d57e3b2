"""End to end through Ray: digits sweeps, exactness against sklearn, resume, MNIST."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sweep.run import pipeline
from sweep.run.summary import format_summary
from sweep.data.datasets import load_dataset
from sweep.data.models import load_model
from sweep.kernels.oracle import naive_neuron_predictions
from tests.conftest import MNIST_DIR

pytestmark = pytest.mark.ray


def parts(results: str) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in Path(results).rglob("part-*.parquet")}


def test_digits_sweep_one_row_per_neuron_per_seed_equal_to_oracle(local_ray, run_config):
    cfg = run_config("model.hidden_layer_sizes=[24,12]", "model.name=small", "model.max_iter=60", "seeds=[0,1]")
    summary = pipeline.run(cfg)
    df = pd.read_parquet(f"{summary.results}/kind=neuron")
    assert summary.rows_written == len(df) == 2 * (24 + 12)
    assert df.groupby(["seed", "layer", "unit"], observed=True).size().eq(1).all()
    assert set(summary.table[["helpful", "neutral", "harmful"]].sum(axis=1)) == {24, 12}

    manifest = json.loads(Path(summary.results, "_manifest.json").read_text())
    run = next(r for r in manifest["runs"] if r["seed"] == 1)
    clf = load_model(run["model_path"])
    data = load_dataset(**run["dataset_params"])
    rows = df[df["seed"].astype(int) == 1].sort_values(["layer", "unit"])
    for layer, width in enumerate((24, 12)):
        naive = naive_neuron_predictions(clf, data.X_test, layer, np.arange(width))
        accuracy = (naive == data.y_test).mean(axis=1)
        np.testing.assert_array_equal(rows[rows["layer"] == layer]["accuracy"].to_numpy(), accuracy)
    assert rows["accuracy_base"].iloc[0] == run["test_accuracy"]


def test_rerun_reuses_model_and_parts_and_redoes_a_lost_part(local_ray, run_config):
    cfg = run_config("model.hidden_layer_sizes=[300]", "model.name=wide", "model.max_iter=20", "ablation.shard_cost=1e5")
    first = pipeline.run(cfg)
    before = parts(first.results)
    assert len(before) == 5  # 300 units, 64-unit minimum per shard -> 5 shards of 60
    model_json = Path(first.runs[0]["model_path"]).with_suffix(".json")
    trained_at = model_json.stat().st_mtime_ns

    second = pipeline.run(cfg)
    assert second.rows_written == 0 and parts(second.results) == before
    assert second.rows_reused == 300
    assert format_summary(second).startswith("300 neuron ablations reused, 0 computed (train ")
    assert model_json.stat().st_mtime_ns == trained_at

    lost = sorted(before)[2]
    original = open(lost, "rb").read()
    os.remove(lost)
    third = pipeline.run(cfg)
    assert third.rows_written == 60
    assert open(lost, "rb").read() == original  # same bytes as the first time
    assert len(pd.read_parquet(f"{third.results}/kind=neuron")) == 300


@pytest.mark.slow
@pytest.mark.skipif(not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists(), reason="MNIST files not available")
def test_mnist_holdout_sweep(local_ray, run_config):
    cfg = run_config("dataset=mnist", f"dataset.data_dir={MNIST_DIR}", "model.max_iter=2")
    summary = pipeline.run(cfg)
    run = summary.runs[0]
    assert run["dataset_params"]["split"] == "holdout"
    df = pd.read_parquet(f"{summary.results}/kind=neuron")
    assert len(df) == 392 and (df["n_samples"] == 7000).all()
    assert run["test_accuracy"] > 0.9
    assert json.loads(Path(run["model_path"]).with_suffix(".json").read_text())["n_train"] == 63000


def test_cumulative_sweep_orders_on_val_and_needs_a_neuron_sweep_for_effect_orders(local_ray, run_config):
    from sweep.results.store import StoreError

    common = ("model.hidden_layer_sizes=[24,12]", "model.name=small", "model.max_iter=60", "dataset.val_fraction=0.2")
    cumulative = run_config(*common, "ablation=cumulative", "ablation.orders=[random,selectivity_high,effect_low]",
                            "ablation.repetitions=2", "ablation.splits=[test]")
    with pytest.raises(StoreError, match="ablation=neurons"):
        pipeline.run(cumulative)
    pipeline.run(run_config(*common))  # measures test and, since there is a val split, val
    summary = pipeline.run(cumulative)

    units = pd.read_parquet(f"{summary.results}/kind=unit")
    assert len(units) == 36 and set(units["split"]) == {"val"}  # orders are chosen on val, not test
    assert units["effect"].notna().all()  # the single-ablation effect on val rides along
    curves = pd.read_parquet(f"{summary.results}/kind=cumulative")
    per_order = curves.groupby("order", observed=True).size().to_dict()
    assert per_order == {"random": 2 * 37, "selectivity_high": 37, "effect_low": 37}  # k = 0..36
    assert set(curves["split"]) == {"test"}
    full = curves[curves["k"] == 36]["accuracy"]
    empty = curves[curves["k"] == 0]["accuracy"]
    assert full.nunique() == 1 and empty.nunique() == 1  # every order ends and starts at the same network
    assert empty.iloc[0] == curves["accuracy_base"].iloc[0] == summary.runs[0]["test_accuracy"]


def test_settings_hidden_from_part_names_never_resume_onto_each_others_parts(local_ray, run_config):
    from sweep.results.store import StoreError

    common = ("model.hidden_layer_sizes=[16]", "model.name=tiny", "model.max_iter=20")
    pipeline.run(run_config(*common))
    with pytest.raises(StoreError, match="computed from other settings"):
        pipeline.run(run_config(*common, "dataset.scale=standard"))  # same dataset=digits partition
    with pytest.raises(StoreError, match="computed from other settings"):
        pipeline.run(run_config(*common, "ablation.metrics=accuracy"))
    assert pipeline.run(run_config(*common)).rows_written == 0


def test_synapse_sweep_of_the_most_harmful_neurons_chosen_on_val(local_ray, run_config):
    from sweep.results.store import StoreError

    common = ("model.hidden_layer_sizes=[24,12]", "model.name=small", "model.max_iter=20", "dataset.val_fraction=0.2")
    everything = pipeline.run(run_config(*common, "ablation=synapses", "ablation.splits=[test]"))
    all_rows = pd.read_parquet(f"{everything.results}/kind=synapse")
    assert len(all_rows) == 64 * 24 + 24 * 12 + 12 * 10 and all_rows["loss"].isna().all()
    assert all_rows.groupby(["layer", "source", "target"]).size().eq(1).all()
    with pytest.raises(StoreError, match="validation split"):
        pipeline.run(run_config(*common, "ablation=synapses", "ablation.top_harmful=5"))

    neurons = pipeline.run(run_config(*common))
    df = pd.read_parquet(f"{neurons.results}/kind=neuron")
    val = df[df["split"] == "val"]
    harmful = val[val["effect"] > 0].sort_values(["effect", "layer", "unit"], ascending=[False, True, True])
    assert 1 <= len(harmful) < 5, "the test net should have a few harmful neurons on val"
    top = harmful.head(5)  # asking for 5 takes only the harmful ones
    chosen = pipeline.run(run_config(*common, "ablation=synapses", "ablation.top_harmful=5", "ablation.metrics=full",
                                     "ablation.splits=[test]"))
    rows = pd.read_parquet(f"{chosen.results}/kind=synapse")
    rows = rows[rows["selection"] != "all"]  # this run's selection, beside the first run's
    assert chosen.table[["helpful", "neutral", "harmful"]].to_numpy().sum() == len(rows)  # summary: this selection
    sizes = (64, 24, 12, 10)  # inputs, hidden layers, outputs
    expected = set()  # each chosen neuron's incoming and outgoing synapses, each synapse once
    for layer, unit in zip(top["layer"], top["unit"]):
        expected |= {(layer, source, unit) for source in range(sizes[layer])}
        expected |= {(layer + 1, unit, target) for target in range(sizes[layer + 2])}
    assert set(zip(rows["layer"], rows["source"], rows["target"])) == expected and len(rows) == len(expected)
    assert rows["loss"].notna().all()


def test_selections_never_use_another_models_results(local_ray, run_config):
    from sweep.results.store import StoreError

    common = ("model.hidden_layer_sizes=[24,12]", "model.name=small", "dataset.val_fraction=0.2")
    pipeline.run(run_config(*common, "model.max_iter=60"))
    retrained = run_config(*common, "model.max_iter=61", "ablation=cumulative", "ablation.orders=[effect_high]")
    with pytest.raises(StoreError, match="ablation=neurons"):  # the neuron rows are of the max_iter=60 model
        pipeline.run(retrained)


def test_effect_orders_in_two_modes_use_each_modes_effects(local_ray, run_config):
    common = ("model.hidden_layer_sizes=[24,12]", "model.name=small", "model.max_iter=60", "dataset.val_fraction=0.2",
              "ablation.modes=[zero,mean]")
    pipeline.run(run_config(*common))
    summary = pipeline.run(run_config(*common, "ablation=cumulative", "ablation.orders=[effect_high]",
                                      "ablation.splits=[test]"))
    curves = pd.read_parquet(f"{summary.results}/kind=cumulative")
    assert curves.groupby("mode", observed=True).size().to_dict() == {"mean": 37, "zero": 37}
    neurons = pd.read_parquet(f"{summary.results}/kind=neuron")
    for mode in ("zero", "mean"):  # the first unit removed is that mode's most harmful on val
        val = neurons[(neurons["mode"] == mode) & (neurons["split"] == "val")]
        first = val.sort_values(["effect", "layer", "unit"], ascending=[False, True, True]).iloc[0]
        after_one = curves[(curves["mode"] == mode) & (curves["k"] == 1)]["accuracy"].iloc[0]
        test = neurons[(neurons["mode"] == mode) & (neurons["split"] == "test")]
        single = test[(test["layer"] == first["layer"]) & (test["unit"] == first["unit"])]["accuracy"].iloc[0]
        assert after_one == single


def test_split_per_seed_draws_each_seeds_own_split_and_resumes(local_ray, run_config):
    cfg = run_config("model.hidden_layer_sizes=[16]", "model.name=small", "model.max_iter=30", "seeds=[3,4]",
                     "dataset.split_seed=null", "dataset.label=digits-${dataset.scale}")
    summary = pipeline.run(cfg)
    manifest = json.loads(Path(summary.results, "_manifest.json").read_text())
    assert {r["seed"]: r["dataset_params"]["split_seed"] for r in manifest["runs"]} == {3: 3, 4: 4}
    assert {r["dataset"] for r in manifest["runs"]} == {"digits-unit"}
    df = pd.read_parquet(f"{summary.results}/kind=neuron")
    assert set(df["dataset"]) == {"digits-unit"}
    for run in manifest["runs"]:  # every row measured on its own seed's test split
        data = load_dataset(**run["dataset_params"])
        assert data.y_test.tolist() != load_dataset("digits", split_seed=0).y_test.tolist()
        clf = load_model(run["model_path"])
        rows = df[df["seed"].astype(int) == run["seed"]].sort_values("unit")
        naive = naive_neuron_predictions(clf, data.X_test, 0, np.arange(16))
        np.testing.assert_array_equal(rows["accuracy"].to_numpy(), (naive == data.y_test).mean(axis=1))
    before = parts(summary.results)
    again = pipeline.run(cfg)
    assert again.rows_written == 0 and parts(again.results) == before


def test_layer_scopes_expand_to_every_hidden_layer(local_ray, run_config):
    cfg = run_config("ablation=cumulative", "model.hidden_layer_sizes=[12,8]", "model.name=small",
                     "model.max_iter=30", "ablation.orders=[random]", "ablation.repetitions=1",
                     "ablation.scopes=[network,layers,layer1]")
    summary = pipeline.run(cfg)
    df = pd.read_parquet(f"{summary.results}/kind=cumulative")
    assert df.groupby("scope", observed=True)["k"].max().to_dict() == {"network": 20, "layer0": 12, "layer1": 8}
