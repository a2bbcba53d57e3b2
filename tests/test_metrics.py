"""Metric columns: McNemar p-values against scipy, dense vs change-based metrics, literals."""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest

from sweep.kernels.metrics import (
    METRIC_COLUMNS,
    ablation_metrics,
    mcnemar_p,
    metrics_from_changes,
    sample_log_loss,
)


def test_mcnemar_matches_binomtest() -> None:
    pairs = [(b, c) for b in range(0, 40, 3) for c in range(0, 40, 4)] + [(500, 430), (7, 0)]
    broken = np.array([b for b, _ in pairs])
    fixed = np.array([c for _, c in pairs])
    expected = [binomtest(b, b + c).pvalue if b + c else 1.0 for b, c in pairs]
    np.testing.assert_allclose(mcnemar_p(broken, fixed), expected, rtol=1e-10)


def test_mcnemar_literals() -> None:
    # (3, 0): 2 * 0.5**3 = 0.25; (1, 1): capped at 1; (0, 0): no discordant rows -> 1
    np.testing.assert_allclose(mcnemar_p(np.array([3, 1, 0]), np.array([0, 1, 0])), [0.25, 1, 1])


def test_sample_log_loss_clips_like_sklearn() -> None:
    prob = np.array([[0.25, 0.75], [1.0, 0.0]])
    loss = sample_log_loss(prob, np.array([1, 1]))
    np.testing.assert_allclose(loss, [-np.log(0.75), -np.log(np.finfo(np.float64).eps)])


def test_dense_metrics_by_hand() -> None:
    # four rows, classes 0,0,1,1; base predicts 0,1,1,1 -> rows 0, 2, 3 right (3/4)
    # ablation A predicts 1,1,1,0: row 0 broken, row 3 broken -> 1/4, broken 2, fixed 0
    # ablation B predicts 0,0,1,1: row 1 fixed -> 4/4, broken 0, fixed 1
    y = np.array([0, 0, 1, 1])
    base = np.array([0, 1, 1, 1])
    pred = np.array([[1, 1, 1, 0], [0, 0, 1, 1]])
    base_loss = np.array([0.1, 2.0, 0.2, 0.3])
    loss = np.array([[1.0, 2.0, 0.2, 3.0], [0.1, 0.5, 0.2, 0.3]])
    out = ablation_metrics(y, base, base_loss, pred, loss, 2)
    assert list(out) == list(METRIC_COLUMNS)
    np.testing.assert_array_equal(out["n_samples"], [4, 4])
    np.testing.assert_allclose(out["accuracy_base"], [0.75, 0.75])
    np.testing.assert_allclose(out["accuracy"], [0.25, 1.0])
    np.testing.assert_allclose(out["effect"], [-0.5, 0.25])
    np.testing.assert_allclose(out["loss_base"], [0.65, 0.65])
    np.testing.assert_allclose(out["loss"], [1.55, 0.275])
    np.testing.assert_array_equal(out["broken"], [2, 0])
    np.testing.assert_array_equal(out["fixed"], [0, 1])
    np.testing.assert_allclose(out["p_mcnemar"], [0.5, 1.0])
    np.testing.assert_allclose(out["class_effect"], [[-0.5, -0.5], [0.5, 0.0]])


def test_change_based_equals_dense() -> None:
    rng = np.random.default_rng(0)
    n, k, C = 200, 15, 4
    y = rng.integers(C, size=n)
    base = np.where(rng.random(n) < 0.7, y, rng.integers(C, size=n))
    pred = np.where(rng.random((k, n)) < 0.1, rng.integers(C, size=(k, n)), base)
    base_loss, loss = rng.random(n), rng.random((k, n))
    dense = ablation_metrics(y, base, base_loss, pred, loss, C)
    was, now = base == y, pred == y
    change = now.astype(int) - was
    class_change = np.stack([np.bincount(y, weights=c, minlength=C) for c in change])
    sparse = metrics_from_changes(
        y, base, base_loss, (was & ~now).sum(1), (~was & now).sum(1), class_change,
        (loss - base_loss).sum(1), C,
    )
    assert np.any(dense["broken"] > 0) and np.any(dense["fixed"] > 0)
    for column in METRIC_COLUMNS:
        np.testing.assert_allclose(sparse[column], dense[column], rtol=1e-12, err_msg=column)
