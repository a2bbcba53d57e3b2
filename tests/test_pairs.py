"""Pair ablation (sweep.kernels.pairs, kind=pair) against the naive oracle: every pair's
metrics equal sklearn's ``predict`` / ``predict_proba`` with both units' weights edited, on
every pair of small nets, for every activation, mode and metric set; interactions from the
oracle's single effects; shards; settings; the sweep through Ray with resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import LabelBinarizer

from sweep.kernels import constant_modes
from sweep.kernels.network import Network
from sweep.kernels.oracle import naive_neuron_metrics, naive_pair_metrics, units_ablated_classifier
from sweep.kernels.pairs import PAIR_COLUMNS, ablate_pairs, check_units, pair_count
from sweep.kinds.pair import PairSettings, chosen_units, first_units
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
@pytest.mark.parametrize("mode", constant_modes())
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
    np.testing.assert_array_equal(columns["effect_a"], [single[(la, ua)] for la, ua, _, _ in pairs])
    np.testing.assert_array_equal(columns["effect_b"], [single[(lb, ub)] for _, _, lb, ub in pairs])
    assert np.any(columns["interaction"] > 0) and np.any(columns["interaction"] < 0)


def _classifier(net: Network) -> MLPClassifier:
    """A fitted-looking ``MLPClassifier`` holding ``net``'s weights."""
    clf = MLPClassifier(net.hidden_sizes, activation="tanh")
    clf.coefs_, clf.intercepts_ = [w.copy() for w in net.coefs], [b.copy() for b in net.intercepts]
    clf.n_layers_, clf.n_outputs_, clf.out_activation_ = len(net.coefs) + 1, 3, "softmax"
    clf.classes_ = net.classes
    clf._label_binarizer = LabelBinarizer().fit(net.classes)
    return clf


def _tied_by_pair(seed: int) -> tuple[Network, np.ndarray, np.ndarray, tuple[int, int]]:
    """A random tanh net (5 -> 6 -> 4 -> 3) whose output bias makes logits 0 and 1 of row 0
    (almost) equal once units j and k of the last hidden layer are removed (``remove``)."""
    rng = np.random.default_rng(seed)
    coefs = (rng.normal(size=(5, 6)), rng.normal(size=(6, 4)), rng.normal(size=(4, 3)))
    intercepts = (rng.normal(size=6), rng.normal(size=4), rng.normal(size=3))
    X = rng.normal(size=(8, 5))
    j, k = sorted(int(u) for u in rng.choice(4, 2, replace=False))
    h = np.tanh(np.tanh(X @ coefs[0] + intercepts[0]) @ coefs[1] + intercepts[1])
    h[:, [j, k]] = 0.0
    logits = h @ coefs[2] + intercepts[2]
    b = intercepts[2].copy()
    b[1] += logits[0, 0] - logits[0, 1]
    b[2] = min(b[2], b[1] - logits[0, 2] + logits[0, 1] - 5.0)  # class 2 far below
    net = Network(coefs, (intercepts[0], intercepts[1], b), "tanh", "softmax", np.array([0, 1, 2]))
    return net, X, np.zeros(8, dtype=np.int64), (j, k)


@pytest.mark.parametrize("seed", range(8))
def test_near_tie_after_removing_a_pair_matches_sklearn(seed: int) -> None:
    net, X, y, (j, k) = _tied_by_pair(seed)
    units = np.array([(layer, unit) for layer, width in enumerate((6, 4)) for unit in range(width)])
    columns = ablate_pairs(net, X, y, units, mode="remove", metrics="accuracy")
    clf = _classifier(net)
    tied = units_ablated_classifier(clf, [(1, j), (1, k)], "remove").predict_proba(X[:1])[0]
    assert abs(np.log(tied[0]) - np.log(tied[1])) < 1e-9  # the row really is a near-tie
    assert_equals_oracle(clf, X, y, columns, "remove", "accuracy")
    assert_equals_oracle(clf, X, y, ablate_pairs(net, X, y, units, mode="remove", metrics="full"), "remove", "full")


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


def test_settings_checks_and_top_k_units_chosen_by_val_effect() -> None:
    with pytest.raises(ValueError, match="ablation.layers has 2; the model has 2 hidden layers"):
        PairSettings(layers=[2]).check((12, 7), has_val=True)
    with pytest.raises(ValueError, match=r"ablation.top_k chooses units .* dataset.val_fraction=0.1"):
        PairSettings(top_k=5).check((12, 7), has_val=False)
    with pytest.raises(ValueError, match="ablation.top_k=8 exceeds the 7 units of the chosen layers"):
        PairSettings(top_k=8, layers=[1]).check((12, 7), has_val=True)
    PairSettings(top_k=19).check((12, 7), has_val=True)
    effects = pd.DataFrame({"layer": [0, 0, 0, 1, 1], "unit": [0, 1, 2, 0, 1], "effect": [-0.1, 0.0, 0.3, 0.1, -0.2]})
    np.testing.assert_array_equal(chosen_units((3, 2), None, 3, effects), [[0, 0], [0, 2], [1, 1]])
    np.testing.assert_array_equal(chosen_units((3, 2), [0], 2, effects), [[0, 0], [0, 2]])
    np.testing.assert_array_equal(chosen_units((3, 2), [1], None, None), [[1, 0], [1, 1]])
    assert first_units(5, 7, 10) == (2, 4)  # pairs 0-3 start at unit 0, 4-6 at 1, 7-8 at 2, 9 at 3
    with pytest.raises(ValueError, match=r"pairs \[5, 10\) are not cut at first units of 5 units"):
        first_units(5, 5, 10)


@pytest.mark.ray
def test_pair_sweep_writes_every_pair_per_split_and_resumes(local_ray, run_config):
    common = ("model.hidden_layer_sizes=[16,8]", "model.name=small", "model.max_iter=60", "ablation=pairs")
    with pytest.raises(Exception, match="dataset.val_fraction"):
        run_config(*common, "ablation.top_k=6")
    cfg = run_config(*common, "dataset.val_fraction=0.2", "ablation.shard_cost=2e6", "ablation.modes=[zero,mean]")
    summary = pipeline_run(cfg)
    rows = pd.read_parquet(f"{summary.results}/kind=pair")
    assert summary.rows_written == len(rows) == 2 * 2 * 276  # C(24, 2) per mode and split
    assert len(list(Path(summary.results).rglob("kind=pair/**/*.parquet"))) > 4  # several shards
    for (mode, split), group in rows.groupby(["mode", "split"], observed=True):
        keys = group[["layer_a", "unit_a", "layer_b", "unit_b"]].drop_duplicates()
        assert len(keys) == 276, (mode, split)
    assert set(summary.table["pairs"]) == {276}
    assert pipeline_run(cfg).rows_written == 0

    top = run_config(*common, "dataset.val_fraction=0.2", "ablation.top_k=6", "study=top")
    with pytest.raises(Exception, match="ablation=neurons"):
        pipeline_run(top)
    pipeline_run(run_config(*common[:-1], "ablation=neurons", "dataset.val_fraction=0.2", "study=top"))
    top_rows = pd.read_parquet(f"{pipeline_run(top).results}/kind=pair")
    assert len(top_rows) == 2 * 15


def pipeline_run(cfg):
    from sweep.run import pipeline

    return pipeline.run(cfg)


def test_torch_pairs_equal_numpy() -> None:
    torch = pytest.importorskip("torch")
    from sweep.kernels.backend import to_backend

    clf = trained_mlp("logistic")
    X, y = digits(300)
    net = Network.from_classifier(clf)
    net_t, X_t, y_t = to_backend(net, X, y, "torch", "cpu")
    assert isinstance(net_t.coefs[0], torch.Tensor)
    for mode, metrics in [("mean", "full"), ("zero", "accuracy")]:
        a = ablate_pairs(net, X, y, UNITS, mode=mode, reference=X, metrics=metrics)
        b = ablate_pairs(net_t, X_t, y_t, UNITS, mode=mode, reference=X, metrics=metrics)
        for column in ("layer_a", "unit_a", "layer_b", "unit_b", "accuracy", "broken", "fixed", "interaction"):
            np.testing.assert_array_equal(a[column], b[column], err_msg=column)
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-9)
