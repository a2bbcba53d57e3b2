"""Pruning paths (sweep.kernels.pruning, kind=pruning) against the naive oracle: every step's
val and test accuracy equals sklearn's ``predict`` with those units' weights edited, the
greedy choice equals a brute-force greedy on sklearn, the tie rule, the stop rules, torch,
and the sweep through Ray with resume."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier

from sweep.kernels import NEURON_MODES, constant_modes, unit_replacements
from sweep.kernels.network import Network
from sweep.kernels.pruning import (
    PRUNING_COLUMNS,
    PRUNING_METHODS,
    PrunedPass,
    greedy_choice,
    pruning_path,
    rank,
    removal_limit,
)
from sweep.kernels.screen import gain_tables
from sweep.kinds.pruning import PruningSettings, removable_fractions
from tests.nets import ACTIVATIONS, digits, trained_mlp

TIE = 1e-9
"""The oracle's top two probabilities must be further apart than this (no genuine float ties)."""


def splits(binary: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    X, y = digits(300, binary)
    return {"val": (X[:150], y[:150]), "test": (X[150:], y[150:])}


def edited(clf: MLPClassifier, units: list[tuple[int, int]], mode: str, values: list[np.ndarray]) -> MLPClassifier:
    """A deep copy of ``clf`` with ``units`` edited in its weights, in order (the oracle)."""
    ablated = copy.deepcopy(clf)
    coefs, intercepts = ablated.coefs_, ablated.intercepts_
    for layer, unit in units:
        if NEURON_MODES[mode].zero_incoming:
            coefs[layer][:, unit] = 0.0
            intercepts[layer][unit] = 0.0
        else:
            intercepts[layer + 1] += values[layer][unit] * coefs[layer + 1][unit, :]
            coefs[layer + 1][unit, :] = 0.0
    return ablated


def oracle(clf: MLPClassifier, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """sklearn's accuracy and mean log-loss, after checking there is no near-tie row."""
    prob = clf.predict_proba(X)
    top = np.sort(prob, axis=1)
    assert np.all(top[:, -1] - top[:, -2] > TIE), "genuine float tie in the test data"
    return float(np.mean(clf.predict(X) == y)), float(log_loss(y, prob, labels=clf.classes_))


def removed_units(columns: dict[str, np.ndarray]) -> list[tuple[int, int]]:
    val = (columns["split"] == "val") & (columns["step"] > 0)
    return list(zip(columns["layer"][val].tolist(), columns["unit"][val].tolist()))


def assert_path_matches_oracle(clf, columns, data, mode, values) -> None:
    units = removed_units(columns)
    for k in range(len(units) + 1):
        pruned = edited(clf, units[:k], mode, values)
        for split, (X, y) in data.items():
            row = (columns["step"] == k) & (columns["split"] == split)
            accuracy, loss = oracle(pruned, X, y)
            assert columns["accuracy"][row][0] == accuracy, (split, k)
            assert columns["loss"][row][0] == pytest.approx(loss, rel=1e-9)
            right_base, right = clf.predict(X) == y, pruned.predict(X) == y
            assert columns["broken"][row][0] == np.sum(right_base & ~right)
            assert columns["fixed"][row][0] == np.sum(~right_base & right)


@pytest.mark.parametrize("mode", constant_modes())
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_step_of_every_method_equals_the_oracle(activation: str, mode: str) -> None:
    clf = trained_mlp(activation)
    net, data = Network.from_classifier(clf), splits()
    values = unit_replacements(net, mode, data["val"][0])
    for method in PRUNING_METHODS:
        columns = pruning_path(net, data, method, values, mode=mode, seed=3)
        assert tuple(columns) == tuple(PRUNING_COLUMNS)
        assert sorted(removed_units(columns)) == [(l, u) for l in (0, 1) for u in range((12, 7)[l])]
        np.testing.assert_array_equal(columns["step"], np.repeat(np.arange(20), 2))
        np.testing.assert_array_equal(columns["split"], ["val", "test"] * 20)
        np.testing.assert_allclose(columns["fraction"], columns["step"] / 19)
        assert_path_matches_oracle(clf, columns, data, mode, values)


def test_binary_network_and_one_layer_scope() -> None:
    clf = trained_mlp("tanh", binary=True)
    net, data = Network.from_classifier(clf), splits(binary=True)
    values = unit_replacements(net, "mean", data["val"][0])
    columns = pruning_path(net, data, "greedy", values, mode="mean", scope="layer1")
    assert {layer for layer, _ in removed_units(columns)} == {1} and len(removed_units(columns)) == 7
    assert_path_matches_oracle(clf, columns, data, "mean", values)


@pytest.mark.parametrize("activation,mode", [("relu", "zero"), ("logistic", "mean"), ("tanh", "remove")])
def test_greedy_equals_brute_force_greedy_on_sklearn(activation: str, mode: str) -> None:
    clf = trained_mlp(activation)
    net, data = Network.from_classifier(clf), splits()
    X, y = data["val"]
    values = unit_replacements(net, mode, X)
    chosen = removed_units(pruning_path(net, data, "greedy", values, mode=mode))
    remaining = sorted(chosen)
    for k, unit in enumerate(chosen):
        scores = {u: oracle(edited(clf, [*chosen[:k], u], mode, values), X, y) for u in remaining}
        best = max(accuracy for accuracy, _ in scores.values())
        lowest = min(loss for accuracy, loss in scores.values() if accuracy == best)
        # the chosen unit keeps the best accuracy and has the lowest loss among those that do
        # (to rounding); among exact equals, the lowest (layer, unit)
        assert scores[unit][0] == best and scores[unit][1] <= lowest + 1e-12, k
        equal = [u for u in remaining if scores[u] == scores[unit]]
        assert unit == min(equal), k
        remaining.remove(unit)


@pytest.mark.parametrize("mode", constant_modes())
def test_screening_tables_of_the_unpruned_net_bound_every_pruned_copys(mode: str) -> None:
    clf = trained_mlp("tanh")
    net, data = Network.from_classifier(clf), splits()
    values = unit_replacements(net, mode, data["val"][0])
    pruned = PrunedPass.start(net, *data["val"], values, mode)
    for layer, unit in [(1, 2), (0, 5), (1, 0), (0, 0)]:
        pruned.remove(layer, unit)
    for layer in (0, 1):
        for before, after in zip(gain_tables(net, layer), gain_tables(pruned.net, layer)):
            assert np.all(after <= before + 1e-12)
        moved = gain_tables(net, layer)[0] - gain_tables(pruned.net, layer)[0]
        assert layer == 1 or moved.max() > 0  # removing layer-1 units did shrink the bounds


def test_tie_rule_accuracy_then_loss_then_layer_and_unit() -> None:
    candidates = np.array([[1, 0], [0, 3], [0, 1], [1, 2], [0, 2]])
    right = np.array([5, 5, 5, 6, 5])
    loss = np.array([0.2, 0.1, 0.1, 0.9, 0.3])
    np.testing.assert_array_equal(candidates[rank(candidates, right, loss)], [[1, 2], [0, 1], [0, 3], [1, 0], [0, 2]])


def test_greedy_removes_exactly_equal_units_lowest_index_first() -> None:
    # unit 9 of layer 0 is made a copy of unit 2, and units 5 and 11 dead on every row:
    # removing either twin, or either dead unit, gives the very same network outputs
    clf = copy.deepcopy(trained_mlp("relu"))
    clf.coefs_[0][:, 9] = clf.coefs_[0][:, 2]
    clf.intercepts_[0][9] = clf.intercepts_[0][2]
    clf.coefs_[1][9] = clf.coefs_[1][2]
    clf.intercepts_[0][[5, 11]] = -1e3
    net, data = Network.from_classifier(clf), splits()
    values = unit_replacements(net, "zero")
    selection = [PrunedPass.start(net, *data["val"], values, "zero")]
    twins = [oracle(edited(clf, [(0, u)], "zero", values), *data["val"]) for u in (9, 2)]
    assert twins[0] == twins[1]
    assert greedy_choice(selection, np.array([[0, 9], [0, 2]])) == 1
    assert greedy_choice(selection, np.array([[0, 11], [0, 5]])) == 1


def test_stop_rules_max_removed_count_fraction_and_tolerance() -> None:
    clf = trained_mlp("relu")
    net, data = Network.from_classifier(clf), splits()
    values = unit_replacements(net, "zero")
    count = pruning_path(net, data, "random", values, max_removed=5, seed=1)
    assert count["step"].max() == 5 and len(count["step"]) == 2 * 6
    fraction = pruning_path(net, data, "random", values, max_removed=0.25, seed=1)
    assert fraction["step"].max() == 4  # floor(0.25 * 19)
    np.testing.assert_array_equal(fraction["unit"], count["unit"][: len(fraction["unit"])])  # nested prefixes
    full = pruning_path(net, data, "magnitude", values)
    val = full["split"] == "val"
    drop = full["accuracy_base"][val] - full["accuracy"][val]
    tolerance = 0.05
    first = int(np.flatnonzero(drop > tolerance)[0])
    cut = pruning_path(net, data, "magnitude", values, tolerance=tolerance)
    assert cut["step"].max() == first  # the step that fell beyond the tolerance is the last one
    np.testing.assert_array_equal(cut["accuracy"], full["accuracy"][: 2 * (first + 1)])
    assert removal_limit(None, 7) == 7 and removal_limit(0.5, 7) == 3 and removal_limit(30, 7) == 7
    with pytest.raises(ValueError, match="neither a fraction below 1 nor a whole count"):
        removal_limit(2.5, 7)
    with pytest.raises(ValueError, match="must be positive"):
        removal_limit(0, 7)
    with pytest.raises(ValueError, match="unknown pruning method"):
        pruning_path(net, data, "lottery", values)
    with pytest.raises(ValueError, match="needs a 'val' entry"):
        pruning_path(net, {"test": data["test"]}, "greedy", values)


def test_settings_need_a_val_split_and_no_splits() -> None:
    with pytest.raises(ValueError, match="dataset.val_fraction=0.1"):
        PruningSettings().check((12, 7), has_val=False)
    with pytest.raises(ValueError, match="ablation.splits does not apply"):
        PruningSettings(splits=["test"]).check((12, 7), has_val=True)
    with pytest.raises(ValueError, match="choose from network, layer0, layer1"):
        PruningSettings(scopes=["layer2"]).check((12, 7), has_val=True)
    with pytest.raises(ValueError, match="whole count"):
        PruningSettings(max_removed=1.5).check((12, 7), has_val=True)
    PruningSettings(scopes=["network", "layer1"], max_removed=0.5).check((12, 7), has_val=True)


def test_removable_fractions_stop_at_the_first_step_beyond() -> None:
    effect = np.array([0.0, 0.002, -0.001, -0.004, 0.001, -0.02])
    df = pd.DataFrame({"method": "greedy", "split": "test", "step": np.arange(6), "fraction": np.arange(6) / 5,
                       "effect": effect})
    row = removable_fractions(pd.concat([df, df.assign(split="val", effect=0.0)])).iloc[0]
    assert row["fraction_0.1pp"] == 0.4  # step 2 is 0.1 pp below (within), step 3 beyond
    assert row["fraction_0.5pp"] == 0.8 and row["fraction_1pp"] == 0.8
    assert row["max_gain"] == 0.002 and row["steps"] == 5


def test_torch_path_equals_numpy() -> None:
    torch = pytest.importorskip("torch")
    from sweep.kernels.backend import to_backend

    clf = trained_mlp("logistic")
    net, data = Network.from_classifier(clf), splits()
    values = unit_replacements(net, "mean", data["val"][0])
    moved = {name: to_backend(net, X, y, "torch", "cpu")[1:] for name, (X, y) in data.items()}
    net_t = to_backend(net, *data["val"], "torch", "cpu")[0]
    assert isinstance(net_t.coefs[0], torch.Tensor)
    for method in ("greedy", "single_shot", "activation"):
        a = pruning_path(net, data, method, values, mode="mean")
        b = pruning_path(net_t, moved, method, values, mode="mean")
        for column in ("layer", "unit", "step", "accuracy", "broken", "fixed"):
            np.testing.assert_array_equal(a[column], b[column], err_msg=column)
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-9)


@pytest.mark.ray
def test_pruning_sweep_writes_every_method_and_resumes(local_ray, run_config):
    common = ("model.hidden_layer_sizes=[24,12]", "model.name=small", "model.max_iter=60", "ablation=pruning")
    with pytest.raises(Exception, match="dataset.val_fraction"):
        run_config(*common)
    cfg = run_config(*common, "dataset.val_fraction=0.2", "ablation.repetitions=2", "ablation.scopes=[network,layer1]")
    summary = pipeline_run(cfg)
    rows = pd.read_parquet(f"{summary.results}/kind=pruning")
    paths = rows.groupby(["scope", "method", "repetition"], observed=True)["step"].max()
    assert len(paths) == 2 * (4 + 2) and set(rows["method"]) == set(PRUNING_METHODS)
    assert (paths.xs("network") == 36).all() and (paths.xs("layer1") == 12).all()
    assert set(rows["split"]) == {"val", "test"} and summary.rows_written == len(rows) == 2 * (6 * 37 + 6 * 13)
    test0 = rows[(rows["split"] == "test") & (rows["step"] == 0)]
    assert (test0["accuracy"] == summary.runs[0]["test_accuracy"]).all()
    assert set(summary.table["method"]) == set(PRUNING_METHODS)
    percent = summary.table["removed_%_within_1pp"]
    assert percent.between(0, 100).all() and percent.max() > 1 and "fraction_1pp" not in summary.table
    assert pipeline_run(cfg).rows_written == 0

    cut = run_config(*common, "dataset.val_fraction=0.2", "ablation.methods=[greedy,magnitude]",
                     "ablation.tolerance=0.02", "study=cut")
    first = pipeline_run(cut)
    cut_rows = pd.read_parquet(f"{first.results}/kind=pruning")
    val = cut_rows[cut_rows["split"] == "val"]
    assert (val.groupby("method")["step"].max() < 36).all()  # stopped early, parts shorter than planned
    again = pipeline_run(cut)
    assert again.rows_written == 0 and again.rows_reused == len(cut_rows)


def pipeline_run(cfg):
    from sweep.run import pipeline

    return pipeline.run(cfg)
