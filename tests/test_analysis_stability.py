"""analysis.stability and the matching statistics: known permutations, intervals, KS, bootstrap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.sections.impact import impact_table
from analysis.sections.stability import (
    bootstrap_harmful,
    seed_ks,
    seed_matching,
    share_intervals,
)
from analysis.stats import (
    bootstrap_weights,
    interval_half_width,
    jaccard,
    match_units,
    matched_agreement,
    pairwise_ks,
)
from sweep.kernels import ablate_neurons, neuron_flips
from sweep.data.datasets import load_dataset
from tests.test_analysis_fixtures import DIGITS_PARAMS, neuron_rows, train_network


def test_hungarian_matching_recovers_a_known_permutation() -> None:
    rng = np.random.default_rng(0)
    act0 = rng.normal(size=(200, 10))
    perm = rng.permutation(10)
    act1 = act0[:, perm]  # seed 1's unit j is seed 0's unit perm[j]
    match, corr = match_units(act0, act1)
    np.testing.assert_array_equal(perm[match], np.arange(10))
    np.testing.assert_allclose(corr, 1.0)
    effect0 = np.array([0.02, -0.01, 0.0, 0.01, -0.03, 0.0, 0.04, -0.02, 0.01, -0.05])
    agreement = matched_agreement(effect0, effect0[perm], match)
    assert agreement["spearman"] == pytest.approx(1.0)
    assert agreement["harmful_jaccard"] == 1.0 and agreement["harmful_a"] == 4


def test_jaccard_and_ks() -> None:
    assert jaccard({1, 2, 3}, {2, 3, 4}) == 0.5 and jaccard([], []) == 1.0
    ks = pairwise_ks({0: np.arange(10.0), 1: np.arange(10.0), 2: np.arange(100.0, 110.0)})
    assert list(zip(ks.a, ks.b)) == [(0, 1), (0, 2), (1, 2)]
    assert ks.ks_statistic.tolist() == [0.0, 1.0, 1.0] and ks.ks_p[0] == 1.0


def _three_seeds() -> pd.DataFrame:
    # harmful shares 10, 20, 30 % in layer 0; layer 1 only in seed 0 (no interval)
    effects = {0: [0.01] + [-0.01] * 9, 1: [0.01] * 2 + [-0.01] * 8, 2: [0.01] * 3 + [0.0] * 7}
    rows = [neuron_rows(e, seed=s) for s, e in effects.items()]
    return pd.concat(rows + [neuron_rows([0.01], seed=0, layer=1)], ignore_index=True)


def test_share_intervals_across_seeds() -> None:
    shares = share_intervals(impact_table(_three_seeds()))
    assert len(shares) == 1 and shares.n_seeds[0] == 3
    half = 4.302652729911275 * 10 / np.sqrt(3)
    assert shares.pct_harmful_mean[0] == pytest.approx(20.0)
    assert (shares.pct_harmful_low[0], shares.pct_harmful_high[0]) == pytest.approx((0.0, 20 + half))  # clipped at 0
    assert shares.pct_neutral_mean[0] == pytest.approx(70 / 3)


def test_seed_ks_pairs_per_layer() -> None:
    ks = seed_ks(_three_seeds())
    layer0 = ks[ks.layer == 0]
    assert list(zip(layer0.seed_a, layer0.seed_b)) == [(0, 1), (0, 2), (1, 2)]
    assert layer0.ks_statistic.iloc[0] == pytest.approx(0.1)
    assert ks[ks.layer == 1].empty


def test_seed_matching_on_permuted_copy() -> None:
    rng = np.random.default_rng(1)
    acts0 = [rng.normal(size=(50, 6)), rng.normal(size=(50, 4))]
    perms = [rng.permutation(6), rng.permutation(4)]
    acts1 = [a[:, p] for a, p in zip(acts0, perms)]
    effects0 = [np.array([0.02, -0.01, 0.0, 0.01, -0.03, 0.05]), np.array([0.01, -0.02, 0.03, 0.0])]
    df = pd.concat(
        [neuron_rows(e, seed=0, layer=l) for l, e in enumerate(effects0)]
        + [neuron_rows(e[p], seed=1, layer=l) for l, (e, p) in enumerate(zip(effects0, perms))]
    )
    matched = seed_matching(df, {0: acts0, 1: acts1})
    assert matched.layer.tolist() == [0, 1]
    np.testing.assert_allclose(matched.mean_correlation, 1.0)
    np.testing.assert_allclose(matched.spearman, 1.0)
    assert matched.harmful_jaccard.tolist() == [1.0, 1.0]


def test_bootstrap_harmful(tmp_path: Path) -> None:
    net = train_network(0, tmp_path / "m.npz")
    data = load_dataset(**DIGITS_PARAMS)
    X, y, units = data.X_test, data.y_test, np.arange(net.hidden_sizes[0])
    flips = neuron_flips(net, X, y, 0, units)
    result = bootstrap_harmful(flips, len(units), len(y), n_boot=8, seed=3)
    full = ablate_neurons(net, X, y, 0, units)["effect"]
    np.testing.assert_allclose(result.units["effect"], full, atol=1e-12)
    np.testing.assert_array_equal(result.units["harmful"], full > 0)
    # each resample equals a full sweep of the resampled rows (the slow way, no flips)
    rng, harmful = np.random.default_rng(3), []
    for _ in range(8):
        rows = rng.integers(0, len(y), size=len(y))
        harmful.append(ablate_neurons(net, X[rows], y[rows], 0, units, metrics="accuracy")["effect"] > 0)
    np.testing.assert_array_equal(result.units["harmful_frequency"], np.mean(harmful, axis=0))
    expected = [jaccard(np.flatnonzero(full > 0), np.flatnonzero(h)) for h in harmful]
    np.testing.assert_allclose(result.jaccard, expected)


def test_bootstrap_weights_are_resample_counts() -> None:
    weights = bootstrap_weights(5, 3, seed=1)
    rng = np.random.default_rng(1)
    for draw in weights:
        np.testing.assert_array_equal(draw, np.bincount(rng.integers(0, 5, size=5), minlength=5))
    assert weights.sum(axis=1).tolist() == [5, 5, 5]


def test_seed_matching_without_harmful_neurons_has_no_overlap() -> None:
    act = [np.random.default_rng(2).normal(size=(30, 3))]
    df = pd.concat([neuron_rows([-0.01, 0.0, -0.02], seed=0), neuron_rows([0.0, -0.01, 0.01], seed=1),
                    neuron_rows([0.0, -0.03, -0.01], seed=2)])
    matched = seed_matching(df, {0: act, 1: act, 2: act}).set_index(["seed_a", "seed_b"])
    assert np.isnan(matched.loc[(0, 2), "harmful_jaccard"])  # neither has a harmful neuron
    assert matched.loc[(0, 1), "harmful_jaccard"] == 0.0  # seed 1 has one, seed 0 none


def test_interval_half_width() -> None:
    assert interval_half_width(2) == pytest.approx(12.706204736174707 / np.sqrt(2))
    assert interval_half_width(3) == pytest.approx(4.302652729911275 / np.sqrt(3))
    with pytest.raises(ValueError, match="at least two values, got 1"):
        interval_half_width(1)
