"""Noise-aware categories, reliability, variance components and verdicts (analysis.noise),
each recomputed here from rows, from sklearn's predictions or from scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import noise
from analysis.stats import bootstrap_weights
from sweep.kernels.oracle import naive_neuron_predictions
from tests.nets import digits, trained_mlp


@pytest.fixture(scope="module")
def sklearn_flips():
    """Per-image outcomes of every unit of layer 0 of a small digits net, from sklearn's
    ``predict`` on weight-edited copies: (ablation, row, fixed), the right matrix (units, rows)
    and the base correctness."""
    clf = trained_mlp("relu", (12, 7), max_iter=40)
    X, y = digits(300)
    base = clf.predict(X) == y
    right = naive_neuron_predictions(clf, X, 0, np.arange(12)) == y
    ablation, row = np.nonzero(right != base[None, :])
    return ablation, row, right[ablation, row], right, base


def test_noise_categories_follow_the_exact_mcnemar_test_and_bh():
    rows = pd.DataFrame({
        "run": [0] * 5 + [1] * 2,
        "fixed": [9, 0, 3, 0, 20, 1, 0],
        "broken": [0, 9, 2, 0, 1, 0, 1],
    })
    rows["effect"] = (rows["fixed"] - rows["broken"]) / 100
    out = noise.noise_categories(rows, ["run"], q=0.05)
    p = [stats.binomtest(int(b), int(b + f)).pvalue if b + f else 1.0 for f, b in zip(rows["fixed"], rows["broken"])]
    q = np.concatenate([stats.false_discovery_control(p[:5]), stats.false_discovery_control(p[5:])])
    np.testing.assert_allclose(out["q_value"], q)
    assert out["category"].tolist() == ["harmful", "helpful", "harmful", "neutral", "harmful", "harmful", "helpful"]
    assert out["noise_category"].tolist() == ["harmful", "helpful", "indistinguishable", "indistinguishable",
                                              "harmful", "indistinguishable", "indistinguishable"]
    by_images = noise.noise_categories(rows, ["run"], rule="images", min_images=2)
    assert by_images["noise_category"].tolist() == ["harmful", "helpful", "indistinguishable", "indistinguishable",
                                                    "harmful", "indistinguishable", "indistinguishable"]
    with pytest.raises(ValueError, match="unknown noise rule 'votes'"):
        noise.noise_categories(rows, ["run"], rule="votes")


def test_category_shares_put_both_categories_side_by_side():
    rows = pd.DataFrame({"layer": [0, 0, 0, 0, 1, 1], "fixed": [9, 1, 0, 0, 0, 1], "broken": [0, 0, 0, 9, 1, 1]})
    rows["effect"] = (rows["fixed"] - rows["broken"]) / 100
    shares = noise.category_shares(noise.noise_categories(rows, ["layer"]), ["layer"]).set_index("layer")
    assert shares.loc[0, ["pct_helpful", "pct_neutral", "pct_harmful"]].tolist() == [25.0, 25.0, 50.0]
    assert shares.loc[0, ["pct_helpful_noise", "pct_indistinguishable", "pct_harmful_noise"]].tolist() == [
        25.0, 50.0, 25.0]
    assert shares.loc[1, ["pct_helpful", "pct_neutral", "pct_harmful"]].tolist() == [50.0, 50.0, 0.0]
    assert shares.loc[1, "pct_indistinguishable"] == 100.0


def test_flip_counts_equal_sklearns_on_any_weighted_rows(sklearn_flips):
    ablation, row, fixed, right, base = sklearn_flips
    n = len(base)
    n_fixed, n_broken = noise.flip_counts(ablation, row, fixed, 12, np.ones(n))
    np.testing.assert_allclose(n_fixed, (right & ~base).sum(axis=1))
    np.testing.assert_allclose(n_broken, (~right & base).sum(axis=1))
    weights = bootstrap_weights(n, 3, seed=1)
    resampled_fixed, resampled_broken = noise.flip_counts(ablation, row, fixed, 12, weights)
    for w, f, b in zip(weights, resampled_fixed, resampled_broken):
        np.testing.assert_allclose(f, [(w * (r & ~base)).sum() for r in right])
        np.testing.assert_allclose(b, [(w * (~r & base)).sum() for r in right])


def test_split_half_reliability_is_spearman_between_the_halves(sklearn_flips):
    ablation, row, fixed, right, base = sklearn_flips
    n = len(base)
    table = noise.split_half_reliability(ablation, row, fixed, 12, n, n_splits=4, seed=3)
    halves = noise.random_halves(n, 4, seed=3).astype(bool)
    for half, result in zip(halves, table.itertuples()):
        a = right[:, half].mean(axis=1) - base[half].mean()
        b = right[:, ~half].mean(axis=1) - base[~half].mean()
        rho = stats.spearmanr(a, b).statistic
        assert result.spearman == pytest.approx(rho)
        assert result.spearman_brown == pytest.approx(2 * rho / (1 + rho))
        ha, hb = set(np.flatnonzero(a > 0)), set(np.flatnonzero(b > 0))
        assert result.harmful_jaccard == pytest.approx(len(ha & hb) / len(ha | hb) if ha | hb else 1.0)
    assert halves.sum(axis=1).tolist() == [n // 2] * 4


def test_bootstrap_categories_recount_each_resample(sklearn_flips):
    ablation, row, fixed, right, base = sklearn_flips
    n = len(base)
    groups = np.array([0] * 6 + [1] * 6)
    result = noise.bootstrap_categories(ablation, row, fixed, groups, n, n_boot=5, seed=2, rule="images",
                                        min_images=2)
    weights = bootstrap_weights(n, 5, seed=2)
    sign = np.array([np.sign([(w * (r.astype(int) - base)).sum() for r in right]) for w in weights])
    full = np.sign(right.sum(axis=1) - base.sum())
    np.testing.assert_allclose(result.units["category_survival"], (sign == full).mean(axis=0))
    net = np.array([[(w * (r.astype(int) - base)).sum() for r in right] for w in weights])
    noisy = np.where(np.abs(net) >= 2, np.sign(net), 0)
    full_noisy = np.where(np.abs(right.sum(axis=1) - base.sum()) >= 2, full, 0)
    np.testing.assert_allclose(result.units["noise_survival"], (noisy == full_noisy).mean(axis=0))
    first = result.shares[result.shares["group"] == 1].set_index("resample")
    np.testing.assert_allclose(first["pct_harmful"], 100 * (sign[:, 6:] > 0).mean(axis=1))
    np.testing.assert_allclose(first["pct_indistinguishable"], 100 * (noisy[:, 6:] == 0).mean(axis=1))


def test_variance_components_nest_test_sampling_split_and_seed():
    own = np.array([10.0, 14.0, 12.0, 16.0])  # var 6.667
    table = noise.variance_components(own, np.array([1.0, 2.0]), np.array([11.0, 13.0])).set_index("component")
    assert table.loc["total", "variance"] == pytest.approx(20 / 3)
    assert table.loc["test sampling", "variance"] == 1.5
    assert table.loc["seed", "variance"] == 2.0
    assert table.loc["split", "variance"] == pytest.approx(20 / 3 - 3.5)
    assert table.loc["seed", "share"] == pytest.approx(100 * 2.0 / (20 / 3))
    without = noise.variance_components(own, np.array([8.0])).set_index("component")
    assert without.loc["split and seed", "variance"] == 0.0  # clipped: sampling exceeds the total
    with pytest.raises(ValueError, match="at least two runs, got 1"):
        noise.variance_components(own[:1], np.array([1.0]))


def test_verdict_is_tost_and_a_beyond_margin_test_over_seeds():
    values = np.array([20.1, 19.4, 20.6, 19.9, 20.3, 20.0])
    # against the mean only (published_runs=inf), TOST is two one-sample t-tests
    out = noise.verdict(values, 20.5, 1.0, published_runs=np.inf)
    p_low = stats.ttest_1samp(values, 19.5, alternative="greater").pvalue
    p_high = stats.ttest_1samp(values, 21.5, alternative="less").pvalue
    assert out["p_equivalent"] == pytest.approx(max(p_low, p_high))
    assert out["verdict"] == "compatible"
    half = stats.t.ppf(0.95, 5) * stats.sem(values)
    assert (out["low"], out["high"]) == pytest.approx((values.mean() - half, values.mean() + half))
    far = noise.verdict(values, 25.0, 1.0, published_runs=np.inf)
    assert far["p_beyond"] == pytest.approx(stats.ttest_1samp(values, 24.0, alternative="less").pvalue)
    assert far["verdict"] == "incompatible"
    # a single published run: its own spread enters, the same data can no longer settle it
    one_run = noise.verdict(values, 21.6, 1.0)
    assert one_run["width"] == pytest.approx(2 * stats.t.ppf(0.95, 5) * values.std(ddof=1) * np.sqrt(1 + 1 / 6))
    assert one_run["verdict"] == "inconclusive"
    # Bonferroni: 20 comparisons make the interval wider
    assert noise.verdict(values, 20.5, 1.0, n_comparisons=20)["width"] > one_run["width"]
    assert noise.verdict(values[:4], 20.5, 1.0)["verdict"] == "too few seeds"
    assert noise.verdict(values[:1], 20.5, 1.0)["verdict"] == "too few seeds"


def test_bounded_verdict_intervals_stay_inside_the_bounds():
    shares = np.array([2.0, 0.0, 5.0, 1.0, 0.5])
    out = noise.verdict(shares, 3.0, 5.0, bounds=(0.0, 100.0))
    half = stats.t.ppf(0.95, 4) * shares.std(ddof=1) * np.sqrt(1.2)
    assert (out["low"], out["high"]) == pytest.approx((0.0, shares.mean() + half))  # clipped at 0
    assert out["band_low"] == 0.0
    accuracies = np.full(6, 100.0)  # train accuracy piled at 100 %: a constant sample
    top = noise.verdict(accuracies, 99.78, 0.3, bounds=(0.0, 100.0))
    assert top["high"] == pytest.approx(100.0) and top["verdict"] == "compatible"
    piled = noise.verdict(np.array([100.0, 100.0, 99.49, 100.0, 100.0]), 99.78, 0.3, bounds=(0.0, 100.0))
    assert piled["high"] == 100.0 and piled["low"] > 98.0


def test_verdict_table_corrects_across_the_judged_rows_and_marks_missing_runs():
    rng = np.random.default_rng(0)
    comparisons = pd.DataFrame({
        "quantity": ["a", "b", "c", "d"],
        "values": [rng.normal(10, 1, 10), rng.normal(10, 1, 6), rng.normal(10, 1, 2), np.array([])],
        "published": [10.0, 30.0, 10.0, 5.0], "margin": [2.0, 2.0, 2.0, 2.0],
        "bounds": [None, None, None, None],
    })
    table = noise.verdict_table(comparisons).set_index("quantity")
    assert table["n_comparisons"].unique().tolist() == [2]
    assert table.loc["a", "alpha"] == pytest.approx(0.025)
    assert table["verdict"].tolist() == ["compatible", "incompatible", "too few seeds", "not run here"]


def test_verdict_half_width_in_sds():
    assert noise.verdict_half_width(5) == pytest.approx(stats.t.ppf(0.95, 4) * np.sqrt(1.2))
    with pytest.raises(ValueError, match="at least two runs"):
        noise.verdict_half_width(1)
