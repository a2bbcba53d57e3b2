"""Tests of analysis.pairs_report: known answers on hand-made pair rows, the report section."""

from __future__ import annotations

from pathlib import Path

from tests.test_analysis_fixtures import built, report_of
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.sections import pairs as pr
from tests.test_analysis_cumulative import write_kind

SINGLE = {0: -0.01, 1: -0.02, 2: 0.0}
"""Single effects of the three units of hidden layer 0."""

PAIR_EFFECTS = {  # seed -> effect of removing units (0, 1), (0, 2), (1, 2) together
    0: [-0.05, 0.01, -0.02],  # interactions -0.02 (redundant), +0.02 (cancelling), 0
    1: [-0.05, 0.01, -0.03],  # the last one redundant too: -0.01
}
P = [0.001, 0.04, 0.5]
"""McNemar p of the three pairs; BH q: 0.003, 0.06, 0.5."""


def pair_rows() -> pd.DataFrame:
    rows = []
    for seed, effects in PAIR_EFFECTS.items():
        for split in ("val", "test"):
            for (a, b), effect, p in zip([(0, 1), (0, 2), (1, 2)], effects, P):
                rows.append({
                    "dataset": "mnist", "model": "nn_3", "seed": seed, "mode": "zero", "split": split,
                    "layer_a": 0, "unit_a": a, "layer_b": 0, "unit_b": b, "n_samples": 1000, "accuracy_base": 0.9,
                    "accuracy": 0.9 + effect, "effect": effect, "loss_base": np.nan, "loss": np.nan, "broken": 0,
                    "fixed": 0, "p_mcnemar": p, "class_effect": np.zeros(2), "effect_a": SINGLE[a],
                    "effect_b": SINGLE[b], "interaction": effect - SINGLE[a] - SINGLE[b],
                })
    return pd.DataFrame(rows)


def test_shares_per_seed_and_their_stability() -> None:
    shares = pr.pair_shares(pair_rows()).set_index("seed")
    assert (shares["pairs"] == 3).all()
    assert shares.loc[0, "redundant"] == pytest.approx(1 / 3) and shares.loc[1, "redundant"] == pytest.approx(2 / 3)
    np.testing.assert_allclose(shares["cancelling"], [1 / 3, 1 / 3])
    np.testing.assert_allclose(shares["significant"], [1 / 3, 1 / 3])  # only q = 0.003 < 0.05
    assert shares.loc[1, "mean_interaction"] == pytest.approx((-0.02 + 0.02 - 0.01) / 3)
    stable = pr.share_stability(shares.reset_index()).iloc[0]
    half = stats.t.ppf(0.975, 1) * np.std([1 / 3, 2 / 3], ddof=1) / np.sqrt(2)
    assert stable["redundant"] == pytest.approx(0.5) and 0.5 + half > 1  # a share: clipped to 1
    assert (stable["redundant_low"], stable["redundant_high"]) == (0.0, 1.0)
    assert stable["cancelling_low"] == stable["cancelling_high"] == pytest.approx(1 / 3) and stable["seeds"] == 2


def test_most_redundant_and_cancelling_pairs_and_the_matrix() -> None:
    redundant, cancelling = pr.extreme_pairs(pair_rows(), top=2)
    assert redundant[["seed", "unit_a", "unit_b"]].values.tolist() == [[0, 0, 1], [1, 0, 1]]
    np.testing.assert_allclose(redundant["interaction"], [-0.02, -0.02])
    np.testing.assert_allclose(redundant["q_value"], [0.003, 0.003])
    assert cancelling[["unit_a", "unit_b"]].values.tolist() == [[0, 2], [0, 2]]
    np.testing.assert_allclose(cancelling["gain"], [0.01, 0.01])
    rows = pair_rows()
    matrix, units = pr.interaction_matrix(rows[(rows["seed"] == 0) & (rows["split"] == "test")], 0)
    np.testing.assert_array_equal(units, [1, 0, 2])  # by single effect
    np.testing.assert_allclose(matrix, [[np.nan, -0.02, 0.0], [-0.02, np.nan, 0.02], [0.0, 0.02, np.nan]])


def test_report_section(tmp_path: Path) -> None:
    study = tmp_path / "results" / "s"
    write_kind(study, "pair", pair_rows(), {})
    sections = built(pr.build, tmp_path / "results", "s", tmp_path / "report")
    assert [s.title for s in sections] == ["Unit pairs: interactions"]
    text = sections[0].paragraphs[0]
    assert text.startswith("mnist/nn_3 (zero): of 3 unit pairs per seed, 50.0 % are redundant")
    assert "33.3 % cancelling" in text and "33.3 % change test accuracy significantly" in text
    assert ("most redundant pair, (0, 0) and (0, 1) of seed 0, changes accuracy by -5.00 pp "
            "removed together, against -1.00 pp and -2.00 pp alone") in text
    assert "(0, 0) and (0, 2) of seed 0, gains +1.00 pp over the better single removal" in text
    assert "not stable" in text
    assert all(f.path.exists() for f in sections[0].figures) and len(sections[0].figures) == 1
    assert set(sections[0].tables) == {"pairs_shares", "pairs_stability", "pairs_redundant", "pairs_cancelling"}
    index = report_of(tmp_path / "results", "s", tmp_path / "report", pr.build)
    assert "Unit pairs: interactions" in index.read_text()
