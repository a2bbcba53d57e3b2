"""Tests of sweep.unitstats against hand-computed tables (all values in bits)."""

from __future__ import annotations

import numpy as np
import pytest

from sweep.kernels.network import Network
from sweep.kernels.unitstats import (
    QUANTIZERS,
    UNIT_COLUMNS,
    class_selectivity,
    entropy,
    joint_counts,
    kl_selectivity,
    layer_statistics,
    mutual_information,
    unit_statistics,
)

# joint[t, y]: rows are quantized levels, columns classes.
PERFECT = np.array([[2, 0], [0, 2]])
# H(T) = 1; H(T|Y) = 0; I = 1; KL(P(T|y=0) || P(T)) = 1 * log2(1 / 0.5) = 1.
MIXED = np.array([[3, 1, 0], [1, 1, 2]])
# n = 8, P(T) = (1/2, 1/2) -> H(T) = 1.  P(Y) = (1/2, 1/4, 1/4).
# H(T|y0) = H(3/4, 1/4) = 0.811278124459, H(T|y1) = 1, H(T|y2) = 0
# H(T|Y) = 0.5 * 0.811278124459 + 0.25 * 1 = 0.655639062229;  I = 1 - 0.655639 = 0.344360937771
# (the published sign error would give H(T) + H(T|Y) = 1.655639).
# KL(y0) = 3/4 log2(3/2) + 1/4 log2(1/2) = 0.438721875540 - 0.25 = 0.188721875540
# KL(y1) = 0; KL(y2) = 1 * log2(1 / (1/2)) = 1  ->  max = 1.
SILENT = np.array([[4, 4], [0, 0]])
# never fires: P(T) = (1, 0): H = -1 log2 1 - 0 log2 0 = 0; I = 0; KL = 0 (P(T|y) = P(T)).


def test_entropy_hand_tables() -> None:
    assert entropy(np.array([1, 1])) == pytest.approx(1.0)
    assert entropy(np.array([3, 1])) == pytest.approx(0.811278124459)
    assert entropy(np.array([1, 1, 1, 1])) == pytest.approx(2.0)
    assert entropy(np.array([8, 0])) == 0.0
    assert entropy(np.array([0, 0])) == 0.0
    np.testing.assert_allclose(entropy(np.array([[1, 1], [5, 0]])), [1.0, 0.0])


@pytest.mark.parametrize(
    ("joint", "h", "mi", "kl"),
    [(PERFECT, 1.0, 1.0, 1.0), (MIXED, 1.0, 0.344360937771, 1.0), (SILENT, 0.0, 0.0, 0.0)],
)
def test_information_hand_tables(joint: np.ndarray, h: float, mi: float, kl: float) -> None:
    assert entropy(joint.sum(axis=1)) == pytest.approx(h, abs=1e-12)
    assert mutual_information(joint) == pytest.approx(mi, abs=1e-12)
    assert kl_selectivity(joint) == pytest.approx(kl, abs=1e-12)


def test_information_is_batched_and_skips_empty_classes() -> None:
    padded = np.zeros((2, 3))
    padded[:, :2] = PERFECT  # an empty third class changes nothing
    stacked = np.stack([padded, np.array([[4, 4, 0], [0, 0, 0]])])
    np.testing.assert_allclose(mutual_information(stacked), [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(kl_selectivity(stacked), [1.0, 0.0], atol=1e-12)
    # [[3, 4], [1, 4]]: P(T) = (7/12, 5/12); P(T|y0) = (3/4, 1/4), P(T|y1) = (1/2, 1/2)
    # KL(y0) = 3/4 log2(9/7) + 1/4 log2(3/5) = 0.087686160997
    # KL(y1) = 1/2 log2(6/7) + 1/2 log2(6/5) = 0.020320992249  ->  max = 0.087686160997
    assert kl_selectivity(np.array([[3, 4], [1, 4]])) == pytest.approx(0.087686160997, abs=1e-12)
    assert kl_selectivity(np.array([[3, 0], [1, 0]])) == 0.0  # a single class: P(T|y) = P(T)


def test_class_selectivity() -> None:
    # (3 - mean(1, 1)) / (3 + 1) = 0.5; (4 - 0) / 4 = 1; all zero -> 0; (2 - 2) / 4 = 0
    np.testing.assert_allclose(
        class_selectivity(np.array([[3.0, 1, 1], [0, 4, 0], [0, 0, 0], [2, 2, 2]])),
        [0.5, 1.0, 0.0, 0.0],
    )


def test_quantizers_and_joint_counts() -> None:
    a = np.array([[0.0, 1.0], [2.0, 2.0], [0.0, 3.0], [5.0, 4.0]])
    np.testing.assert_array_equal(QUANTIZERS["binary"](a, 0.0, 2), [[0, 1], [1, 1], [0, 1], [1, 1]])
    np.testing.assert_array_equal(
        QUANTIZERS["quantile"](a, 0.0, 2), [[0, 0], [1, 0], [0, 1], [1, 1]]
    )
    np.testing.assert_array_equal(
        QUANTIZERS["uniform"](a, 0.0, 2), [[0, 0], [0, 0], [0, 1], [1, 1]]
    )
    counts = joint_counts(np.array([[0, 1], [1, 1], [0, 0]]), np.array([0, 1, 1]), 2)
    np.testing.assert_array_equal(counts, [[[1, 1], [0, 1]], [[0, 1], [1, 1]]])


def tiny_relu_net() -> tuple[Network, np.ndarray, np.ndarray]:
    """x in (0, 1, 2, 3), classes (0, 0, 1, 1); units relu(x), relu(-x), relu(x - 1)."""
    net = Network(
        coefs=(np.array([[1.0, -1.0, 1.0]]), np.ones((3, 1))),
        intercepts=(np.array([0.0, 0.0, -1.0]), np.zeros(1)),
        activation="relu",
        out_activation="logistic",
        classes=np.array([0, 1]),
    )
    return net, np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])


def test_unit_statistics_hand_computed() -> None:
    net, X, y = tiny_relu_net()
    stats = unit_statistics(net, X, y)
    assert tuple(stats) == tuple(UNIT_COLUMNS)
    # unit 0: outputs (0, 1, 2, 3): mean 1.5, rate 3/4; class means (0.5, 2.5) ->
    #   selectivity (2.5 - 0.5) / 3 = 0.666667; codes (0, 1, 1, 1), joint [[1, 0], [1, 2]]:
    #   H(T) = H(1/4, 3/4) = 0.811278124459; H(T|Y) = 1/2 * 1 + 1/2 * 0 -> I = 0.311278124459;
    #   KL(y1) = log2(1 / (3/4)) = 0.415037499279 > KL(y0) = 1/2 + 1/2 log2(2/3) = 0.207518749640
    # unit 1: never fires: everything 0.
    # unit 2: outputs (0, 0, 1, 2): mean 0.75, rate 1/2, class means (0, 1.5) -> selectivity 1;
    #   codes (0, 0, 1, 1) = the class: H = 1, I = 1, KL = log2(1 / (1/2)) = 1.
    expected = {
        "layer": [0, 0, 0],
        "unit": [0, 1, 2],
        "mean_activation": [1.5, 0.0, 0.75],
        "activation_rate": [0.75, 0.0, 0.5],
        "selectivity": [0.666666666667, 0.0, 1.0],
        "entropy": [0.811278124459, 0.0, 1.0],
        "mutual_information": [0.311278124459, 0.0, 1.0],
        "kl_selectivity": [0.415037499279, 0.0, 1.0],
    }
    for column, values in expected.items():
        np.testing.assert_allclose(stats[column], values, atol=1e-11, err_msg=column)
    assert stats["layer"].dtype == np.int64
    assert all(np.isfinite(v).all() for v in stats.values())


def test_unit_statistics_quantile_and_threshold() -> None:
    net, X, y = tiny_relu_net()
    stats = unit_statistics(net, X, y, quantizer="quantile", n_bins=4, threshold=1.5)
    # threshold 1.5: rates (2/4, 0, 1/4)
    np.testing.assert_allclose(stats["activation_rate"], [0.5, 0.0, 0.25])
    # unit 0 with 4 equal-frequency bins: every row its own level -> H = 2, I = H - H(T|Y) = 2 - 1
    assert stats["entropy"][0] == pytest.approx(2.0)
    assert stats["mutual_information"][0] == pytest.approx(1.0)
    assert stats["entropy"][1] == 0.0 and stats["kl_selectivity"][1] == 0.0
    with pytest.raises(ValueError, match="quantizer"):
        layer_statistics(np.zeros((2, 1)), np.array([0, 1]), 2, quantizer="nope")
