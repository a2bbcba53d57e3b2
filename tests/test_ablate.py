"""The fast ablation kernels against the naive sklearn oracle, a hand-worked network,
near-ties, chunking and synapse selection."""

from __future__ import annotations

import numpy as np
import pytest

from sweep.kernels import (
    METRIC_SETS,
    NEURON_MODES,
    TIE_TOLERANCE,
    ablate_neurons,
    ablate_synapses,
    neuron_flips,
    prepare,
    select_synapses,
)
from sweep.kernels.metrics import METRIC_COLUMNS
from sweep.kernels.network import Network, propagate
from sweep.kernels.oracle import (
    naive_neuron_metrics,
    naive_neuron_predictions,
    naive_synapse_metrics,
)
from tests.nets import ACTIVATIONS, digits, trained_mlp

EXACT = ("n_samples", "accuracy_base", "accuracy", "effect", "broken", "fixed")


def assert_same_metrics(fast: dict, naive: dict, metrics: str = "full") -> None:
    """Counts and accuracies identical; losses and p-values to 1e-12; with the ``accuracy``
    metric set, the loss is NaN."""
    for column in EXACT:
        np.testing.assert_array_equal(fast[column], naive[column], err_msg=column)
    close = ("loss_base", "loss", "p_mcnemar", "class_effect")
    for column in close if metrics == "full" else ("p_mcnemar", "class_effect"):
        np.testing.assert_allclose(fast[column], naive[column], rtol=0, atol=1e-12, err_msg=column)
    if metrics == "accuracy":
        np.testing.assert_allclose(fast["loss_base"], naive["loss_base"], rtol=0, atol=1e-12)
        assert np.all(np.isnan(fast["loss"]))


CASES = [(a, False) for a in ACTIVATIONS] + [(a, True) for a in ACTIVATIONS]


@pytest.mark.parametrize("activation,binary", CASES)
@pytest.mark.parametrize("mode", NEURON_MODES)
def test_every_neuron_matches_oracle(activation: str, binary: bool, mode: str) -> None:
    clf = trained_mlp(activation, binary=binary)
    X, y = digits(300, binary)
    net = Network.from_classifier(clf)
    reference = X[::2]
    base = prepare(net, X, y)
    for layer, width in enumerate(net.hidden_sizes):
        units = np.arange(width)
        naive = naive_neuron_metrics(clf, X, y, layer, units, mode, reference)
        for metrics in METRIC_SETS:
            fast = ablate_neurons(
                net, X, y, layer, units, mode, reference, metrics=metrics, base=base
            )
            assert set(METRIC_COLUMNS) <= set(fast)
            np.testing.assert_array_equal(fast["unit"], units)
            assert_same_metrics(fast, naive, metrics)


@pytest.mark.parametrize("activation,binary", CASES)
def test_every_synapse_matches_oracle(activation: str, binary: bool) -> None:
    clf = trained_mlp(activation, binary=binary)
    X, y = digits(300, binary)
    net = Network.from_classifier(clf)
    base = prepare(net, X, y)
    moved = flipped = 0
    for layer, sources, targets in select_synapses(net):
        naive = naive_synapse_metrics(clf, X, y, layer, sources, targets)
        for metrics in METRIC_SETS:
            fast = ablate_synapses(net, X, y, layer, sources, targets, metrics=metrics, base=base)
            assert_same_metrics(fast, naive, metrics)
        moved += int(np.sum(naive["loss"] != naive["loss_base"]))
        flipped += int(np.sum(naive["broken"] + naive["fixed"] > 0))
    # the comparison is not between unchanged tables (binary digits 0/1 rarely flip)
    assert moved > 100 and flipped >= (0 if binary else 10)


def test_accuracy_set_on_shuffled_synapses_and_negative_inputs() -> None:
    # sources out of order, and inputs of both signs (both halves of the synapse screen)
    clf = trained_mlp("tanh")
    X, y = digits(300)
    X = X - 0.3
    net = Network.from_classifier(clf)
    rng = np.random.default_rng(0)
    flat = rng.permutation(64 * 12)
    sources, targets = flat // 12, flat % 12
    naive = naive_synapse_metrics(clf, X, y, 0, sources, targets)
    fast = ablate_synapses(net, X, y, 0, sources, targets, metrics="accuracy")
    np.testing.assert_array_equal(fast["source"], sources)
    assert_same_metrics(fast, naive, "accuracy")
    assert np.sum(naive["broken"] + naive["fixed"] > 0) > 10


@pytest.mark.parametrize("binary", [False, True])
def test_prepare_matches_sklearn(binary: bool) -> None:
    clf = trained_mlp("tanh", binary=binary)
    X, y = digits(300, binary)
    base = prepare(Network.from_classifier(clf), X, y)
    np.testing.assert_array_equal(clf.classes_[base.pred], clf.predict(X))
    np.testing.assert_allclose(base.probabilities, clf.predict_proba(X), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(base.class_counts, np.bincount(np.searchsorted(clf.classes_, y)))
    top2 = np.sort(base.probabilities, axis=1)[:, -2:]
    logit_gap = np.log(top2[:, 1]) - np.log(top2[:, 0])  # softmax: log-ratio = logit gap
    np.testing.assert_allclose(base.margin, logit_gap, rtol=1e-6, atol=1e-9)
    assert [a.shape[1] for a in base.activations] == [12, 7] and base.logits.shape[0] == 300


def test_unknown_metric_set() -> None:
    net = Network.from_classifier(trained_mlp("relu"))
    X, y = digits(300)
    with pytest.raises(ValueError):
        ablate_neurons(net, X, y, 0, np.arange(2), metrics="loss")


def test_small_chunks_give_the_same_columns() -> None:
    clf = trained_mlp("tanh")
    X, y = digits(300)
    net = Network.from_classifier(clf)
    units = np.arange(12)
    big = ablate_neurons(net, X, y, 0, units, "mean", X)
    small = ablate_neurons(net, X, y, 0, units, "mean", X, chunk_elements=50)
    for column in METRIC_COLUMNS:
        np.testing.assert_allclose(small[column], big[column], rtol=0, atol=1e-12)
    sources, targets = np.arange(64), np.full(64, 3)
    big = ablate_synapses(net, X, y, 0, sources, targets)
    small = ablate_synapses(net, X, y, 0, sources, targets, chunk_elements=10)
    for column in METRIC_COLUMNS:
        np.testing.assert_allclose(small[column], big[column], rtol=0, atol=1e-12)


# ------------------------------------------------------------------ hand-worked network
#
# 3 inputs -> 2 ReLU units -> 3 softmax classes.
#   h_a = relu(x0), h_b = relu(x1); logits = (h_a, h_b, 0.5).
# rows (x, label): base logits -> prediction
#   s1 (2, 0,   0) y=0: (2, 0,   .5) -> 0 right
#   s2 (0, 2,   0) y=1: (0, 2,   .5) -> 1 right
#   s3 (1, 1.5, 0) y=0: (1, 1.5, .5) -> 1 wrong
#   s4 (0, 0,   0) y=2: (0, 0,   .5) -> 2 right
#   s5 (1, 0.2, 0) y=2: (1, .2,  .5) -> 0 wrong
#   s6 (0, 3,   0) y=1: (0, 3,   .5) -> 1 right          base accuracy 4/6
# zero/remove unit a (h_a -> 0): s1 -> 2 (broken), s3 -> 1 (still wrong), s5 -> 2 (fixed)
#   accuracy 4/6, broken 1, fixed 1, p = 1; class 0: 1/2 -> 0/2, class 2: 1/2 -> 2/2
# zero/remove unit b (h_b -> 0): s2 -> 2 (broken), s3 -> 0 (fixed), s6 -> 2 (broken)
#   accuracy 3/6, broken 2, fixed 1, p = 2 * P(Bin(3, .5) <= 1) = 1
#   class 0: 1/2 -> 2/2, class 1: 2/2 -> 0/2
# mean unit a (mean of h_a over the six rows = 4/6): s4 (2/3, 0, .5) -> 0 (broken);
#   s1, s2, s6 stay right, s3 and s5 stay wrong: accuracy 3/6, broken 1, fixed 0
HAND_X = np.array(
    [[2, 0, 0], [0, 2, 0], [1, 1.5, 0], [0, 0, 0], [1, 0.2, 0], [0, 3, 0]], dtype=np.float64
)
HAND_Y = np.array([0, 1, 0, 2, 2, 1])
HAND_NET = Network(
    coefs=(np.array([[1.0, 0], [0, 1], [0, 0]]), np.array([[1.0, 0, 0], [0, 1, 0]])),
    intercepts=(np.zeros(2), np.array([0.0, 0, 0.5])),
    activation="relu",
    out_activation="softmax",
    classes=np.array([0, 1, 2]),
)


def _hand_loss(logits: list[tuple[float, float, float]]) -> float:
    """Mean cross-entropy of the six rows from their logits (worked by formula)."""
    rows = np.array(logits)
    return float(np.mean(np.log(np.exp(rows).sum(axis=1)) - rows[np.arange(6), HAND_Y]))


@pytest.mark.parametrize("mode", ["zero", "remove"])
def test_hand_worked_network(mode: str) -> None:
    out = ablate_neurons(HAND_NET, HAND_X, HAND_Y, 0, np.array([0, 1]), mode)
    np.testing.assert_allclose(out["accuracy_base"], [4 / 6, 4 / 6])
    np.testing.assert_allclose(out["accuracy"], [4 / 6, 3 / 6])
    np.testing.assert_allclose(out["effect"], [0.0, -1 / 6], atol=1e-15)
    np.testing.assert_array_equal(out["broken"], [1, 2])
    np.testing.assert_array_equal(out["fixed"], [1, 1])
    np.testing.assert_allclose(out["p_mcnemar"], [1.0, 1.0])
    np.testing.assert_allclose(out["class_effect"], [[-0.5, 0, 0.5], [0.5, -1, 0]])
    base = [(2, 0, .5), (0, 2, .5), (1, 1.5, .5), (0, 0, .5), (1, .2, .5), (0, 3, .5)]
    no_a = [(0, 0, .5), (0, 2, .5), (0, 1.5, .5), (0, 0, .5), (0, .2, .5), (0, 3, .5)]
    no_b = [(2, 0, .5), (0, 0, .5), (1, 0, .5), (0, 0, .5), (1, 0, .5), (0, 0, .5)]
    np.testing.assert_allclose(out["loss_base"], _hand_loss(base), rtol=1e-14)
    np.testing.assert_allclose(out["loss"], [_hand_loss(no_a), _hand_loss(no_b)], rtol=1e-14)


def test_hand_worked_network_mean_mode() -> None:
    out = ablate_neurons(HAND_NET, HAND_X, HAND_Y, 0, np.array([0]), "mean", HAND_X)
    np.testing.assert_allclose(out["accuracy"], [3 / 6])
    np.testing.assert_array_equal(out["broken"], [1])
    np.testing.assert_array_equal(out["fixed"], [0])
    np.testing.assert_allclose(out["p_mcnemar"], [1.0])  # 2 * P(Bin(1, .5) <= 0)
    np.testing.assert_allclose(out["class_effect"], [[0, 0, -0.5]])


def test_hand_worked_synapses() -> None:
    # synapse x1 -> h_b (matrix 0, source 1, target 1) acts like removing unit b: every
    # h_b comes from x1 alone. Synapse h_a -> logit 0 (matrix 1, source 0, target 0)
    # acts like removing unit a. The bias-free x2 -> h_a synapse changes nothing.
    out = ablate_synapses(HAND_NET, HAND_X, HAND_Y, 0, np.array([1, 2]), np.array([1, 0]))
    np.testing.assert_allclose(out["accuracy"], [3 / 6, 4 / 6])
    np.testing.assert_array_equal(out["broken"], [2, 0])
    np.testing.assert_array_equal(out["fixed"], [1, 0])
    out = ablate_synapses(HAND_NET, HAND_X, HAND_Y, 1, np.array([0]), np.array([0]))
    np.testing.assert_allclose(out["accuracy"], [4 / 6])
    np.testing.assert_array_equal(out["broken"], [1])
    np.testing.assert_array_equal(out["fixed"], [1])


# ------------------------------------------------------------------ near-ties


def _tied_network(seed: int) -> tuple[Network, np.ndarray, np.ndarray, int]:
    """A random tanh net whose output bias makes logits 0 and 1 of row 0 (almost) equal
    once unit ``j`` of the last hidden layer is removed; returns (net, X, y, j)."""
    rng = np.random.default_rng(seed)
    coefs = (rng.normal(size=(5, 6)), rng.normal(size=(6, 4)), rng.normal(size=(4, 3)))
    intercepts = (rng.normal(size=6), rng.normal(size=4), rng.normal(size=3))
    net = Network(coefs, intercepts, "tanh", "softmax", np.array([0, 1, 2]))
    X = rng.normal(size=(8, 5))
    j = int(rng.integers(4))
    h = np.tanh(np.tanh(X @ coefs[0] + intercepts[0]) @ coefs[1] + intercepts[1])
    h[:, j] = 0.0
    logits = h @ coefs[2] + intercepts[2]
    shift = logits[0, 0] - logits[0, 1]
    b = intercepts[2].copy()
    b[1] += shift
    b[2] = min(b[2], b[1] - logits[0, 2] + logits[0, 1] - 5.0)  # class 2 far below
    net = net.with_weights(coefs, (intercepts[0], intercepts[1], b))
    y = np.zeros(8, dtype=np.int64)
    return net, X, y, j


@pytest.mark.parametrize("seed", range(12))
def test_near_tie_after_ablation_matches_sklearn(seed: int) -> None:
    from sklearn.neural_network import MLPClassifier

    net, X, y, j = _tied_network(seed)
    h = np.tanh(np.tanh(X @ net.coefs[0] + net.intercepts[0]) @ net.coefs[1] + net.intercepts[1])
    h[:, j] = 0.0
    logits = propagate(net, h, 1)
    gap = abs(logits[0, 0] - logits[0, 1])
    assert gap < TIE_TOLERANCE[np.dtype(np.float64)]  # the row really is a near-tie
    clf = MLPClassifier((6, 4), activation="tanh")
    clf.coefs_, clf.intercepts_ = [w.copy() for w in net.coefs], [b.copy() for b in net.intercepts]
    clf.n_layers_, clf.n_outputs_, clf.out_activation_ = 4, 3, "softmax"
    clf.classes_ = net.classes
    from sklearn.preprocessing import LabelBinarizer

    clf._label_binarizer = LabelBinarizer().fit(net.classes)
    fast = ablate_neurons(net, X, y, 1, np.arange(4), "remove")
    naive = naive_neuron_metrics(clf, X, y, 1, np.arange(4), "remove")
    assert_same_metrics(fast, naive)


# ------------------------------------------------------------------ selection


def test_select_all_synapses_counts_and_order() -> None:
    net = Network.from_classifier(trained_mlp("relu"))
    chosen = select_synapses(net)
    assert [m for m, _, _ in chosen] == [0, 1, 2]
    assert sum(len(s) for _, s, _ in chosen) == 64 * 12 + 12 * 7 + 7 * 10
    _, sources, targets = chosen[1]
    np.testing.assert_array_equal(sources[:8], [0, 0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(targets[:8], [0, 1, 2, 3, 4, 5, 6, 0])
    assert [m for m, _, _ in select_synapses(net, layers=[2, 0])] == [0, 2]


def test_select_synapses_of_neurons() -> None:
    net = Network.from_classifier(trained_mlp("relu"))
    incoming = select_synapses(net, neurons=[(1, 3), (1, 0)])
    assert [(m, len(s)) for m, s, _ in incoming] == [(1, 24)]
    np.testing.assert_array_equal(incoming[0][1][:4], [0, 0, 1, 1])
    np.testing.assert_array_equal(incoming[0][2][:4], [0, 3, 0, 3])
    outgoing = select_synapses(net, neurons=[(0, 5)], direction="outgoing")
    assert [(m, len(s)) for m, s, _ in outgoing] == [(1, 7)]
    np.testing.assert_array_equal(outgoing[0][1], np.full(7, 5))
    both = select_synapses(net, neurons=[(0, 5), (1, 2)], direction="both")
    # (0,5) in: 64 of matrix 0; (0,5) out: 7 of matrix 1; (1,2) in: 12 of matrix 1, one of
    # which, 5 -> 2, is also (0,5)'s outgoing; (1,2) out: 10 of matrix 2.
    assert [(m, len(s)) for m, s, _ in both] == [(0, 64), (1, 18), (2, 10)]
    assert select_synapses(net, layers=[2], neurons=[(0, 5)]) == []
    with pytest.raises(ValueError):
        select_synapses(net, neurons=[(2, 0)])
    with pytest.raises(ValueError):
        select_synapses(net, neurons=[(0, 0)], direction="sideways")


# ------------------------------------------------------------------ per-image outcomes


def _naive_flips(clf, X, y, layer, units, mode, reference) -> set[tuple[int, int, bool]]:
    """(ablation, row, fixed) of every row whose correctness sklearn's predict changes."""
    right = clf.predict(X) == y
    ablated = naive_neuron_predictions(clf, X, layer, units, mode, reference) == y
    a, r = np.nonzero(ablated != right)
    return set(zip(a.tolist(), r.tolist(), ablated[a, r].tolist()))


@pytest.mark.parametrize("activation,binary", CASES)
@pytest.mark.parametrize("mode", NEURON_MODES)
def test_neuron_flips_are_the_oracles_changed_rows(activation: str, binary: bool, mode: str) -> None:
    clf = trained_mlp(activation, binary=binary)
    X, y = digits(300, binary)
    net = Network.from_classifier(clf)
    reference = X[::2]
    for layer, width in enumerate(net.hidden_sizes):
        units = np.arange(width)
        flips = neuron_flips(net, X, y, layer, units, mode, reference)
        got = set(zip(flips.ablation.tolist(), flips.row.tolist(), flips.fixed.tolist()))
        assert got == _naive_flips(clf, X, y, layer, units, mode, reference)
        counts = ablate_neurons(net, X, y, layer, units, mode, reference)
        fixed = np.bincount(flips.ablation[flips.fixed], minlength=width)
        broken = np.bincount(flips.ablation[~flips.fixed], minlength=width)
        np.testing.assert_array_equal(fixed, counts["fixed"])
        np.testing.assert_array_equal(broken, counts["broken"])


@pytest.mark.parametrize("seed", range(12))
def test_neuron_flips_settle_near_ties_as_sklearn(seed: int) -> None:
    net, X, y, j = _tied_network(seed)
    flips = neuron_flips(net, X, y, 1, np.arange(4), "remove")
    counts = ablate_neurons(net, X, y, 1, np.arange(4), "remove")
    assert len(flips.row) == int(counts["fixed"].sum() + counts["broken"].sum())
    signed = np.bincount(flips.ablation, weights=flips.signed(), minlength=4)
    np.testing.assert_array_equal(signed, counts["fixed"] - counts["broken"])
