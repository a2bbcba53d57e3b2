"""Tests of analysis.cumulative: known answers on tiny DataFrames, headless figures, sections."""

from __future__ import annotations

from tests.test_analysis_fixtures import built, report_of
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis.sections import cumulative as ac
from analysis import figures as fig
from sweep.kinds import SCHEMAS
from sweep.kernels import no_draws
from sweep.results.store import to_table

KEY = {
    "dataset": "mnist",
    "model": "nn_4",
    "seed": 0,
    "mode": "zero",
    "split": "test",
    "scope": "network",
}


def curves(dataset: str = "mnist", scale: float = 1.0) -> pd.DataFrame:
    """Random order, two repetitions: (1, .4, 0) and (1, .6, .2); effect_low: (1, 0, 0)."""
    rows = [
        ("random", 0, [1.0, 0.4, 0.0]),
        ("random", 1, [1.0, 0.6, 0.2]),
        ("effect_low", 0, [1.0, 0.0, 0.0]),
    ]
    return pd.DataFrame(
        [
            {
                **KEY,
                "dataset": dataset,
                "order": order,
                "repetition": rep,
                "k": k,
                "accuracy": scale * a,
                "loss": 1.0 + k,
                "accuracy_base": scale,
            }
            for order, rep, accuracy in rows
            for k, a in enumerate(accuracy)
        ]
    )


def test_curve_band() -> None:
    band = ac.curve_band(curves())
    random = band[band["order"] == "random"].set_index("k")
    np.testing.assert_allclose(random["mean"], [1.0, 0.5, 0.1])
    # 2.5 % / 97.5 % quantiles of (0.4, 0.6), linear interpolation: 0.4 + 0.025 * 0.2, 0.6 - 0.005
    np.testing.assert_allclose(random["low"], [1.0, 0.405, 0.005])
    np.testing.assert_allclose(random["high"], [1.0, 0.595, 0.195])
    np.testing.assert_allclose(random["fraction"], [0.0, 0.5, 1.0])
    assert list(random["n"]) == [2, 2, 2]
    single = band[band["order"] == "effect_low"]
    assert (single["low"] == single["high"]).all()


def test_area_under_curves_and_table() -> None:
    areas = ac.area_under_curves(curves()).set_index(["order", "repetition"])["auc"]
    # trapezoid / K=2: (1 + .4)/2 + (.4 + 0)/2 = .9 -> .45; (1 + .6)/2 + (.6 + .2)/2 = 1.2 -> .6;
    # (1 + 0)/2 + 0 = .5 -> .25
    assert areas[("random", 0)] == pytest.approx(0.45)
    assert areas[("random", 1)] == pytest.approx(0.6)
    assert areas[("effect_low", 0)] == pytest.approx(0.25)
    table = ac.auc_table(curves()).set_index("order")
    assert table.loc["random", "auc"] == pytest.approx(0.525)
    assert table.loc["random", "repetitions"] == 2
    assert (
        table.loc["effect_low", "auc_low"]
        == table.loc["effect_low", "auc_high"]
        == pytest.approx(0.25)
    )


def unit_and_neuron_rows() -> tuple[pd.DataFrame, pd.DataFrame]:
    run = {"dataset": "mnist", "model": "nn_4", "seed": 0}
    units = pd.DataFrame(
        [
            {
                **run,
                "split": "val",
                "layer": layer,
                "unit": u,
                "selectivity": 0.1 * (u + 1),
                "entropy": 0.0,
            }
            for layer in (0, 1, 2)
            for u in range(4)
        ]
    )
    effects = {0: [0.4, 0.3, 0.2, 0.1], 1: [0.1, 0.2, 0.3, 0.5], 2: [0.0] * 4}
    neurons = pd.DataFrame(
        [
            {**run, "mode": "zero", "split": "test", "layer": layer, "unit": u, "effect": e}
            for layer, es in effects.items()
            for u, e in enumerate(es)
        ]
    )
    return units, neurons


def test_selectivity_importance_and_spearman() -> None:
    joined = ac.selectivity_importance(*unit_and_neuron_rows())
    assert len(joined) == 12
    assert list(joined.columns) == [
        "dataset",
        "model",
        "seed",
        "mode",
        "split",
        "layer",
        "unit",
        "stat_split",
        "selectivity",
        "effect",
    ]
    table = ac.spearman_by_layer(joined).set_index("layer")
    # layer 0: effect falls as selectivity rises -> rho = -1; layer 1: rises -> +1;
    # layer 2: constant effect -> NaN
    assert table.loc[0, "rho"] == pytest.approx(-1.0)
    assert table.loc[1, "rho"] == pytest.approx(1.0)
    assert np.isnan(table.loc[2, "rho"])
    assert (table["n"] == 4).all()


MANIFEST = {
    "runs": [
        {"dataset": "mnist", "model": "nn_4", "seed": 0, "dataset_params": {"name": "mnist"}},
        {
            "dataset": "mnist-noise1.0",
            "model": "nn_4",
            "seed": 0,
            "dataset_params": {"name": "mnist", "label_noise": 1.0},
        },
    ]
}


def noisy_curves() -> pd.DataFrame:
    return pd.concat([curves(), curves("mnist-noise1.0", scale=0.5)], ignore_index=True)


def test_memorization_curves() -> None:
    levels = ac.label_noise_levels(MANIFEST)
    assert list(levels["label_noise"]) == [0.0, 1.0]
    mem = ac.memorization_curves(noisy_curves(), MANIFEST)
    assert sorted(mem["label_noise"].unique()) == [0.0, 1.0]
    # normalised by the unablated accuracy, both levels give the same random band
    for _, level in mem.groupby("label_noise"):
        np.testing.assert_allclose(level.sort_values("k")["mean"], [1.0, 0.5, 0.1])


def render(draw, tmp_path: Path, name: str) -> Path:
    figure = fig.new_figure()
    draw(figure.subplots())
    return fig.save_figure(figure, tmp_path, name)


def test_figures_render_headless(tmp_path: Path) -> None:
    joined = ac.selectivity_importance(*unit_and_neuron_rows())
    pngs = [
        render(
            lambda ax: ac.plot_cumulative(ac.curve_band(curves()), ax, "t"), tmp_path, "cumulative"
        ),
        render(lambda ax: ac.plot_selectivity_importance(joined, ax), tmp_path, "selectivity"),
        render(
            lambda ax: ac.plot_memorization(ac.memorization_curves(noisy_curves(), MANIFEST), ax),
            tmp_path,
            "memorization",
        ),
    ]
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def write_kind(study: Path, kind: str, df: pd.DataFrame, constants: dict[str, str]) -> None:
    for (dataset, model, seed), rows in df.groupby(["dataset", "model", "seed"]):
        folder = study / f"kind={kind}" / f"dataset={dataset}" / f"model={model}" / f"seed={seed}"
        folder.mkdir(parents=True)
        columns = {
            c: np.stack(rows[c].to_numpy()) if c == "class_effect" else rows[c].to_numpy()
            for c in rows.columns
        }
        drawless = {c: v for c, v in no_draws(len(rows)).items() if c in SCHEMAS[kind].names}
        columns = {**drawless, **columns}  # constant-mode rows: the draw columns null
        pq.write_table(to_table(SCHEMAS[kind], columns, constants), folder / "part-0.parquet")


def test_report_sections(tmp_path: Path) -> None:
    study = tmp_path / "results" / "s"
    units, neurons = unit_and_neuron_rows()
    write_kind(study, "cumulative", noisy_curves(), {})
    write_kind(
        study,
        "unit",
        units.assign(
            mean_activation=0.0, activation_rate=0.0, mutual_information=0.0, kl_selectivity=0.0,
            effect=np.nan,
        ),
        {},
    )
    write_kind(
        study,
        "neuron",
        neurons.assign(
            n_samples=4,
            accuracy_base=1.0,
            accuracy=1.0,
            loss_base=0.0,
            loss=0.0,
            broken=0,
            fixed=0,
            p_mcnemar=1.0,
            class_effect=list(np.zeros((12, 2))),
        ),
        {},
    )
    (study / "manifest.json").write_text(json.dumps(MANIFEST))
    out = tmp_path / "report"
    sections = built(ac.build, str(tmp_path / "results"), "s", out)
    assert [s.title for s in sections] == [
        "Cumulative ablation",
        "Memorization: ablation robustness against label noise",
        "Class selectivity against importance",
    ]
    assert sections[0].summary == [
        "In cumulative ablation the most damaging order is effect_low (2 of 2 curve families; mean "
        "accuracy along its curve 12.5 to 25.0 %)."]
    auc = sections[0].tables["cumulative_auc"].frame.set_index("order")
    assert auc.loc["effect_low", "auc_pct"].min() == pytest.approx(12.5)
    assert all(f.path.exists() for s in sections for f in s.figures)
    index = report_of(tmp_path / "results", "s", out, ac.build)
    assert "Cumulative ablation" in index.read_text()
