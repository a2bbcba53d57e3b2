"""analysis.impact and analysis.stats on tables with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.sections.harmful import most_harmful_table
from analysis.sections.impact import impact_table, largest_gain, with_categories
from analysis.load import runs_table
from analysis.stats import bh_qvalues, categorize, t_interval
from tests.test_analysis_fixtures import neuron_rows, run_entry


def test_categorize() -> None:
    assert list(categorize(np.array([-0.1, 0.0, 0.2]))) == ["helpful", "neutral", "harmful"]


def test_impact_counts_shares_and_largest_gain() -> None:
    df = pd.concat([
        neuron_rows([-0.02, -0.01, 0.0, 0.0, 0.01, 0.03], layer=0),
        neuron_rows([0.02, 0.02, -0.05], layer=1),
    ])
    runs = runs_table({"runs": [run_entry("digits", "nn", 0)]})
    table = impact_table(df, runs)
    layer0, layer1 = table.iloc[0], table.iloc[1]
    assert (layer0.n_units, layer0.n_helpful, layer0.n_neutral, layer0.n_harmful) == (6, 2, 2, 2)
    assert layer0.pct_harmful == pytest.approx(100 / 3)
    assert (layer0.max_effect, layer0.max_unit) == (pytest.approx(0.03), 5)
    assert (layer1.n_harmful, layer1.n_helpful, layer1.max_unit) == (2, 1, 0)  # tie: lowest unit
    # train accuracy from the manifest, the row's own split's accuracy from the sweep rows
    assert (layer0.train_accuracy, layer0.accuracy_base) == (0.99, 0.9)
    assert "test_accuracy" not in table.columns
    best = most_harmful_table(df)
    assert (best.layer[0], best.unit[0], best.tied[0], best.tied_units[0]) == (0, 5, 1, "")
    assert (layer1.max_effect, layer1.n_max) == (pytest.approx(0.02), 2)  # units 0 and 1 tie


def test_ties_are_named_as_ties() -> None:
    df = pd.concat([neuron_rows([0.01, -0.01, 0.01], layer=0), neuron_rows([0.01, 0.0], layer=1)])
    best = most_harmful_table(df)
    assert (best.layer[0], best.unit[0], best.tied[0]) == (0, 0, 3)
    assert best.tied_units[0] == "0:0, 0:2 and 1:0"
    assert largest_gain(df) == ("+1.00 pp: units 0 and 2 (a 2-way tie) of layer 0 of "
                                "digits/nn seed 0 (zero, test); unit 0 of layer 1 of "
                                "digits/nn seed 0 (zero, test)")
    assert largest_gain(neuron_rows([-0.01, 0.0])) == ""


def test_fdr_verdicts_against_hand_computed_bh() -> None:
    # BH on p = (.001, .01, .03, .5): q = (.004, .02, .04, .5) -> three survive at q = .05
    p = [0.001, 0.01, 0.03, 0.5]
    np.testing.assert_allclose(bh_qvalues(np.array(p)), [0.004, 0.02, 0.04, 0.5])
    df = neuron_rows([0.01, 0.02, -0.01, 0.01], p=p)
    rows = with_categories(df, q=0.05)
    assert list(rows["significant"]) == [True, True, True, False]
    # unit 2 is significant but helpful: only harmful ones count
    assert impact_table(df).n_harmful_fdr[0] == 2
    # the family is the whole run: the same p-values in a second layer double m
    two_layers = pd.concat([df, neuron_rows([0.01, 0.02, -0.01, 0.01], p=p, layer=1)])
    q = with_categories(two_layers)["q_value"].to_numpy()
    np.testing.assert_allclose(q[:4], bh_qvalues(np.array(p + p))[:4])


def test_t_interval_hand_computed() -> None:
    mean, low, high = t_interval(np.array([10.0, 20.0, 30.0]))
    half = 4.302652729911275 * 10 / np.sqrt(3)  # t(0.975, df=2) * s / sqrt(n)
    assert (mean, low, high) == pytest.approx((20.0, 20 - half, 20 + half))
    assert t_interval(np.array([5.0, 5.0])) == (5.0, 5.0, 5.0)
    with pytest.raises(ValueError):
        t_interval(np.array([1.0]))


def test_grouped_t_interval_equals_one_t_interval_per_group() -> None:
    from analysis.stats import grouped_t_interval, percentile_interval

    frame = pd.DataFrame({"g": [0, 0, 0, 1, 1, 2], "v": [10.0, 20.0, 30.0, 5.0, 5.0, 7.0]})
    out = grouped_t_interval(frame, ["g"], "v", bounds=(0.0, 40.0)).set_index("g")
    half = 4.302652729911275 * 10 / np.sqrt(3)
    assert 20 - half < 0 and tuple(out.loc[0, ["mean", "low", "high"]]) == (20.0, 0.0, 40.0)
    assert tuple(out.loc[1, ["mean", "low", "high", "n"]]) == (5.0, 5.0, 5.0, 2)  # constant
    assert tuple(out.loc[2, ["low", "high", "n"]]) == (7.0, 7.0, 1)  # one value: no interval
    mean, low, high = t_interval(np.array([10.0, 20.0, 30.0]), bounds=(0.0, 40.0))
    assert (out.loc[0, "low"], out.loc[0, "high"]) == pytest.approx((low, high))
    bands = percentile_interval(frame, ["g"], "v", level=0.5).set_index("g")
    assert tuple(bands.loc[0, ["low", "high"]]) == (15.0, 25.0)
