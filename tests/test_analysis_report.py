"""End to end: the CLI writes index.html, report.md, CSVs and figures from a fixture study."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from analysis import report
from analysis.__main__ import main
from analysis.sections import Section, Table
from tests.test_analysis_fixtures import trained_study, write_manifest


@pytest.fixture(scope="module")
def study_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    trained_study(root)
    return root


def test_cli_writes_the_report(study_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "report"
    assert main([str(study_root), "--out", str(out)]) == 0
    index = out / "index.html"
    assert capsys.readouterr().out.strip() == str(index)
    page = index.read_text()
    for title in ("Impact of single-neuron removal", "Significance", "Stability across seeds",
                  "The most harmful neurons", "Held-out pruning"):
        assert title in page
    assert "On digits/nn seed 0 (zero, test)," in page and "survive FDR at q=0.05" in page
    assert "Matching the neurons of seeds 0 and 1" in page
    images = re.findall(r'src="([^"]+)"', page)
    assert images and all(not Path(i).is_absolute() and (out / i).stat().st_size > 0 for i in images)
    assert any("synapses_" in i for i in images) and any("changed_" in i for i in images)
    for name in ("impact", "significant_harmful", "seed_shares", "seed_ks", "seed_matching",
                 "bootstrap_harmful", "heldout_pruning"):
        assert (out / "tables" / f"{name}.csv").exists(), name
    impact = pd.read_csv(out / "tables" / "impact.csv")
    assert len(impact) == 2 * 2 * 2  # seeds x splits x layers
    assert "## 5. Held-out pruning" in (out / "report.md").read_text()  # sections are numbered


def test_extra_section_builders(study_root: Path, tmp_path: Path) -> None:
    def extra(results: str, study: str, out_dir: Path) -> list[Section]:
        return [Section("Extra", ["hello"], {"extra": Table(pd.DataFrame({"a": [1]}), "one row")})]

    index = report.write_report(study_root, out_dir=tmp_path, builders=[extra])
    assert "hello" in index.read_text() and (tmp_path / "tables" / "extra.csv").exists()


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(tmp_path / "missing")]) == 1
    assert main([str(tmp_path)]) == 1
    write_manifest(tmp_path, "a", [])
    assert main([str(tmp_path), "--out", str(tmp_path / "out")]) == 1  # a manifest, no results
    write_manifest(tmp_path, "b", [])
    assert main([str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("error: ") for line in err)
    assert "does not exist" in err[0] and "holds no study" in err[1]
    assert "has no results to report" in err[2] and "studies: a, b" in err[3]
