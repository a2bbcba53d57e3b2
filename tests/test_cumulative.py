"""Tests of sweep.cumulative: joint ablation against a naive set oracle, incremental
cumulative curves against one-shot joint ablations, orders and cumulative rows."""

from __future__ import annotations

import copy
import functools
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier

from sweep.kernels import (
    CUMULATIVE_COLUMNS,
    ORDER_KEYS,
    ablate_joint,
    as_units,
    constant_modes,
    cumulative_curve,
    cumulative_rows,
    grid,
    make_order,
    replacement_values,
    scope_units,
)
from sweep.kernels import running as running_module
from sweep.kernels.network import Network

ACTIVATIONS = ("relu", "tanh", "logistic", "identity")
# predictions may differ from the oracle's only where its top two probabilities are this close
TIE = 1e-9


@functools.cache
def fitted(
    activation: str, n_classes: int = 3
) -> tuple[MLPClassifier, np.ndarray, np.ndarray, np.ndarray]:
    """A tiny two-hidden-layer classifier, its data (X, y) and a reference split."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5))
    y = (X[:, 0] + X[:, 1] ** 2 - X[:, 2] > 0.5).astype(int) + (n_classes == 3) * (X[:, 3] > 0.8)
    clf = MLPClassifier(
        hidden_layer_sizes=(6, 5), activation=activation, max_iter=300, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X[:80], y[:80])
    return clf, X[80:], y[80:], X[:80]


def set_oracle(
    clf: MLPClassifier, units: np.ndarray, mode: str, reference: np.ndarray | None
) -> MLPClassifier:
    """A deep copy of ``clf`` with every unit of ``units`` (k, 2) ablated in its weights."""
    net = Network.from_classifier(clf)
    ablated = copy.deepcopy(clf)
    coefs, intercepts = ablated.coefs_, ablated.intercepts_
    for layer, unit in units:
        if mode == "zero":
            coefs[layer][:, unit] = 0.0
            intercepts[layer][unit] = 0.0
            continue
        value = replacement_values(net, layer, mode, reference)[unit]
        intercepts[layer + 1] += value * coefs[layer + 1][unit, :]
        coefs[layer + 1][unit, :] = 0.0
    return ablated


def oracle_scores(clf: MLPClassifier, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Accuracy and mean log-loss of a classifier, after checking it has no near-tie rows."""
    prob = np.sort(clf.predict_proba(X), axis=1)
    assert np.all(prob[:, -1] - prob[:, -2] > TIE), "test data has a genuine float tie"
    return float(np.mean(clf.predict(X) == y)), float(
        log_loss(y, clf.predict_proba(X), labels=clf.classes_)
    )


def random_units(clf: MLPClassifier, k: int, seed: int) -> np.ndarray:
    net = Network.from_classifier(clf)
    units = scope_units(net, "network")
    return units[np.random.default_rng(seed).permutation(len(units))[:k]]


@pytest.mark.parametrize("mode", constant_modes())
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_joint_ablation_matches_set_oracle(activation: str, mode: str) -> None:
    clf, X, y, ref = fitted(activation)
    net = Network.from_classifier(clf)
    base_accuracy, base_loss = oracle_scores(clf, X, y)
    for seed, k in enumerate((1, 4, 11)):
        units = random_units(clf, k, seed)
        oracle = set_oracle(clf, units, mode, ref)
        accuracy, loss = oracle_scores(oracle, X, y)
        right_base, right = clf.predict(X) == y, oracle.predict(X) == y
        got = ablate_joint(net, X, y, [tuple(u) for u in units], mode, ref)
        assert got["accuracy"].shape == (1,)
        assert got["accuracy"][0] == accuracy and got["accuracy_base"][0] == base_accuracy
        assert got["effect"][0] == pytest.approx(accuracy - base_accuracy, abs=1e-12)
        assert got["loss"][0] == pytest.approx(loss, rel=1e-9)
        assert got["loss_base"][0] == pytest.approx(base_loss, rel=1e-9)
        assert got["broken"][0] == np.sum(right_base & ~right)
        assert got["fixed"][0] == np.sum(~right_base & right)


@pytest.mark.parametrize("mode", constant_modes())
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_cumulative_prefixes_equal_joint_ablations_and_oracle(activation: str, mode: str) -> None:
    clf, X, y, ref = fitted(activation)
    net = Network.from_classifier(clf)
    order = make_order("random", net, scope="network", seed=3)
    curve = cumulative_curve(net, X, y, order, mode=mode, reference=ref)
    np.testing.assert_array_equal(curve["k"], np.arange(len(order) + 1))
    for k in curve["k"]:
        joint = ablate_joint(net, X, y, order[:k], mode, ref)
        accuracy, loss = oracle_scores(set_oracle(clf, order[:k], mode, ref), X, y)
        assert curve["accuracy"][k] == joint["accuracy"][0] == accuracy
        assert curve["loss"][k] == pytest.approx(joint["loss"][0], rel=1e-9)
        assert curve["loss"][k] == pytest.approx(loss, rel=1e-9)
    assert np.all(curve["accuracy_base"] == curve["accuracy"][0])


def test_cumulative_grid_equals_every_k_and_binary_output() -> None:
    clf, X, y, ref = fitted("relu", n_classes=2)
    net = Network.from_classifier(clf)
    assert net.out_activation == "logistic"
    order = make_order("random", net, seed=1)
    full = cumulative_curve(net, X, y, order, mode="mean", reference=ref)
    ks = np.array([7, 0, 3, 11, 3])
    part = cumulative_curve(net, X, y, order, ks=ks, mode="mean", reference=ref)
    np.testing.assert_array_equal(part["k"], [0, 3, 7, 11])
    np.testing.assert_allclose(part["accuracy"], full["accuracy"][[0, 3, 7, 11]])
    np.testing.assert_allclose(part["loss"], full["loss"][[0, 3, 7, 11]], rtol=1e-12)
    accuracy, _ = oracle_scores(set_oracle(clf, order[:7], "mean", ref), X, y)
    assert part["accuracy"][2] == accuracy


def test_cumulative_within_one_layer_scope() -> None:
    clf, X, y, _ = fitted("tanh")
    net = Network.from_classifier(clf)
    order = make_order("random", net, scope="layer1", seed=2)
    curve = cumulative_curve(net, X, y, order, mode="remove")
    for k in (2, 5):
        assert (
            curve["accuracy"][k]
            == oracle_scores(set_oracle(clf, order[:k], "remove", None), X, y)[0]
        )


def test_as_units_validates() -> None:
    net = Network.from_classifier(fitted("relu")[0])
    assert as_units([], net).shape == (0, 2)
    with pytest.raises(ValueError, match="more than once"):
        as_units([(0, 1), (0, 1)], net)
    with pytest.raises(ValueError, match="layer"):
        as_units([(2, 0)], net)
    with pytest.raises(ValueError, match="unit index"):
        as_units([(1, 5)], net)
    with pytest.raises(ValueError, match="prefix"):
        cumulative_curve(net, *fitted("relu")[1:3], [(0, 0)], ks=np.array([2]))


def test_random_orders_are_reproducible_nested_permutations() -> None:
    net = Network.from_classifier(fitted("relu")[0])
    units = scope_units(net, "network")
    a = make_order("random", net, seed=5, repetition=0)
    assert sorted(map(tuple, a)) == sorted(map(tuple, units))
    np.testing.assert_array_equal(a, make_order("random", net, seed=5, repetition=0))
    assert not np.array_equal(a, make_order("random", net, seed=5, repetition=1))
    layer1 = make_order("random", net, scope="layer1", seed=5)
    assert np.all(layer1[:, 0] == 1) and len(layer1) == 5


def test_statistic_and_effect_orders_break_ties_by_layer_unit() -> None:
    net = Network.from_classifier(fitted("relu")[0])
    units = scope_units(net, "network")  # 6 + 5 units
    stats = {
        "layer": units[:, 0],
        "unit": units[:, 1],
        "selectivity": np.array([0.1, 0.5, 0.5, 0.0, 0.2, 0.5, 0.5, 0.0, 0.3, 0.1, 0.9]),
    }
    high = make_order("selectivity_high", net, stats=stats)
    np.testing.assert_array_equal(high[:6], [[1, 4], [0, 1], [0, 2], [0, 5], [1, 0], [1, 2]])
    low = make_order("selectivity_low", net, stats=stats, scope="layer1")
    np.testing.assert_array_equal(low, [[1, 1], [1, 3], [1, 2], [1, 0], [1, 4]])
    effects = {"layer": units[::-1, 0], "unit": units[::-1, 1], "effect": np.arange(11.0)}
    np.testing.assert_array_equal(make_order("effect_high", net, effects=effects), units)
    np.testing.assert_array_equal(make_order("effect_low", net, effects=effects), units[::-1])
    with pytest.raises(ValueError, match="needs"):
        make_order("entropy_low", net)
    with pytest.raises(ValueError, match="lack"):
        make_order("selectivity_high", net, stats={k: v[:3] for k, v in stats.items()})
    with pytest.raises(ValueError, match="unknown order"):
        make_order("nope", net)
    with pytest.raises(ValueError, match="unknown scope"):
        make_order("random", net, scope="layer2")
    assert {"mutual_information_high", "kl_selectivity_low", "mean_activation_high"} <= set(
        ORDER_KEYS
    )


def test_grid() -> None:
    np.testing.assert_array_equal(grid(4, None), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(grid(10, 3), [0, 5, 10])
    np.testing.assert_array_equal(grid(3, 10), [0, 1, 2, 3])


def test_cumulative_rows() -> None:
    clf, X, y, _ = fitted("relu")
    net = Network.from_classifier(clf)
    units = scope_units(net, "network")
    stats = {"layer": units[:, 0], "unit": units[:, 1], "entropy": np.linspace(0, 1, 11)}
    rows = cumulative_rows(
        net,
        X,
        y,
        ["random", "entropy_low"],
        scopes=("network", "layer0"),
        mode="zero",
        repetitions=3,
        seed=0,
        stats=stats,
        n_points=4,
    )
    assert tuple(rows) == tuple(CUMULATIVE_COLUMNS)
    n = len(rows["k"])
    assert all(len(v) == n for v in rows.values())
    assert n == 4 * (3 + 1) * 2
    assert set(rows["repetition"][rows["order"] == "entropy_low"]) == {0}
    assert set(rows["repetition"][rows["order"] == "random"]) == {0, 1, 2}
    assert np.all(rows["accuracy"][rows["k"] == 0] == rows["accuracy_base"][0])
    sel = (rows["scope"] == "network") & (rows["order"] == "random") & (rows["repetition"] == 2)
    order = make_order("random", net, scope="network", seed=0, repetition=2)
    expected = cumulative_curve(net, X, y, order, ks=rows["k"][sel])
    np.testing.assert_array_equal(rows["accuracy"][sel], expected["accuracy"])
    assert rows["scope"].dtype == object and set(rows["scope"]) == {"network", "layer0"}


@pytest.mark.parametrize("share", [0.0, 1.0])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_changed_row_updates_are_exact(
    activation: str, share: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recomputing only the changed rows (share 1.0) or all rows (0.0) gives the same curve."""
    monkeypatch.setattr(running_module, "SPARSE_ROWS", share)
    clf, X, y, ref = fitted(activation)
    net = Network.from_classifier(clf)
    order = make_order("random", net, seed=7)
    curve = cumulative_curve(net, X, y, order, mode="zero")
    for k in (3, 6, 9):
        assert (
            curve["accuracy"][k] == oracle_scores(set_oracle(clf, order[:k], "zero", ref), X, y)[0]
        )
        joint = ablate_joint(net, X, y, order[:k])
        assert curve["loss"][k] == pytest.approx(joint["loss"][0], rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_cumulative_curve_matches_oracle_on_mnist(mode: str) -> None:
    """The running pass on MNIST's 10,000 official test images: every prefix of a random order
    (a batch of 12 units per step, across both layers) predicts as sklearn does with those
    units' weights edited."""
    from sweep.data.datasets import load_dataset
    from sweep.kernels.oracle import units_ablated_classifier
    from tests.conftest import MNIST_DIR

    if not MNIST_DIR.is_dir():
        pytest.skip(f"MNIST files not found in {MNIST_DIR}")
    data = load_dataset("mnist", data_dir=str(MNIST_DIR), split="official")
    clf = MLPClassifier(hidden_layer_sizes=(48, 24), max_iter=8, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(data.X_train[:6000], data.y_train[:6000])
    net = Network.from_classifier(clf)
    order = make_order("random", net, seed=3)
    ks = np.arange(0, len(order) + 1, 12)
    reference = data.X_train[:6000]
    curve = cumulative_curve(net, data.X_test, data.y_test, order, ks=ks, mode=mode, reference=reference)
    for i, k in enumerate(ks):
        ablated = units_ablated_classifier(clf, [tuple(u) for u in order[:k]], mode, reference)
        assert curve["accuracy"][i] == np.mean(ablated.predict(data.X_test) == data.y_test)
        expected = log_loss(data.y_test, ablated.predict_proba(data.X_test), labels=clf.classes_)
        assert curve["loss"][i] == pytest.approx(expected, rel=1e-9)
