"""Pair ablation (sweep.kernels.pairs, kind=pair) against the naive oracle: every pair's
metrics equal sklearn's ``predict`` / ``predict_proba`` with both units' weights edited, on
every pair of small nets, for every activation, mode and metric set; interactions from the
oracle's single effects; shards; settings; the sweep through Ray with resume."""

from __future__ import annotations

import numpy as np
import pytest

from sweep.kernels import NEURON_MODES
from sweep.kernels.network import Network
from sweep.kernels.oracle import naive_neuron_metrics, naive_pair_metrics
from sweep.kernels.pairs import PAIR_COLUMNS, ablate_pairs, check_units, pair_count
from tests.nets import ACTIVATIONS, digits, trained_mlp

UNITS = np.array([(layer, unit) for layer, width in enumerate((12, 7)) for unit in range(width)])
"""Every hidden unit of the (12, 7) test nets, in order."""


def pairs_of(columns: dict[str, np.ndarray]) -> np.ndarray:
    return np.column_stack([columns[k] for k in ("layer_a", "unit_a", "layer_b", "unit_b")])


def assert_equals_oracle(clf, X, y, columns, mode: str, metrics: str) -> None:
    oracle = naive_pair_metrics(clf, X, y, pairs_of(columns), mode, X)
    for name in ("n_samples", "broken", "fixed", "accuracy", "accuracy_base", "effect"):
        np.testing.assert_array_equal(columns[name], oracle[name], err_msg=name)
    np.testing.assert_allclose(columns["p_mcnemar"], oracle["p_mcnemar"], rtol=1e-12)
    np.testing.assert_allclose(columns["class_effect"], oracle["class_effect"], atol=1e-12)
    if metrics == "full":
        np.testing.assert_allclose(columns["loss"], oracle["loss"], rtol=1e-9)
    else:
        assert np.isnan(columns["loss"]).all()


@pytest.mark.parametrize("metrics", ["accuracy", "full"])
@pytest.mark.parametrize("mode", NEURON_MODES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_pair_within_and_across_layers_equals_the_oracle(activation: str, mode: str, metrics: str) -> None:
    clf = trained_mlp(activation)
    X, y = digits(300)
    columns = ablate_pairs(Network.from_classifier(clf), X, y, UNITS, mode=mode, reference=X, metrics=metrics)
    assert tuple(columns) == tuple(PAIR_COLUMNS)
    expected = [(*a, *b) for i, a in enumerate(UNITS.tolist()) for b in UNITS.tolist()[i + 1 :]]
    np.testing.assert_array_equal(pairs_of(columns), expected)
    assert len(expected) == 171 == pair_count(19)
    assert_equals_oracle(clf, X, y, columns, mode, metrics)
    assert columns["broken"].sum() > 500  # the pairs do change predictions


@pytest.mark.parametrize("activation,mode", [("relu", "zero"), ("tanh", "mean"), ("logistic", "remove")])
def test_interaction_is_the_pair_effect_minus_the_oracle_single_effects(activation: str, mode: str) -> None:
    clf = trained_mlp(activation)
    X, y = digits(300)
    columns = ablate_pairs(Network.from_classifier(clf), X, y, UNITS, mode=mode, reference=X)
    single = {
        (layer, int(u)): e
        for layer in (0, 1)
        for u, e in zip(
            range((12, 7)[layer]),
            naive_neuron_metrics(clf, X, y, layer, np.arange((12, 7)[layer]), mode, X)["effect"],
        )
    }
    pairs = pairs_of(columns).tolist()
    expected = [columns["effect"][k] - single[(la, ua)] - single[(lb, ub)] for k, (la, ua, lb, ub) in enumerate(pairs)]
    np.testing.assert_allclose(columns["interaction"], expected, atol=1e-12)
    assert np.any(columns["interaction"] > 0) and np.any(columns["interaction"] < 0)


def test_binary_net_a_chosen_subset_and_shards_concatenate_to_the_whole() -> None:
    clf = trained_mlp("tanh", binary=True)
    X, y = digits(300, binary=True)
    net = Network.from_classifier(clf)
    units = UNITS[[0, 3, 4, 11, 12, 18]]
    whole = ablate_pairs(net, X, y, units, mode="mean", reference=X, metrics="full")
    assert len(whole["effect"]) == 15
    assert_equals_oracle(clf, X, y, whole, "mean", "full")
    shards = [ablate_pairs(net, X, y, units, a, b, mode="mean", reference=X, metrics="full") for a, b in [(0, 2), (2, 5)]]
    for name in PAIR_COLUMNS:
        np.testing.assert_array_equal(np.concatenate([s[name] for s in shards]), whole[name], err_msg=name)
    assert [pair_count(6, a, b) for a, b in [(0, 2), (2, 5)]] == [9, 6]


def test_units_must_be_sorted_and_a_range_must_hold_pairs() -> None:
    with pytest.raises(ValueError, match="distinct .* sorted by layer, then unit"):
        check_units(np.array([[1, 0], [0, 3]]))
    with pytest.raises(ValueError, match="distinct"):
        check_units(np.array([[0, 2], [0, 2]]))
    clf = trained_mlp("relu")
    X, y = digits(300)
    with pytest.raises(ValueError, match=r"no pair has its first unit at a position of \[18, 19\) of 19 units"):
        ablate_pairs(Network.from_classifier(clf), X, y, UNITS, 18, 19)
