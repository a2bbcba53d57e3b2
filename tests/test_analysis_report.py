"""End to end: the CLI writes index.html, report.md, CSVs and figures from a fixture study, and
the report reads like a paper (numbered captions, one unit, no empty findings)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis
from analysis import report
from analysis.__main__ import main
from analysis.sections import Section, Table, harmful_neuron_sections, interval_note
from tests.test_analysis_fixtures import (
    neuron_rows,
    run_entry,
    trained_study,
    write_manifest,
    write_results,
)


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
    assert main([str(tmp_path / "missing")]) == 2  # input errors: 2, as python -m sweep
    assert main([str(tmp_path)]) == 2
    write_manifest(tmp_path, "a", [])
    assert main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2  # a manifest, no results
    write_manifest(tmp_path, "b", [])
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("error: ") for line in err)
    assert "does not exist" in err[0] and "holds no study" in err[1]
    assert "has no results to report" in err[2] and "studies: a, b" in err[3]


def _text(page: str) -> str:
    """The visible text of an HTML page, tags and stylesheet removed, entities decoded."""
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<style>.*?</style>", "", page, flags=re.S))
    return re.sub(r"\s+", " ", html.unescape(text))


def test_report_reads_like_a_paper(study_root: Path, tmp_path: Path) -> None:
    index = report.write_report(study_root, out_dir=tmp_path)
    page, md = index.read_text(), (tmp_path / "report.md").read_text()
    text = _text(page)
    # headline findings first, then the contents, then the numbered sections
    assert text.index("What this study found") < text.index("Contents") < text.index(
        "1 Impact of single-neuron removal")
    summary = _text(re.search(r'<section class="summary">.*?</section>', page, re.S).group(0))
    assert "Harmful neurons, whose removal alone raises test accuracy:" in summary
    assert "with 2 seeds its 95 % intervals span most of 0–100 % and say little" in summary
    # figures and tables numbered in order, each with a caption that is not a file name
    figures = re.findall(r'<img src="([^"]+)" alt="Figure (\d+)"></a><figcaption><b>Figure '
                         r'(\d+)\.</b> ([^<]+)</figcaption>', page)
    numbers = list(range(1, len(figures) + 1))
    assert len(figures) == 5 and [int(f[1]) for f in figures] == [int(f[2]) for f in figures] == numbers
    assert all(Path(src).stem not in caption and len(caption) > 100 for src, _, _, caption in figures)
    assert [int(n) for n in re.findall(r"\*\*Figure (\d+)\.\*\*", md)] == numbers
    assert [int(n) for n in re.findall(r"<b>Table (\d+)\.</b>", page)] == list(range(1, 8))
    assert "Single-neuron effects of digits/nn seed 0 (zero, test), one row per hidden layer" in text
    assert "Above each image: its true label, then the predicted label before → after" in text
    assert not re.search(r"\bnan\b", text, re.IGNORECASE) and "NaN" not in md
    # one unit: effects in pp, accuracies in %, the unit in each header; each split its own accuracy
    neurons = analysis.load(study_root, kind="neuron")
    expected = neurons.groupby(["seed", "split", "layer"], sort=True).agg(
        effect=("effect", "max"), accuracy=("accuracy_base", "first")).reset_index()
    impact = pd.read_csv(tmp_path / "tables" / "impact.csv")
    np.testing.assert_allclose(impact["max_effect_pp"], 100 * expected["effect"])
    np.testing.assert_allclose(impact["accuracy_pct"], 100 * expected["accuracy"])
    assert "test_accuracy" not in impact.columns
    assert impact.loc[impact["max_effect_pp"] <= 0, "max_unit"].isna().all()
    for header in ("max effect (pp)", "accuracy (%)", "train accuracy (%)", "harmful (%)",
                   "joint effect (pp)", "harmful mean (%)"):
        assert f">{header}</th>" in page, header
    pruning = pd.read_csv(tmp_path / "tables" / "heldout_pruning.csv")
    np.testing.assert_allclose(pruning["joint_effect_pp"],
                               pruning["accuracy_pct"] - pruning["accuracy_base_pct"])
    # two seeds: the share intervals say how many seeds an interval needs
    notes = re.findall(r'<p class="note"><b>Note\.</b> ([^<]+)</p>', page)
    assert len(notes) == 1 and notes[0] == html.escape(interval_note(2))
    assert page.index("<b>Table 3.</b> Share of helpful") < page.index(notes[0])
    # an empty harmful set has no Jaccard overlap, and the text says there is none
    boot = pd.read_csv(tmp_path / "tables" / "bootstrap_harmful.csv")
    assert (boot["n_harmful"] == 0).any()
    assert boot["mean_jaccard"].isna().tolist() == (boot["n_harmful"] == 0).tolist()
    assert "has no harmful neuron on the full test split, so there is no harmful set" in text


def test_interval_note() -> None:
    assert interval_note(2).startswith("These intervals come from 2 seeds and say almost nothing")
    assert "mean ± 8.98 standard deviations" in interval_note(2)
    assert "at least 3 seeds to be informative (± 2.48 SD)" in interval_note(2)
    assert "mean ± 1.59 standard deviations" in interval_note(4)
    assert interval_note(5) == ""


def test_no_harmful_neuron_is_said(tmp_path: Path) -> None:
    rows = pd.concat([neuron_rows([-0.02, 0.0, -0.01], layer=0), neuron_rows([-0.03, -0.01], layer=1),
                      neuron_rows([-0.02, -0.01], seed=1)])
    write_results(tmp_path, "s", "neuron", rows)
    write_manifest(tmp_path, "s", [run_entry("digits", "nn", 0), run_entry("digits", "nn", 1)])
    (section,) = harmful_neuron_sections(str(tmp_path), "s", tmp_path / "out")
    assert section.paragraphs == [
        "No neuron of digits/nn seed 0 (zero, test) is harmful: removing any one of them keeps or "
        "lowers test accuracy (at best it stays the same), so there is no harmful neuron to show.",
        "No neuron of digits/nn seed 1 (zero, test) is harmful: removing any one of them keeps or "
        "lowers test accuracy (at best it changes by -1.00 pp), so there is no harmful neuron to show.",
    ]
    assert section.figures == [] and not (tmp_path / "out" / "figures").exists()
    index = report.write_report(tmp_path, "s", tmp_path / "out")
    text = _text(index.read_text())
    assert ("Harmful neurons, whose removal alone raises test accuracy: 0.0 % of the neurons of each "
            "of 2 sweeps; none survives FDR at q = 0.05") in text
    assert "No single neuron's removal raises test accuracy." in text
    impact = pd.read_csv(tmp_path / "out" / "tables" / "impact.csv")
    assert impact["max_unit"].isna().all() and impact["max_effect_pp"].tolist() == [0.0, -1.0, -1.0]
    assert "No harmful neuron has a Benjamini-Hochberg q-value <= 0.05" in text
    assert re.search(r'<td class="num">0\.00</td><td class="num">–</td>', index.read_text())


def test_table_headers_cells_and_context() -> None:
    assert report.column_header("max_effect_pp") == "max effect (pp)"
    assert report.column_header("accuracy_base_pct") == "accuracy base (%)"
    assert report.column_header("pct_harmful_low") == "harmful low (%)"
    assert report.column_header("n_harmful_fdr") == "n harmful fdr"
    assert report.format_cell(float("nan"), "effect_pp") == report.format_cell(pd.NA, "unit") == "–"
    assert report.format_cell(1.23456, "effect_pp") == "1.23"
    assert report.format_cell(0.000123456, "ks_p") == "0.0001235"
    assert report.format_cell(3, "unit") == "3"
    frame = pd.DataFrame({"dataset": ["digits"] * 2, "model": ["nn"] * 2, "seed": [0, 1],
                          "effect_pp": [0.5, 1.0]})
    shown, context = report.displayed(frame)
    assert list(shown.columns) == ["seed", "effect_pp"]
    assert context == "In every row: dataset digits, model nn."
    only_keys, context = report.displayed(frame[["dataset", "model"]])  # nothing left to drop to
    assert list(only_keys.columns) == ["dataset", "model"] and context == ""
