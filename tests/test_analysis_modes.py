"""The mode study section: known tables, and every number of a real four-mode study
recomputed from its rows (and, for the reliabilities, from the kernels' per-image outcomes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.docs import write_docs
from analysis.noise import noise_categories, split_half_reliability
from analysis.sections import SECTIONS
from analysis.sections.base import FAMILY_KEYS, Page
from analysis.sections.modes import (
    N_HALVES,
    UNIT_KEYS,
    build,
    mode_agreement,
    mode_impact,
    mode_order,
    modes_summary,
)
from analysis.study import NetworkKey, Study
from sweep.hydra_config import compose_run
from sweep.kernels import ablate_neurons, neuron_flips, unit_replacements
from sweep.kernels.modes import drawn_values
from sweep.run import pipeline
from tests.serial_executor import serial_sweeps
from tests.test_analysis_fixtures import neuron_rows


def _two_modes() -> pd.DataFrame:
    # zero: units 0..4 with effects -2, -1, 0, +1, +5 images of 100; peak: unit order reversed
    # for the first two, and unit 4's +5 images (significant? McNemar of 6 vs 1: p = 0.125) kept
    zero = neuron_rows([-0.02, -0.01, 0.0, 0.01, 0.05], mode="zero")
    peak = neuron_rows([-0.01, -0.02, 0.0, 0.01, 0.05], mode="peak")
    return pd.concat([zero, peak], ignore_index=True)


def test_impact_per_mode_and_agreement_between_modes_from_known_rows() -> None:
    categorized = noise_categories(_two_modes(), FAMILY_KEYS, rule="images", min_images=2)
    impact = mode_impact(categorized)
    assert impact["mode"].tolist() == ["zero", "peak"]  # the registry's order
    zero = impact.iloc[0]
    assert (zero.n_units, zero.pct_harmful, zero.pct_helpful) == (5, 40.0, 40.0)
    assert (zero.n_harmful_noise, zero.n_helpful_noise) == (1, 1)  # +5 and -2 images: at least 2
    assert zero.mean_effect == pytest.approx(0.006) and np.isnan(zero.effect_sd_draws)
    reliability = pd.DataFrame({**{k: [v, v] for k, v in zip(UNIT_KEYS, ("digits", "nn", 0, "test", 0))},
                                "mode": ["zero", "peak"], "reliability": [0.81, 0.64]})
    agreement = mode_agreement(categorized, reliability)
    row = agreement.iloc[0]
    assert (row.mode_a, row.mode_b, row.n_units) == ("zero", "peak", 5)
    assert row.spearman == pytest.approx(stats.spearmanr([-2, -1, 0, 1, 5], [-1, -2, 0, 1, 5]).statistic)
    assert row.ceiling == pytest.approx(0.72)  # sqrt(0.81 * 0.64)
    assert row.n_category_changed == 2  # unit 0: helpful -> indistinguishable, unit 1 the reverse
    assert row.n_harmful_changed == 0
    assert "Spearman rho 0.90" in modes_summary(agreement)[0]


def test_a_layer_with_constant_effects_has_no_rank_correlation_and_no_ceiling_below_zero() -> None:
    rows = pd.concat([neuron_rows([0.0, 0.0, 0.0], mode="zero"), neuron_rows([0.01, 0.0, -0.01], mode="mean")],
                     ignore_index=True)
    reliability = pd.DataFrame({**{k: [v, v] for k, v in zip(UNIT_KEYS, ("digits", "nn", 0, "test", 0))},
                                "mode": ["zero", "mean"], "reliability": [np.nan, -0.2]})
    agreement = mode_agreement(noise_categories(rows, FAMILY_KEYS), reliability)
    assert np.isnan(agreement["spearman"].iloc[0]) and np.isnan(agreement["ceiling"].iloc[0])
    assert "no rank correlation" in modes_summary(agreement)[0] and "no ceiling" in modes_summary(agreement)[0]


def test_the_topic_is_registered_once() -> None:
    assert [t.name for t in SECTIONS].count("modes") == 1
    assert mode_order(["peak", "zero", "resample"]) == ["zero", "resample", "peak"]


@pytest.fixture(scope="module")
def four_modes(tmp_path_factory: pytest.TempPathFactory) -> Study:
    root = tmp_path_factory.mktemp("modes") / "results"
    cfg = compose_run([f"paths.results={root}", "progress=false", "model.hidden_layer_sizes=[16,8]",
                       "model.name=small", "model.max_iter=40", "ablation.modes=[zero,mean,resample,peak]",
                       "study=modes", "ablation.resample_draws=2"])
    with pytest.MonkeyPatch.context() as patch, serial_sweeps(patch):
        pipeline.run(cfg)
        pipeline.run(compose_run([f"paths.results={root}", "progress=false", "model.hidden_layer_sizes=[16,8]",
                                  "model.name=small", "model.max_iter=40", "study=one"]))
    return Study.open(root, "modes")


def test_the_section_is_skipped_on_a_study_with_one_mode(four_modes: Study, tmp_path: Path) -> None:
    assert build(Study.open(four_modes.root, "one"), Page(tmp_path)) == []


def test_every_number_of_the_section_recomputed_from_the_rows(four_modes: Study, tmp_path: Path) -> None:
    (section,) = build(four_modes, Page(tmp_path))
    rows = four_modes.rows("neuron", "test")
    agreement = section.tables["mode_agreement"].frame
    assert len(agreement) == 2 * 6  # two layers, every pair of four modes
    for r in agreement.itertuples():
        layer = rows[rows["layer"] == r.layer]
        a = layer[layer["mode"] == r.mode_a].sort_values("unit")
        b = layer[layer["mode"] == r.mode_b].sort_values("unit")
        rho = stats.spearmanr(a["effect"], b["effect"]).statistic
        assert r.spearman == pytest.approx(rho, abs=0.005)  # the table rounds to 2 decimals
        harmful = ((a["effect"] > 0).to_numpy() != (b["effect"] > 0).to_numpy()).sum()
        assert r.n_harmful_changed == harmful
    categorized = noise_categories(rows, FAMILY_KEYS)
    for (layer, mode_a, mode_b), n in agreement.set_index(["layer", "mode_a", "mode_b"])["n_category_changed"].items():
        a = categorized[(categorized["layer"] == layer) & (categorized["mode"] == mode_a)].sort_values("unit")
        b = categorized[(categorized["layer"] == layer) & (categorized["mode"] == mode_b)].sort_values("unit")
        assert n == (a["noise_category"].to_numpy() != b["noise_category"].to_numpy()).sum()
    impact = section.tables["mode_impact"].frame
    counts = rows.assign(harmful=rows["effect"] > 0).groupby(["layer", "mode"])["harmful"].mean() * 100
    for r in impact.itertuples():
        assert r.pct_harmful == pytest.approx(counts[(r.layer, r.mode)], abs=0.005)
    assert len(section.figures) == 1 and section.figures[0].path.exists()


def test_reliability_of_resample_uses_the_rows_seed_and_the_kernels_outcomes(four_modes: Study) -> None:
    from analysis.sections.modes import reliabilities

    rows = four_modes.rows("neuron", "test")
    rows = rows[(rows["layer"] == 1) & (rows["mode"] == "resample")]
    key = NetworkKey("digits", "small", 0)
    net = four_modes.network(key)
    X, y = four_modes.split(key, "test")
    seed = int(rows["resample_seed"].iloc[0])
    values = drawn_values(unit_replacements(net, "resample", four_modes.reference(key, "resample")), "resample",
                          len(y), seed)[1]
    flips = neuron_flips(net, X, y, 1, np.arange(8), "resample", replacement=values)
    counts = ablate_neurons(net, X, y, 1, np.arange(8), "resample", replacement=values)
    np.testing.assert_array_equal(np.bincount(flips.ablation[flips.fixed], minlength=8), counts["fixed"])
    halves = split_half_reliability(flips.ablation, flips.row, flips.fixed, 8, len(y), N_HALVES)
    got = reliabilities(four_modes, rows)
    assert got["reliability"].iloc[0] == pytest.approx(np.nanmedian(halves["spearman_brown"]))


def test_markdown_of_a_mode_study_rewrites_only_the_mode_page(four_modes: Study, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    repo = Path(__file__).resolve().parent.parent / "docs"
    for page in ("modes.md", "reproductions.md"):
        (docs / page).write_text((repo / page).read_text())
    written = write_docs(four_modes, docs)
    assert written[0] == docs / "modes.md" and all(p.exists() for p in written)
    assert (docs / "reproductions.md").read_text() == (repo / "reproductions.md").read_text()
    text = (docs / "modes.md").read_text()
    region = text.split("<!-- BEGIN generated: modes-table -->")[1].split("<!-- END generated: modes-table -->")[0]
    assert "| digits | small | 0 | zero | resample |" in region  # layer 0, a pair of modes
    assert "--study modes --markdown docs" in region and "![Mode study" in region
