"""The analysis report on a torch study (small_cnn on digits): every section builds, and its
numbers are recomputed here from the rows and from plain hooked forwards of the module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from analysis.__main__ import main
from analysis.sections import SECTIONS
from analysis.study import NetworkKey, Study
from sweep.hydra_config import compose_run
from sweep.kernels import ablate_joint, drawn_values, torchnet
from sweep.run import pipeline
from tests.serial_executor import serial_sweeps

SEEDS = (0, 1)


def torch_study(root: Path) -> None:
    """Study ``cnn`` under ``root``: two small_cnn seeds on digits (val 20 %), every unit removed
    alone (test and val), then cumulative curves (in this process, without Ray)."""
    common = [f"paths.results={root}", "progress=false", "study=cnn", "model=small_cnn", "model.epochs=3",
              "dataset.val_fraction=0.2", f"seeds=[{','.join(map(str, SEEDS))}]"]
    with pytest.MonkeyPatch.context() as patch, serial_sweeps(patch):
        pipeline.run(compose_run(common))
        pipeline.run(compose_run([*common, "ablation=cumulative", "ablation.orders=[random,effect_high]",
                                  "ablation.scopes=[network,layers]", "ablation.repetitions=2",
                                  "ablation.k_points=5", "ablation.splits=[test]"]))


@pytest.fixture(scope="module")
def study_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    torch_study(root)
    return root


def hooked_predictions(net: torchnet.TorchNetwork, X: np.ndarray, units: list[tuple[int, int]], mode: str,
                       reference: np.ndarray | None) -> np.ndarray:
    """The oracle: a plain forward of the module with forward hooks holding ``units`` at their
    mode's values (a per-image mode's: draw 0 of seed 0, each row its donor's); the predicted
    class index per row."""
    values = drawn_values(torchnet.mode_values(net, mode, reference), mode, len(X))
    handles = []
    for layer in sorted({l for l, _ in units}):
        index = [u for l, u in units if l == layer]

        def hook(module, inputs, output, index=index, value=values[layer]):
            out = output.clone()
            out[:, index] = value[:, index] if value.dim() == out.dim() else value[index]
            return out

        handles.append(torchnet.submodule(net.module, net.sites[layer].module).register_forward_hook(hook))
    try:
        with torch.no_grad():
            logits = net.module(net.images(X))
    finally:
        for handle in handles:
            handle.remove()
    return torch.softmax(logits, dim=-1).numpy().argmax(axis=1)


def test_flips_of_every_channel_equal_the_hooked_oracle_and_the_rows(study_root: Path) -> None:
    study = Study.open(study_root)
    rows = study.rows("neuron", "test")
    key = NetworkKey("digits", "small_cnn", 0)
    net = study.network(key)
    assert isinstance(net, torchnet.TorchNetwork)
    X, y = study.split(key, "test")
    y_index = torchnet.class_index_of(net, y)
    base = study.predictions(key, "test")
    np.testing.assert_array_equal(base, hooked_predictions(net, X, [], "zero", None))
    for layer, width in enumerate(net.widths):
        flips = study.flips(key, layer, "zero")
        mine = rows[(rows["seed"] == 0) & (rows["mode"] == "zero") & (rows["layer"] == layer)].sort_values("unit")
        signed = np.bincount(flips.ablation, weights=flips.signed(), minlength=width)
        np.testing.assert_allclose(signed / len(y), mine["effect"].to_numpy(), atol=1e-12)
        for unit in range(width):
            pred = hooked_predictions(net, X, [(layer, unit)], "zero", None)
            changed = np.flatnonzero((pred == y_index) != (base == y_index))
            at = flips.ablation == unit
            np.testing.assert_array_equal(flips.row[at], changed)
            np.testing.assert_array_equal(flips.fixed[at], pred[changed] == y_index[changed])


def test_resample_flips_take_the_rows_seed_and_equal_the_hooked_oracle(study_root: Path) -> None:
    study = Study.open(study_root)
    key = NetworkKey("digits", "small_cnn", 0)
    net, (X, y) = study.network(key), study.split(key, "test")
    values = drawn_values(torchnet.mode_values(net, "resample", study.reference(key, "resample")), "resample",
                          len(y), 3)[1]  # draw 0 of seed 3, act2: (n, 16, 4, 4)
    flips = study.flips(key, 1, "resample", seed=3)
    expected = torchnet.hooked_unit_outcomes(net, X, y, 1, np.arange(16), "resample", values=values)
    for unit in range(16):
        fixed = flips.fixed[flips.ablation == unit]
        assert (int(np.sum(~fixed)), int(np.sum(fixed))) == (expected["broken"][unit], expected["fixed"][unit])
    assert expected["broken"].sum() > 0


def test_joint_ablation_of_channels_and_features_equals_the_hooked_oracle(study_root: Path) -> None:
    study = Study.open(study_root)
    key = NetworkKey("digits", "small_cnn", 1)
    net = study.network(key)
    X, y = study.split(key, "test")
    reference = study.split(key, "val")[0]
    units = [(0, 2), (1, 5), (1, 9), (2, 0), (2, 31)]
    for mode in torchnet.TORCH_MODES:
        got = ablate_joint(net, X, y, units, mode, reference)
        pred = hooked_predictions(net, X, units, mode, reference)
        assert got["accuracy"][0] == np.mean(net.classes[pred] == y)


def test_report_on_a_torch_study_builds_every_section_with_numbers_from_the_rows(
        study_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert main([str(study_root), "--out", str(out), "--jobs", "1"]) == 0
    page = (out / "index.html").read_text()
    assert "This section failed" not in page
    assert "Convolution channels: filters and feature maps" in page
    assert any(t.name == "channels" for t in SECTIONS)
    tables = out / "tables"
    rows = pd.read_parquet(study_root / "cnn" / "kind=neuron")
    test = rows[rows["split"] == "test"]

    sites = pd.read_csv(tables / "unit_sites.csv")
    assert sites[["site", "units", "unit_output"]].values.tolist() == [
        ["act1", 8, "channel 8x8"], ["act2", 16, "channel 4x4"], ["act3", 32, "feature"]]
    assert (out / "figures" / f"channels_digits_small_cnn_seed{SEEDS[0]}.png").stat().st_size > 10_000  # one per kind

    boot = pd.read_csv(tables / "bootstrap_harmful.csv")  # from the per-image flips
    harmful = test[test["effect"] > 0].groupby(["seed", "layer"]).size()
    for r in boot.itertuples():
        assert r.n_harmful == harmful.get((r.seed, r.layer), 0)

    impact = pd.read_csv(tables / "impact.csv")
    for r in impact.itertuples():
        mine = rows[(rows["seed"] == r.seed) & (rows["split"] == r.split) & (rows["layer"] == r.layer)]
        assert r.n_units == len(mine) and r.n_harmful == int((mine["effect"] > 0).sum())

    heldout = pd.read_csv(tables / "heldout_pruning.csv")
    study = Study.open(study_root)
    for r in heldout.itertuples():
        key = NetworkKey("digits", "small_cnn", r.seed)
        val = rows[(rows["seed"] == r.seed) & (rows["split"] == "val") & (rows["effect"] > 0)]
        units = [(int(l), int(u)) for l, u in zip(val["layer"], val["unit"])]
        assert r.n_selected == len(units)
        X, y = study.split(key, "test")
        net = study.network(key)
        oracle = np.mean(net.classes[hooked_predictions(net, X, units, "zero", None)] == y)
        assert r.accuracy_pct == pytest.approx(100 * oracle, abs=1e-9)

    matched = pd.read_csv(tables / "seed_matching.csv")
    assert set(matched["layer"]) == {0, 1, 2}


def test_docs_regions_of_a_torch_study_hold_its_numbers(study_root: Path, tmp_path: Path) -> None:
    from analysis.docs import TORCH_TABLES, write_docs
    from analysis.stats import bh_qvalues
    from sweep.kernels import mcnemar_p
    from tests.conftest import REPO

    (tmp_path / "torch.md").write_text((REPO / "docs" / "torch.md").read_text())
    written = write_docs(Study.open(study_root), tmp_path)
    assert written == [tmp_path / "torch.md", tmp_path / "figures" / "torch_small_cnn_sites.png"]
    text = (tmp_path / "torch.md").read_text()
    regions = {name: text.split(f"<!-- BEGIN generated: {name} -->")[1].split("<!-- END generated")[0]
               for name in TORCH_TABLES}
    assert "torch 2" in regions["torch-runs"] and "--study cnn --markdown docs` from 2 networks" in regions["torch-runs"]
    rows = pd.read_parquet(study_root / "cnn" / "kind=neuron")
    test = rows[(rows["split"] == "test") & (rows["mode"] == "zero")].copy()
    for (seed,), sweep in test.groupby(["seed"]):  # BH within each network's sweep, all sites
        q = bh_qvalues(mcnemar_p(sweep["broken"].to_numpy(), sweep["fixed"].to_numpy()))
        test.loc[sweep.index, "rotten"] = (q <= 0.05) & (sweep["fixed"] > sweep["broken"]).to_numpy()
    lines = [line.split(" | ") for line in regions["torch-sites"].splitlines() if line.startswith("| small_cnn")]
    for cells, (layer, site) in zip(lines, test.groupby("layer")):
        assert cells[2:7] == [str(layer), ["act1", "act2", "act3"][layer], cells[4], str(site["unit"].nunique()),
                              str(len(SEEDS))]
        assert cells[7] == f"{100 * site['effect'].mean():.2f}"
        assert cells[-3:] == [str(int((site["effect"] > 0).sum())), str(int(site["rotten"].sum())),
                              f"{int((site['fixed'] - site['broken'] >= 3).sum())} |"]
    assert "| small_cnn | zero | network | all | random | 4 |" in regions["torch-cumulative"]


def test_a_filter_is_drawn_grey_colour_or_channels_side_by_side() -> None:
    from analysis.figures import filter_image

    w = np.arange(2 * 3 * 3, dtype=float).reshape(2, 3, 3)
    side = filter_image(w)
    assert side.shape == (3, 7) and np.isnan(side[:, 3]).all()
    np.testing.assert_array_equal(side[:, 4:], w[1])
    np.testing.assert_array_equal(filter_image(w[:1]), w[0])
    rgb = np.random.default_rng(0).normal(size=(3, 5, 5))
    np.testing.assert_array_equal(filter_image(rgb)[..., 2], rgb[2])


def test_the_explorer_answers_peak_and_resample_on_a_torch_network_and_refuses_class_knockout(
        study_root: Path) -> None:
    from analysis.explore.session import Explorer, ExploreError, ModelKey

    view = Explorer(study_root, "cnn").view(ModelKey("digits", "small_cnn", SEEDS[0]))
    with pytest.raises(ExploreError, match="^class knockout runs on scikit-learn networks only"):
        view.knockout(0, "zero")
    study = Study.open(study_root)
    key = NetworkKey("digits", "small_cnn", SEEDS[0])
    net, (X, _), reference = study.network(key), study.split(key, "test"), study.split(key, "val")[0]
    units = [(0, 1), (1, 3), (2, 7)]
    for mode in ("peak", "resample"):  # live only: the study swept zero
        test = view.ask(units, mode)[-1]
        assert test.split == "test"
        np.testing.assert_array_equal(test.labels, net.classes[hooked_predictions(net, X, units, mode, reference)])


@pytest.mark.slow
def test_report_on_a_torch_study_of_peak_and_resample_builds_its_mode_study(tmp_path: Path) -> None:
    """small_cnn swept in zero, peak and resample (two draws), then resample's cumulative
    curves: every section builds, and the mode study's table holds each mode's rows."""
    root = tmp_path / "results"
    common = [f"paths.results={root}", "progress=false", "study=cnnm", "model=small_cnn", "model.epochs=3",
              "dataset.val_fraction=0.2", "seeds=[0]"]
    with pytest.MonkeyPatch.context() as patch, serial_sweeps(patch):
        pipeline.run(compose_run([*common, "ablation.modes=[zero,peak,resample]", "ablation.resample_draws=2"]))
        pipeline.run(compose_run([*common, "ablation=cumulative", "ablation.modes=[zero,resample]",
                                  "ablation.orders=[random]", "ablation.k_points=5", "ablation.splits=[test]",
                                  "ablation.resample_draws=2"]))
    out = tmp_path / "report"
    assert main([str(root), "--out", str(out), "--jobs", "1"]) == 0
    assert "This section failed" not in (out / "index.html").read_text()
    rows = pd.read_parquet(root / "cnnm" / "kind=neuron")
    impact = pd.read_csv(out / "tables" / "mode_impact.csv")
    for r in impact.itertuples():
        mine = rows[(rows["mode"] == r.mode) & (rows["split"] == r.split) & (rows["layer"] == r.layer)]
        assert r.n_units == len(mine)
        assert r.pct_harmful == pytest.approx(100 * (mine["effect"] > 0).mean())
        assert r.mean_effect_pp == pytest.approx(100 * mine["effect"].mean())
    assert set(impact["mode"]) == {"zero", "peak", "resample"}
    assert set(pd.read_csv(out / "tables" / "mode_cumulative.csv")["mode"]) >= {"resample"}
