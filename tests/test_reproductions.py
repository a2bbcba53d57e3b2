"""The reproduction sections, fed by real digits sweeps shaped like each preset, checked
against numbers recomputed here from the rows, the models and scipy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.sections import reproductions as rp
from analysis.sections.base import Page
from analysis.study import Study
from analysis.sections.cumulative import area_under_curves
from sweep.data.datasets import load_dataset
from sweep.data.models import load_model
from sweep.run import pipeline

pytestmark = pytest.mark.ray


def test_over_seeds_is_the_interval_one_more_run_falls_in():
    summary = rp.over_seeds(np.array([1.0, 2.0, 3.0]))
    half = stats.t.ppf(0.975, 2) * 1.0 * np.sqrt(1 + 1 / 3)  # sd 1, n 3: 4.97
    assert summary == pytest.approx({"n_seeds": 3, "mean": 2.0, "low": 2.0 - half, "high": 2.0 + half,
                                     "min": 1.0, "max": 3.0})
    assert rp.difference_verdict(np.array([1.0, 1.2, 0.8]))["verdict"] == "> 0"
    assert rp.difference_verdict(np.array([1.0, -1.2, 0.8]))["verdict"] == "spans 0"
    assert rp.difference_verdict(np.array([0.5]))["verdict"] == "one seed"
    assert rp.interval_text(0.126, np.nan, np.nan, 1) == "+0.126 from one seed (no interval)"
    assert rp.interval_text(0.2, -0.1, 0.5, 3) == "+0.200 [-0.100, +0.500] over 3 seeds"


def test_paper_section_compares_each_scaling_with_the_papers_numbers(local_ray, run_config, tmp_path):
    for scale in ("none", "unit"):
        pipeline.run(run_config("model.max_iter=15", "seeds=[0,1,2]", "dataset.split_seed=null",
                                f"dataset.scale={scale}", "dataset.label=digits-${dataset.scale}", "study=paper"))
    results = str(tmp_path / "results")
    [section] = rp.paper_sections(Study.open(results, "paper"), Page(tmp_path / "report"), dataset="digits")
    table = section.tables["reproduction"].frame
    manifest = json.loads(Path(results, "paper", "_manifest.json").read_text())
    assert len(manifest["runs"]) == 6 and {r["dataset_params"]["split_seed"] for r in manifest["runs"]} == {0, 1, 2}
    neurons = pd.read_parquet(Path(results, "paper", "kind=neuron"))

    raw = table[table["scaling"] == "raw 0-255"].set_index("quantity")
    rows = neurons[neurons["dataset"] == "digits-none"]
    helpful = rows.groupby("seed", observed=True)["effect"].apply(lambda e: 100 * (e < 0).mean()).to_numpy()
    assert raw.loc["helpful neurons", "mean"] == pytest.approx(helpful.mean())
    assert raw.loc["helpful neurons", ["min", "max"]].tolist() == pytest.approx([helpful.min(), helpful.max()])
    expected = rp.over_seeds(helpful)
    interval = np.clip([expected["low"], expected["high"]], 0, 100)  # a share is within 0-100 %
    assert raw.loc["helpful neurons", ["low", "high"]].tolist() == pytest.approx(interval)
    paper = 65.05
    assert raw.loc["helpful neurons", "paper"] == paper
    assert raw.loc["helpful neurons", "verdict"] == ("inside" if interval[0] <= paper <= interval[1] else "outside")
    assert raw.loc["units silent on every test image", "verdict"] == "-"

    silent = []  # recomputed from the saved classifiers and each seed's own split
    for run in sorted((r for r in manifest["runs"] if r["dataset"] == "digits-none"), key=lambda r: r["seed"]):
        clf, data = load_model(run["model_path"]), load_dataset(**run["dataset_params"])
        hidden = np.maximum(data.X_test @ clf.coefs_[0] + clf.intercepts_[0], 0)
        silent.append(int((hidden.max(axis=0) <= 0).sum()))
    assert raw.loc["units silent on every test image", "mean"] == pytest.approx(np.mean(silent))
    assert raw.loc["test accuracy", "mean"] == pytest.approx(
        100 * np.mean([r["test_accuracy"] for r in manifest["runs"] if r["dataset"] == "digits-none"]))
    assert section.paragraphs[0].startswith("Each seed drew its own train/test split")
    assert any(p.startswith("With raw 0-255: ") for p in section.paragraphs)
    assert section.figures[0].path.exists()


def test_amjad_section_tests_each_finding_on_per_seed_areas(local_ray, run_config, tmp_path):
    orders = "[random,entropy_high,entropy_low,mutual_information_high,mutual_information_low," \
             "kl_selectivity_high,kl_selectivity_low]"
    cfg = run_config("ablation=cumulative", "model.hidden_layer_sizes=[16,12]", "model.name=small",
                     "model.activation=logistic", "model.max_iter=40", "seeds=[0,1,2]", "dataset.val_fraction=0.2",
                     "ablation.modes=[mean]", f"ablation.orders={orders}", "ablation.scopes=[network,layers]",
                     "ablation.repetitions=2", "study=amjad")
    pipeline.run(cfg)
    results = str(tmp_path / "results")
    [section] = rp.amjad_sections(Study.open(results, "amjad"), Page(tmp_path / "report"))
    table = section.tables["amjad_findings"].frame
    df = pd.read_parquet(Path(results, "amjad", "kind=cumulative"))
    areas = area_under_curves(df[df["split"] == "test"])
    per_seed = areas.groupby(["seed", "scope", "order"])["auc"].mean().unstack("order")
    layer0 = per_seed.xs("layer0", level="scope")
    diff = 100 * (layer0["kl_selectivity_low"] - layer0["kl_selectivity_high"]).to_numpy()
    row = table[(table["scope"] == "layer0") & (table["compared"] == "kl_selectivity: low - high")].iloc[0]
    mean, low, high = diff.mean(), *stats.t.interval(0.95, 2, loc=diff.mean(), scale=stats.sem(diff))
    assert [row["mean"], row["low"], row["high"]] == pytest.approx([mean, low, high])
    assert row["holds"] == (low > 0) and row["expected"] == "> 0"
    last = table[(table["scope"] == "layer1") & table["compared"].str.startswith("kl_selectivity")].iloc[0]
    assert last["expected"] == "< 0" and "reversed in the last layer" in last["finding"]
    assert set(table["finding"]) >= {"random is a moderate choice", "deeper layers more redundant"}
    assert len(section.figures) == 1 and section.figures[0].path.exists()


def test_morcos_section_compares_noise_levels_on_the_labels_they_learned(local_ray, run_config, tmp_path):
    base = ["model.hidden_layer_sizes=[20,10]", "model.name=small", "model.max_iter=60", "seeds=[0,1]",
            "dataset.val_fraction=0.2", "ablation.splits=[train,test]", "study=morcos"]
    for noise in (0, 1):
        for ablation in ("neurons", "cumulative"):
            pipeline.run(run_config(f"ablation={ablation}", f"dataset.label_noise={noise}", *base))
    results = str(tmp_path / "results")
    [section] = rp.morcos_sections(Study.open(results, "morcos"), Page(tmp_path / "report"))
    memo = section.tables["morcos_memorization"].frame.set_index("label_noise")
    df = pd.read_parquet(Path(results, "morcos", "kind=cumulative"))
    random = df[(df["split"] == "train") & (df["order"] == "random")]
    areas = area_under_curves(random).groupby(["dataset", "seed"])[["auc", "accuracy_base"]].mean()
    normalized = (areas["auc"] / areas["accuracy_base"]).unstack("dataset")
    assert memo.loc[1.0, "mean"] == pytest.approx(normalized["digits-noise1"].mean())
    drop = (normalized["digits"] - normalized["digits-noise1"]).to_numpy()
    assert memo.loc[1.0, "drop_mean"] == pytest.approx(drop.mean())
    selectivity = section.tables["morcos_selectivity"].frame
    assert set(selectivity["label_noise"]) == {0.0, 1.0} and set(selectivity["split"]) == {"train", "test"}
    assert (selectivity["n_seeds"] == 2).all() and selectivity["mean"].between(-1, 1).all()
    assert section.summary[0].startswith("Networks that memorize break sooner (Morcos et al.): ")
    assert len(section.figures) == 2
    assert rp.amjad_sections(Study.open(results, "morcos"), Page(tmp_path / "report")) == []  # no information orders here
