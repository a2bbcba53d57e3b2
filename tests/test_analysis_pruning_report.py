"""Tests of analysis.pruning_report: known answers on a hand-made study, the section."""

from __future__ import annotations

from pathlib import Path

from tests.test_analysis_fixtures import built, report_of
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.sections import pruning as pr
from tests.test_analysis_cumulative import write_kind

TEST = {  # (method, seed, repetition) -> test effect at steps 0..4 (4 units: fraction = step / 4)
    ("greedy", 0, 0): [0, 0, -0.002, -0.004, -0.2],
    ("greedy", 1, 0): [0, 0.001, 0.004, -0.006, -0.3],
    **{("random", s, 0): [0, -0.01, -0.02, -0.1, -0.3] for s in (0, 1)},
    **{("random", s, 1): [0, -0.002, -0.02, -0.1, -0.3] for s in (0, 1)},
}
VAL = {("greedy", 0, 0): [0, 0.003, 0.003, -0.01, -0.2], ("greedy", 1, 0): [0, 0.002, 0.004, 0, -0.3]}


def study_rows() -> pd.DataFrame:
    rows = []
    for (method, seed, rep), test in TEST.items():
        val = VAL.get((method, seed, rep), test)
        for split, effects in (("val", val), ("test", test)):
            for step, effect in enumerate(effects):
                rows.append({
                    "dataset": "mnist", "model": "nn_4", "seed": seed, "mode": "zero", "method": method,
                    "scope": "network", "repetition": rep, "step": step, "fraction": step / 4, "split": split,
                    "layer": -1 if step == 0 else 0, "unit": step - 1, "n_samples": 1000, "accuracy_base": 0.9,
                    "accuracy": 0.9 + effect, "effect": effect, "loss_base": 0.3, "loss": 0.3, "broken": 0,
                    "fixed": 0, "p_mcnemar": 0.01 if effect > 0.003 else 1.0, "class_effect": np.zeros(2),
                })
    return pd.DataFrame(rows)


def test_removable_fractions_across_seeds() -> None:
    table = pr.removable_table(study_rows()).set_index("method")
    # greedy: 0.1 pp held to steps 1 and 2 (0.25, 0.5); 0.5 pp to steps 3 and 2 (0.75, 0.5)
    assert table.loc["greedy", "fraction_0.1pp"] == 0.375 and table.loc["greedy", "fraction_0.5pp"] == 0.625
    half = stats.t.ppf(0.975, 1) * np.std([0.25, 0.5], ddof=1) / np.sqrt(2)
    assert 0.375 - half < 0 and table.loc["greedy", "fraction_0.1pp_low"] == 0.0  # clipped to 0-1
    assert table.loc["greedy", "fraction_0.1pp_high"] == pytest.approx(min(0.375 + half, 1.0))
    assert table.loc["greedy", "fraction_0.1pp_per_seed"] == "25.0, 50.0"  # every seed's value
    # random: -1 pp exactly is within 1 pp; -2 pp at step 2 is not
    assert table.loc["random", "fraction_0.1pp"] == 0 and table.loc["random", "fraction_1pp"] == 0.25
    assert (table["seeds"] == 2).all()


def test_curves_interval_across_seeds_and_random_band() -> None:
    curves = pr.pruning_curves(study_rows()).set_index(["method", "step"])
    greedy = curves.loc[("greedy", 1)]
    half = stats.t.ppf(0.975, 1) * np.std([0, 0.001], ddof=1) / np.sqrt(2)
    assert greedy["mean"] == pytest.approx(0.0005) and greedy["high"] == pytest.approx(0.0005 + half)
    assert np.isnan(greedy["band_low"])
    random = curves.loc[("random", 1)]
    assert random["mean"] == pytest.approx(-0.006)
    assert random["band_low"] == pytest.approx(-0.01) and random["band_high"] == pytest.approx(-0.002)
    assert random["low"] == random["high"] == pytest.approx(-0.006)  # both seeds average to the same


def test_steps_chosen_on_val_and_mcnemar_gains() -> None:
    chosen = pr.val_chosen_steps(study_rows())
    greedy = chosen[chosen["method"] == "greedy"].set_index("seed")
    assert greedy.loc[0, "step"] == 2 and greedy.loc[0, "test_effect"] == -0.002  # val tie: more removed
    assert greedy.loc[1, "step"] == 2 and greedy.loc[1, "p_mcnemar"] == 0.01
    assert (chosen[chosen["method"] == "random"]["step"] == 0).all()
    gains = pr.gain_table(chosen).set_index("method")
    assert gains.loc["greedy", "raised"] == 1 and gains.loc["random", "raised"] == 0
    assert gains.loc["greedy", "mean_test_effect"] == pytest.approx(0.001)


def test_report_section(tmp_path: Path) -> None:
    df = study_rows()
    write_kind(tmp_path / "results" / "s", "pruning", df.drop(columns="mode"), {"mode": "zero"})
    out = tmp_path / "report"
    [section] = built(pr.build, tmp_path / "results", "s", out)
    assert section.title == "Pruning chosen on val, measured on test"
    assert "greedy 62.5 %" in section.paragraphs[0] and "2 seeds" in section.paragraphs[0]
    assert "Most removed within 0.1 pp, greedy (37.5 %); within 0.5 pp, greedy (62.5 %)" in section.paragraphs[0]
    assert "1 of 6 paths raise it significantly (exact McNemar p < 0.05: greedy), none lowers" in section.paragraphs[1]
    assert "greedy +0.10 pp at 50.0 % removed" in section.paragraphs[1]
    assert "1 of 6 val-chosen pruned networks are significantly more accurate on test" in section.paragraphs[2]
    assert all(f.path.exists() and f.path.stat().st_size > 5000 for f in section.figures)
    assert section.summary == section.paragraphs[-1:]
    removable = section.tables["pruning_removable"].frame
    assert list(removable.columns[-4:]) == ["within_1pp_pct", "within_1pp_low_pct",
                                            "within_1pp_high_pct", "within_1pp_per_seed"]
    assert removable["within_0.5pp_pct"].max() == 62.5
    assert "Pruning chosen on val" in report_of(tmp_path / "results", "s", out, pr.build).read_text()
