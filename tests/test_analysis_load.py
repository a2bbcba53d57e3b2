"""analysis.load: study discovery, typed partitioned reads with filters, manifest."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.load import (
    AnalysisError,
    find_run,
    list_studies,
    load,
    load_manifest,
    resolve_study,
    runs_table,
)
from tests.test_analysis_fixtures import neuron_rows, run_entry, write_manifest, write_results


@pytest.fixture
def results(tmp_path: Path) -> Path:
    rows = pd.concat([neuron_rows([0.01, -0.02], seed=s, layer=l) for s in (0, 1) for l in (0, 1)])
    write_results(tmp_path, "alpha", "neuron", rows)
    write_manifest(tmp_path, "alpha", [run_entry("digits", "nn", 0), run_entry("digits", "nn", 1)])
    return tmp_path


def test_load_types_and_filters(results: Path) -> None:
    df = load(results)
    assert len(df) == 8
    assert list(df.columns[:3]) == ["dataset", "model", "seed"]
    assert df["seed"].dtype == "int64" and df["layer"].dtype == "int64"
    assert isinstance(df["dataset"].iloc[0], str)
    assert len(df["class_effect"].iloc[0]) == 3
    seed1 = load(results, "alpha", filters=[("seed", "=", 1), ("layer", "=", 0)])
    assert set(seed1["seed"]) == {1} and set(seed1["layer"]) == {0} and len(seed1) == 2


def test_study_resolution(results: Path, tmp_path: Path) -> None:
    assert resolve_study(results) == "alpha"
    write_manifest(tmp_path, "beta", [])
    assert list_studies(results) == ["alpha", "beta"]
    with pytest.raises(AnalysisError, match="alpha, beta"):
        resolve_study(results)
    with pytest.raises(AnalysisError, match="no study 'gamma'"):
        resolve_study(results, "gamma")
    with pytest.raises(AnalysisError, match="no synapse results"):
        load(results, "alpha", "synapse")


def test_missing_and_empty_roots(tmp_path: Path) -> None:
    with pytest.raises(AnalysisError, match="does not exist"):
        list_studies(tmp_path / "nope")
    (tmp_path / "stray").mkdir()
    with pytest.raises(AnalysisError, match="holds no study"):
        list_studies(tmp_path)


def test_manifest_runs(results: Path) -> None:
    manifest = load_manifest(results)
    table = runs_table(manifest)
    assert list(table["seed"]) == [0, 1] and table["val_accuracy"].isna().all()
    assert find_run(manifest, "digits", "nn", 1)["seed"] == 1
    with pytest.raises(AnalysisError):
        find_run(manifest, "digits", "nn", 7)
