"""The reproduction sections, fed by real digits sweeps shaped like each preset, checked
against numbers recomputed here from the rows, the models and scipy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import docs as docs_writer
from analysis import noise
from analysis.formatting import number
from analysis.load import AnalysisError
from analysis.sections import reproductions as rp
from analysis.sections.base import Page
from analysis.sections.cumulative import area_under_curves
from analysis.study import Study
from sweep.data.datasets import load_dataset
from sweep.data.models import load_model
from sweep.kernels import Network
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


REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "mourao-florindo-2025.csv"

CSV_QUANTITIES = {"train_accuracy_pct": "train_accuracy", "test_accuracy_pct": "accuracy_base",
                  "test_accuracy_after_best_removal_pct": "accuracy_best_removal", "best_gain_pp": "max_effect",
                  "helpful_pct": "pct_helpful", "neutral_pct": "pct_neutral", "harmful_pct": "pct_harmful"}


@pytest.mark.skipif(not REFERENCE.exists(), reason="the paper's reference CSV is outside this checkout")
def test_paper_numbers_are_every_number_of_the_reference_csv():
    csv = pd.read_csv(REFERENCE, comment="#")
    ours = {(n.dataset, n.model, "all" if n.layer is None else str(n.layer), n.quantity): n for n in rp.PAPER_NUMBERS}
    assert len(ours) == len(rp.PAPER_NUMBERS) == len(csv) == 31
    for r in csv.itertuples():
        number = ours[(r.dataset, r.network, str(r.layer), CSV_QUANTITIES[r.quantity])]
        assert number.value == r.value and number.derived == bool(r.derived)
        assert number.count == (None if pd.isna(r.count) else int(r.count))


@pytest.mark.slow
def test_paper_section_judges_each_number_and_measures_the_noise(local_ray, run_config, tmp_path):
    for scale, seeds in (("none", "[0,1]"), ("unit", "[0,1,2,3,4]")):
        pipeline.run(run_config("model.max_iter=15", f"seeds={seeds}", "dataset.split_seed=null",
                                f"dataset.scale={scale}", "dataset.label=digits-${dataset.scale}", "study=paper"))
    pipeline.run(run_config("model.max_iter=15", "seeds=[0,1]", "dataset.split_seed=0", "dataset.scale=unit",
                            "dataset.label=digits-unit-fixed", "study=paper"))  # seeds on one split
    results = str(tmp_path / "results")
    study, datasets = Study.open(results, "paper"), {"mnist": "digits", "svhn": "svhn"}
    tables = rp.paper_study(study, datasets)
    [section] = rp.paper_sections(study, Page(tmp_path / "report"), datasets)
    table = tables["reproduction"]
    neurons = pd.read_parquet(Path(results, "paper", "kind=neuron"))
    manifest = json.loads(Path(results, "paper", "_manifest.json").read_text())

    # every paper number is a row; SVHN's are not run here
    numbers = table[table["paper"].notna()].drop_duplicates(["dataset", "model", "layer", "quantity"])
    assert len(numbers) == 31
    svhn = table[table["dataset"] == "svhn"]
    assert len(svhn) == 14 and (svhn["verdict"] == "not run here").all()

    # 2 seeds: too few; 5 seeds: a verdict, recomputed with the Bonferroni family of the judged rows
    raw = table[(table["scaling"] == "raw 0-255") & (table["model"] == "nn_392")].set_index("quantity")
    assert raw.loc["helpful neurons", "verdict"] == "too few seeds"
    unit = table[(table["scaling"] == "pixels / 255") & (table["model"] == "nn_392")].set_index("quantity")
    rows = neurons[(neurons["dataset"] == "digits-unit") & (neurons["split"] == "test")]
    helpful = rows.groupby("seed", observed=True)["effect"].apply(lambda e: 100 * (e < 0).mean()).to_numpy()
    n_judged = int(table["verdict"].isin(["compatible", "incompatible", "inconclusive"]).sum())
    assert n_judged == 7  # NN_392's 7 MNIST numbers, at 5 seeds
    assert unit.loc["helpful neurons", "n_comparisons"] == n_judged
    expected = noise.verdict(helpful, 65.05, 5.0, n_comparisons=n_judged, bounds=(0.0, 100.0))
    assert unit.loc["helpful neurons", ["mean", "low", "high", "verdict"]].tolist() == pytest.approx(
        [expected["mean"], expected["low"], expected["high"], expected["verdict"]])
    assert 0 <= unit.loc["helpful neurons", "low"] <= unit.loc["helpful neurons", "high"] <= 100
    assert unit.loc["helpful neurons", "verdict"] in {"compatible", "incompatible", "inconclusive"}

    # the best-removal accuracy: unablated test accuracy + the largest single gain, per seed
    best = rows.groupby("seed").agg({"accuracy_base": "first", "effect": "max"}).sum(axis=1)
    row = unit.loc["test accuracy after the best single removal"]
    assert (row["paper"], row["mean"]) == pytest.approx((98.10, 100 * best.mean()))

    # the noise-aware share, from the rows' exact McNemar p-values and BH per network
    p = rows.groupby("seed")["p_mcnemar"].transform(lambda v: stats.false_discovery_control(v))
    indistinct = ((p > 0.05) | (rows["effect"] == 0)).groupby(rows["seed"]).mean()
    assert unit.loc["indistinguishable from test-image noise", "mean"] == pytest.approx(100 * indistinct.mean())
    within = ((rows["fixed"] - rows["broken"]).abs() <= 1).groupby(rows["seed"]).mean()
    assert unit.loc["changing the test count by at most one image", "mean"] == pytest.approx(100 * within.mean())

    # the per-image outcomes agree with the stored sweep: same fixed / broken per unit
    run = next(r for r in manifest["runs"] if r["dataset"] == "digits-unit" and r["seed"] == 3)
    clf, data = load_model(run["model_path"]), load_dataset(**run["dataset_params"])
    result = rp.network_noise(Network.from_classifier(clf), data.X_test, data.y_test, seed=3)
    stored = rows[rows["seed"] == 3].sort_values(["layer", "unit"])
    assert result.counts["fixed"].tolist() == stored["fixed"].tolist()
    assert result.counts["broken"].tolist() == stored["broken"].tolist()
    reliability = tables["reliability"]
    assert set(reliability.columns) >= {"spearman", "spearman_brown", "category_survives", "harmful_low"}
    assert len(reliability) == 9 and reliability["spearman"].between(-1, 1).all()
    assert set(tables["runs"]["scaling"]) == {"raw 0-255", "pixels / 255", "pixels / 255 (one split)"}
    variance = tables["variance"]
    helpful_variance = variance[(variance["scaling"] == "pixels / 255") & (variance["quantity"] == "helpful neurons")]
    parts = helpful_variance.set_index("component")["variance"]
    fixed = neurons[(neurons["dataset"] == "digits-unit-fixed") & (neurons["split"] == "test")]
    fixed_helpful = fixed.groupby("seed")["effect"].apply(lambda e: 100 * (e < 0).mean())
    assert parts["total"] == pytest.approx(np.var(helpful, ddof=1))
    assert parts["seed"] == pytest.approx(np.var(fixed_helpful, ddof=1))
    assert set(parts.index) == {"total", "test sampling", "split", "seed"}
    raw_variance = variance[variance["scaling"] == "raw 0-255"]
    assert set(raw_variance["component"]) == {"total", "test sampling", "split and seed"}

    assert section.paragraphs[0].startswith("Of the paper's 31 numbers, 24 are not run here")  # SVHN, NN_392_196
    assert "fewer than 5 seeds" in section.paragraphs[0]
    assert any("after the best single removal" in p for p in section.paragraphs)
    assert all(f.path.exists() for f in section.figures)

    # the docs: generated regions rewritten between their markers, per-seed values in a CSV
    docs = tmp_path / "docs"
    docs.mkdir()
    regions = "".join(f"<!-- BEGIN generated: {n} -->\nold\n<!-- END generated: {n} -->\n" for n in docs_writer.DOCS_TABLES)
    (docs / "reproductions.md").write_text("# intro\n" + regions + "tail\n")
    with pytest.raises(AnalysisError, match="no region <!-- BEGIN generated: paper-answer -->"):
        markerless = tmp_path / "markerless"
        markerless.mkdir()
        (markerless / "reproductions.md").write_text("<!-- BEGIN generated: paper-table -->\n")
        docs_writer.write_docs(study, markerless, datasets)
    docs_writer.write_docs(study, docs, datasets)
    text = (docs / "reproductions.md").read_text()
    assert text.startswith("# intro\n") and text.endswith("tail\n") and "\nold\n" not in text
    assert "| digits | nn_392 |" not in text and "| mnist | nn_392 | 0 | helpful neurons (%) | 65.05 | ±5.00 |" in text
    assert text.count("not run here") >= 24 and "--markdown docs` from 9 networks" in text
    # the answer: the report's opening paragraph, then each scaling's verdicts, every (in)compatible number named
    answer = text.split("<!-- BEGIN generated: paper-answer -->\n")[1].split("<!-- END")[0].splitlines()
    assert answer[0] == "* " + section.paragraphs[0] and answer[1:3] == [f"* {p}" for p in section.paragraphs[1:3]]
    judged = table[(table["scaling"] == "pixels / 255") & table["paper"].notna()]
    line = next(a for a in answer if a.startswith("* **pixels / 255** (5 seeds per network): "))
    for verdict, n in judged["verdict"].value_counts().items():
        assert f"{n} {verdict}" in line
    for r in judged[judged["verdict"].isin(["compatible", "incompatible"])].itertuples():
        assert f"{r.quantity} {number(r.mean, 2)} {r.unit} against {number(r.paper, 2)} {r.unit}" in line
    assert any(a.startswith("* **raw 0-255** (") and "too few seeds" in a for a in answer)
    # what made the numbers: the sweep's commit and BLAS code path, and each network kind's training time
    assert re.search(r"runs made at commit (unknown|[0-9a-f]{7,}(\+dirty)?) \(BLAS: [^)]*openblas [\d.]+ \w+", text)
    runs = rp.paper_runs(manifest, datasets)
    unit = runs[runs["scaling"] == "pixels / 255"]
    seconds = [r["timings"]["train_seconds"] for r in unit["run"]]
    epochs = [r["n_iter"] for r in unit["run"]]
    low, high = number(min(seconds), 0), number(max(seconds), 0)
    assert min(epochs) == max(epochs) == 15  # model.max_iter=15: every run stops there
    assert (f"nn_392 pixels / 255: {number(np.median(seconds), 0)} s ({low if low == high else f'{low}–{high}'}), "
            "15 epochs") in text
    assert (docs / "figures" / f"{docs_writer.SHARES_FIGURE}.png").exists()
    csv = pd.read_csv(docs / docs_writer.SEEDS_CSV)
    assert len(csv) == 9 and csv["pct_helpful"].tolist() == pytest.approx(tables["seeds"]["pct_helpful"].tolist())


def test_two_runs_of_the_seeds_are_compared_per_quantity_with_welchs_test():
    key = {"model": "nn_392", "scaling": "pixels / 255", "layer": 0}
    first = pd.DataFrame({**key, "seed": [0, 1, 2], "accuracy_base": [0.98, 0.97, 0.99], "pct_helpful": [40., 50., 45.]})
    second = pd.DataFrame({**key, "seed": [1, 2, 3], "accuracy_base": [0.97, 0.985, 0.975],
                           "pct_helpful": [50., 30., 35.]})
    layer1 = pd.DataFrame({**key, "layer": 1, "seed": [0, 1], "accuracy_base": [0.5, 0.5], "pct_helpful": [1., 2.]})
    table = rp.compare_seed_tables(pd.concat([first, layer1]), second).set_index("quantity")
    assert list(table.index) == ["test accuracy", "helpful neurons"]  # layer 1: run once only
    accuracy, helpful = table.loc["test accuracy"], table.loc["helpful neurons"]
    assert accuracy["layer"] == "network" and helpful["layer"] == 0
    assert (accuracy["n_first"], accuracy["same_seeds"], accuracy["identical"]) == (3, 2, 1)  # seed 1 alone
    assert accuracy["mean_first"] == pytest.approx(98.0) and accuracy["mean_second"] == pytest.approx(97.667, abs=1e-3)
    welch = stats.ttest_ind([50., 30., 35.], [40., 50., 45.], equal_var=False)
    assert helpful["difference"] == pytest.approx(-20 / 3) and helpful["p"] == pytest.approx(welch.pvalue)
    assert (helpful["low"], helpful["high"]) == pytest.approx(tuple(welch.confidence_interval(0.95)))
    assert helpful["sd_second"] == pytest.approx(np.std([50., 30., 35.], ddof=1)) and helpful["identical"] == 1


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
