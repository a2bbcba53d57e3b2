"""The resample and peak modes: the density estimate, the recorded draws, near-ties against
the per-image oracle, every row of a sweep re-checked, and the one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import LabelBinarizer

from sweep.data.datasets import load_dataset, reference_inputs
from sweep.data.models import load_model
from sweep.hydra_config import compose_run
from sweep.kernels import (
    NEURON_MODES,
    TIE_TOLERANCE,
    PrunedPass,
    ablate_neurons,
    constant_modes,
    cumulative_curve,
    make_order,
    mean_over_draws,
    unit_replacements,
)
from sweep.kernels.metrics import sample_log_loss
from sweep.kernels.modes import drawn_values, peak_value, resample_rows
from sweep.kernels.network import Network, propagate
from sweep.kernels.oracle import naive_neuron_metrics, per_image_outputs
from sweep.kinds import KINDS
from sweep.run import pipeline
from sweep.spec import SpecError
from tests.nets import ACTIVATIONS, digits, trained_mlp
from tests.serial_executor import serial_sweeps
from tests.test_ablate import assert_same_metrics

NEW = ("resample", "peak")


# ------------------------------------------------------------------ the records


def test_every_new_mode_is_one_record_read_from_the_reference_split() -> None:
    assert [m for m in NEW if m in NEURON_MODES] == list(NEW)
    assert all(NEURON_MODES[m].needs_reference and NEURON_MODES[m].recheck_base_ties for m in NEW)
    assert NEURON_MODES["resample"].per_image and not NEURON_MODES["peak"].per_image
    assert constant_modes() == ("zero", "remove", "mean", "peak")


def test_peak_of_a_mostly_silent_unit_is_zero_and_of_a_constant_its_value() -> None:
    assert peak_value(np.array([0.0] * 6 + [0.1, 0.4, 2.0])) == 0.0
    assert peak_value(np.full(7, 0.25)) == 0.25
    # 1000 draws of N(3, 1): Freedman-Diaconis bins about 0.27 wide; the fullest bin lies near 3
    outputs = np.random.default_rng(0).normal(3.0, 1.0, 1000)
    edges = np.histogram_bin_edges(outputs, bins="fd")
    counts, _ = np.histogram(outputs, edges)
    fullest = int(np.argmax(counts))
    assert peak_value(outputs) == pytest.approx((edges[fullest] + edges[fullest + 1]) / 2, abs=0)
    assert abs(peak_value(outputs) - 3.0) < 0.5


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=80), st.integers(0, 40))
def test_peak_lies_in_the_outputs_range_and_a_majority_value_wins(values: list[float], zeros: int) -> None:
    outputs = np.array(values + [0.0] * zeros)
    peak = peak_value(outputs)
    assert outputs.min() <= peak <= outputs.max()
    if zeros > len(values):  # a ReLU unit silent on most images
        assert peak == 0.0


def test_resample_rows_are_derived_from_the_recorded_seed_and_draw() -> None:
    rows = resample_rows(7, 1, 500, 40)
    np.testing.assert_array_equal(rows, resample_rows(7, 1, 500, 40))
    np.testing.assert_array_equal(rows, np.random.default_rng([7, 1]).integers(0, 40, size=500))
    assert not np.array_equal(rows, resample_rows(7, 2, 500, 40))
    assert rows.min() >= 0 and rows.max() < 40 and len(np.unique(rows)) == 40
    pool = [np.arange(80.0).reshape(40, 2)]
    np.testing.assert_array_equal(drawn_values(pool, "resample", 500, 7, 1)[0], pool[0][rows])
    assert drawn_values(pool, "peak", 500, 7, 1) is pool  # a constant mode: unchanged


def test_mean_over_draws_averages_and_keeps_the_spread() -> None:
    draw = {"unit": np.array([0, 1]), "accuracy": np.array([0.5, 0.75]), "effect": np.array([0.0, 0.25]),
            "broken": np.array([1, 2]), "fixed": np.array([1, 3]), "class_effect": np.zeros((2, 3))}
    other = {**draw, "accuracy": np.array([0.25, 0.75]), "effect": np.array([-0.25, 0.25]),
             "broken": np.array([2, 2]), "fixed": np.array([0, 4])}
    table = mean_over_draws([draw, other], seed=9)
    np.testing.assert_array_equal(table["accuracy"], [0.375, 0.75])
    np.testing.assert_array_equal(table["effect_sd"], [np.sqrt(2) * 0.125, 0.0])
    np.testing.assert_array_equal(table["broken"], [2, 2])  # rint(1.5) = 2 (to even), 2
    np.testing.assert_array_equal(table["fixed"], [0, 4])  # rint(0.5) = 0, rint(3.5) = 4
    assert table["p_mcnemar"][0] == 0.5 and table["draws"].tolist() == [2, 2]
    assert table["resample_seed"].tolist() == [9, 9]


# ------------------------------------------------------------------ near-ties


def _classifier(net: Network) -> MLPClassifier:
    clf = MLPClassifier((6, 4), activation="tanh")
    clf.coefs_, clf.intercepts_ = [w.copy() for w in net.coefs], [b.copy() for b in net.intercepts]
    clf.n_layers_, clf.n_outputs_, clf.out_activation_ = 4, 3, "softmax"
    clf.classes_ = net.classes
    clf._label_binarizer = LabelBinarizer().fit(net.classes)
    return clf


def _tied(mode: str, seed: int) -> tuple[Network, np.ndarray, np.ndarray, int]:
    """A tanh net whose logits 0 and 1 of row 0 (almost) tie once unit j of the last hidden
    layer outputs row 0's replacement value (its drawn donor's output, or the peak); returns
    (net, X, reference, j)."""
    rng = np.random.default_rng(seed)
    coefs = (rng.normal(size=(5, 6)), rng.normal(size=(6, 4)), rng.normal(size=(4, 3)))
    intercepts = (rng.normal(size=6), rng.normal(size=4), rng.normal(size=3))
    net = Network(coefs, intercepts, "tanh", "softmax", np.array([0, 1, 2]))
    X, reference = rng.normal(size=(8, 5)), rng.normal(size=(30, 5))
    j = int(rng.integers(4))
    values = drawn_values(unit_replacements(net, mode, reference), mode, len(X))[1]
    h = np.tanh(np.tanh(X @ coefs[0] + intercepts[0]) @ coefs[1] + intercepts[1])
    column = values[:, j] if values.ndim == 2 else np.full(len(X), values[j])
    h[:, j] = column
    logits = h @ coefs[2] + intercepts[2]
    b = intercepts[2].copy()
    b[1] += logits[0, 0] - logits[0, 1]
    b[2] = min(b[2], b[1] - logits[0, 2] + logits[0, 1] - 5.0)
    net = net.with_weights(coefs, (intercepts[0], intercepts[1], b))
    h[:, j] = 0.0
    tied = propagate(net, h, 1) + column[:, None] * coefs[2][j]
    assert abs(tied[0, 0] - tied[0, 1]) < TIE_TOLERANCE[np.dtype(np.float64)]  # really a near-tie
    return net, X, reference, j


@pytest.mark.parametrize("mode", NEW)
@pytest.mark.parametrize("seed", range(8))
def test_a_near_tie_under_the_images_own_value_is_settled_as_the_oracle(mode: str, seed: int) -> None:
    net, X, reference, _ = _tied(mode, seed)
    y = np.zeros(8, dtype=np.int64)
    naive = naive_neuron_metrics(_classifier(net), X, y, 1, np.arange(4), mode, reference)
    for metrics in ("full", "accuracy"):
        assert_same_metrics(ablate_neurons(net, X, y, 1, np.arange(4), mode, reference, metrics=metrics),
                            naive, metrics)


# ------------------------------------------------------------------ a sweep, every row re-checked


def test_a_sweep_in_four_modes_writes_every_row_and_each_resample_and_peak_row_is_the_oracles(
    run_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = run_config("model.hidden_layer_sizes=[16,8]", "model.name=small", "model.max_iter=40",
                     "ablation.modes=[zero,mean,resample,peak]", "dataset.val_fraction=0.2", "ablation.resample_draws=2")
    with serial_sweeps(monkeypatch):
        summary = pipeline.run(cfg)
    df = pd.read_parquet(f"{summary.results}/kind=neuron")
    assert df.groupby(["mode", "split"]).size().to_dict() == {
        (m, s): 24 for m in ("mean", "peak", "resample", "zero") for s in ("test", "val")}
    constant = df[df["mode"] != "resample"]
    assert constant[["draws", "resample_seed", "effect_sd"]].isna().all().all()
    run = json.loads(Path(summary.results, "_manifest.json").read_text())["runs"][0]
    clf, data = load_model(run["model_path"]), load_dataset(**run["dataset_params"])
    reference = reference_inputs(data.X_train, data.X_val)
    for (mode, split, layer), rows in df[df["mode"].isin(NEW)].groupby(["mode", "split", "layer"]):
        X, y = (data.X_test, data.y_test) if split == "test" else (data.X_val, data.y_val)
        rows = rows.sort_values("unit")
        units = rows["unit"].to_numpy()
        if mode == "peak":
            naive = naive_neuron_metrics(clf, X, y, layer, units, mode, reference)
            assert_same_metrics({c: np.stack(rows[c]) if c == "class_effect" else rows[c].to_numpy() for c in naive},
                                naive)
            continue
        seed, draws = int(rows["resample_seed"].iloc[0]), int(rows["draws"].iloc[0])
        assert (seed, draws) == (0, 2)  # the model's seed by default
        each = [naive_neuron_metrics(clf, X, y, layer, units, mode, reference, seed, d) for d in range(draws)]
        effects = np.array([e["effect"] for e in each])
        np.testing.assert_allclose(rows["accuracy"], np.mean([e["accuracy"] for e in each], axis=0), rtol=0, atol=1e-15)
        np.testing.assert_allclose(rows["effect"], effects.mean(axis=0), rtol=0, atol=1e-15)
        np.testing.assert_allclose(rows["effect_sd"], effects.std(axis=0, ddof=1), rtol=0, atol=1e-15)
        np.testing.assert_allclose(rows["loss"], np.mean([e["loss"] for e in each], axis=0), rtol=0, atol=1e-12)
        for c in ("broken", "fixed"):
            np.testing.assert_array_equal(rows[c], np.rint(np.mean([e[c] for e in each], axis=0)))


def test_resample_settings_enter_the_fingerprint_only_when_changed(run_config) -> None:
    kind = KINDS["neuron"]
    assert kind.row_settings(run_config().ablation) == {"metrics": "full"}  # older parts keep theirs
    assert kind.row_settings(run_config("ablation.resample_draws=5").ablation) == {"metrics": "full", "resample_draws": 5}


# ------------------------------------------------------------------ refusals, before any work


def test_the_running_pass_takes_a_per_image_mode_only_with_one_row_per_image() -> None:
    net = Network((np.ones((2, 3)), np.ones((3, 2))), (np.zeros(3), np.zeros(2)), "relu", "softmax", np.array([0, 1]))
    with pytest.raises(ValueError, match=r"mode 'resample' gives every image its own value: pass one row per image"):
        PrunedPass.start(net, np.ones((4, 2)), np.zeros(4, dtype=np.int64), [np.zeros((5, 3))], "resample")


@pytest.mark.parametrize("seed", range(8))
def test_the_running_pass_settles_a_near_tie_under_an_images_own_value_as_the_oracle(seed: int) -> None:
    net, X, reference, j = _tied("resample", seed)
    y = np.zeros(8, dtype=np.int64)
    values = drawn_values(unit_replacements(net, "resample", reference), "resample", len(X))
    pred, proba = per_image_outputs(_classifier(net), X, [(1, j)], "resample", values)
    curve = cumulative_curve(net, X, y, [(1, j)], mode="resample", reference=reference)
    assert curve["accuracy"][1] == np.mean(pred == y)
    assert curve["loss"][1] == pytest.approx(np.mean(sample_log_loss(proba, y)), rel=1e-12)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_prefix_of_a_resampled_cumulative_curve_is_the_per_image_oracles(activation: str) -> None:
    """Units removed one layer at a time and several layers at once (a random order mixes
    them), each image with its own drawn values, against a copy edited per image."""
    clf = trained_mlp(activation)
    X, y = digits(150)
    reference = digits(300)[0][150:]
    net = Network.from_classifier(clf)
    order = make_order("random", net, scope="network", seed=1)
    values = drawn_values(unit_replacements(net, "resample", reference), "resample", len(y), 5, 1)
    ks = np.array([0, 1, 3, 8, 19])
    curve = cumulative_curve(net, X, y, order, ks, "resample", reference, draw=1, resample_seed=5)
    for k, accuracy, loss in zip(ks, curve["accuracy"], curve["loss"]):
        if k == 0:
            pred, proba = clf.predict(X), clf.predict_proba(X)
        else:
            pred, proba = per_image_outputs(clf, X, [tuple(u) for u in order[:k]], "resample", values)
        assert accuracy == np.mean(pred == y), k
        assert loss == pytest.approx(np.mean(sample_log_loss(proba, y)), rel=1e-9)


@pytest.mark.parametrize("mode", NEW)
def test_torch_models_take_the_new_modes(mode: str, tmp_path) -> None:
    pytest.importorskip("torch")
    run = compose_run([f"paths.results={tmp_path}", "model=small_cnn", f"ablation.modes=[zero,{mode}]"])
    assert run.ablation.modes == ["zero", mode]


def test_a_study_written_before_the_draw_columns_still_reads(tmp_path) -> None:
    """Release 0.1's parts lack ``draws``, ``resample_seed`` and ``effect_sd``: they read
    without them (or null, beside newer parts), and analysis takes them as a constant mode's
    (the fingerprint's default settings are unchanged: ``tests/test_compat.py`` resumes it)."""
    import shutil

    import analysis
    from analysis.study import resample_seed

    root = tmp_path / "results"
    shutil.copytree(Path(__file__).parent / "fixtures" / "release_0_1", root)
    for kind in ("neuron", "cumulative"):
        rows = analysis.load(root, "compat", kind)
        new = [c for c in ("draws", "resample_seed", "effect_sd") if c in rows]
        assert len(rows) and rows[new].isna().all().all() and resample_seed(rows) == 0
