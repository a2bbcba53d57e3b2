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
from analysis.formatting import column_header, format_cell
from analysis.sections import SECTIONS, Topic, harmful
from analysis.sections.base import Section, Table, interval_note
from tests.test_analysis_fixtures import (
    built,
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
    for title in ("Impact of single-neuron removal", "Stability across seeds",
                  "The most harmful neurons", "Held-out pruning"):
        assert title in page
    assert "survive FDR at q = 0.05" in page or "No harmful neuron has a Benjamini-Hochberg" in page
    images = re.findall(r'src="([^"]+)"', page)
    assert images and all(not Path(i).is_absolute() and (out / i).stat().st_size > 0 for i in images)
    assert any("synapses_" in i for i in images) and any("changed_" in i for i in images)
    assert not list(out.glob("figures/*.svg"))  # PNG only unless --svg
    for name in ("impact", "seed_shares", "seed_ks", "seed_matching", "bootstrap_harmful",
                 "heldout_pruning", "most_harmful"):
        assert (out / "tables" / f"{name}.csv").exists(), name
    impact = pd.read_csv(out / "tables" / "impact.csv")
    assert len(impact) == 2 * 2 * 2  # seeds x splits x layers
    assert "## 5. Held-out pruning" in (out / "report.md").read_text()  # sections are numbered
    assert not (out / report.LOG_NAME).exists()  # nothing failed, nothing logged


def test_extra_topic(study_root: Path, tmp_path: Path) -> None:
    def extra(study, page) -> list[Section]:
        return [Section("Extra", ["hello"], {"extra": Table(pd.DataFrame({"a": [1]}), "one row")})]

    result = report.write_report(study_root, out_dir=tmp_path, topics=[Topic("extra", "Extra", extra)])
    assert "hello" in result.index.read_text() and (tmp_path / "tables" / "extra.csv").exists()
    assert result.failures == []


def test_a_failing_section_is_boxed_and_never_loses_the_others(
        study_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(study, page) -> list[Section]:
        raise TypeError("Invalid shape (392,) for image data")

    topics = (*SECTIONS[:2], Topic("broken", "A broken topic", broken), *SECTIONS[2:])
    monkeypatch.setattr(report, "SECTIONS", topics)
    out = tmp_path / "report"
    assert main([str(study_root), "--out", str(out)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == ("error: section 'broken' failed: TypeError: Invalid shape (392,) for image "
                      "data")
    assert len(err) == 2 and "written without 1 section(s)" in err[1]
    page = (out / "index.html").read_text()
    assert ('<p class="failure"><b>This section failed:</b> TypeError: Invalid shape (392,) for '
            "image data") in page
    for title in ("Impact of single-neuron removal", "Stability across seeds",
                  "The most harmful neurons", "Held-out pruning", "A broken topic"):
        assert title in page
    log = (out / report.LOG_NAME).read_text()
    assert "section 'broken' failed" in log and "Traceback (most recent call last)" in log
    assert 'raise TypeError("Invalid shape (392,) for image data")' in log


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
    index = report.write_report(study_root, out_dir=tmp_path).index
    page, md = index.read_text(), (tmp_path / "report.md").read_text()
    text = _text(page)
    # headline findings first, then the contents, then the numbered sections
    assert text.index("What this study found") < text.index("Contents") < text.index(
        "1 Impact of single-neuron removal")
    summary = re.search(r'<section class="summary">.*?</section>', page, re.S).group(0)
    findings = re.findall(r"<li>(.*?)</li>", summary)
    assert 2 <= len(findings) <= report.MAX_FINDINGS
    assert _text(findings[0]).startswith("Harmful neurons (removal alone raises test accuracy):")
    # figures and tables numbered in order, each with a caption that is not a file name
    figures = [(src, n, m, _text(caption)) for src, n, m, caption in re.findall(
        r'<img src="([^"]+)" alt="Figure (\d+)"><figcaption><b>Figure (\d+)\.</b> '
        r"(.+?)</figcaption>", page)]
    numbers = list(range(1, len(figures) + 1))
    assert len(figures) >= 4 and [int(f[1]) for f in figures] == [int(f[2]) for f in figures] == numbers
    assert all(Path(src).stem not in caption and len(caption) > 100 for src, _, _, caption in figures)
    assert [int(n) for n in re.findall(r"\*\*Figure (\d+)\.\*\*", md)] == numbers
    tables = [int(n) for n in re.findall(r"<b>Table (\d+)\.</b>", page)]
    assert tables == list(range(1, len(tables) + 1))
    assert "Single-neuron effects of digits/nn (zero, test) of every seed (2, one line each)" in text
    assert "Above each image: its true label, then the predicted label before → after" in text
    assert not re.search(r"\bnan\b", text, re.IGNORECASE) and "NaN" not in md
    assert "-0.00" not in text and "e-0" not in text  # one number format
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
    assert notes[0] == html.escape(interval_note(2))
    shares = pd.read_csv(tmp_path / "tables" / "seed_shares.csv")
    assert (shares.filter(like="_low") >= 0).all().all() and (shares.filter(like="_high") <= 100).all().all()
    assert shares["harmful_per_seed"].str.count(",").eq(1).all()  # both seeds' values shown
    # an empty harmful set has no Jaccard overlap
    boot = pd.read_csv(tmp_path / "tables" / "bootstrap_harmful.csv")
    assert boot["mean_jaccard"].isna().tolist() == (boot["n_harmful"] == 0).tolist()
    # per-pair detail is collapsed
    assert re.search(r'<details class="table" id="table-\d+"><summary>Table \d+: Two-sample', page)
    # the units the prose names link to the explorer (inert when opened from disk)
    assert re.search(r'<a class="unit" href="/\?model=digits/nn/\d&amp;unit=\d:\d+">unit \d+ of '
                     r"layer \d of digits/nn seed \d</a>", page)
    assert report.UNIT_LINK_SCRIPT in page


def test_interval_note() -> None:
    assert interval_note(2).startswith("From 2 seeds a 95 % t-interval is the mean ± 8.98 standard")
    assert "Rerun with at least 5 seeds, e.g. seeds=[0,1,2,3,4]." in interval_note(2)
    assert "mean ± 1.59 standard deviations; 5 seeds narrow it to ± 1.24 SD" in interval_note(4)
    assert interval_note(5) == ""


def test_no_harmful_neuron_is_said(tmp_path: Path) -> None:
    rows = pd.concat([neuron_rows([-0.02, 0.0, -0.01], layer=0), neuron_rows([-0.03, -0.01], layer=1),
                      neuron_rows([-0.02, -0.01], seed=1)])
    write_results(tmp_path, "s", "neuron", rows)
    write_manifest(tmp_path, "s", [run_entry("digits", "nn", 0), run_entry("digits", "nn", 1)])
    (section,) = built(harmful.build, tmp_path, "s", tmp_path / "out")
    assert section.paragraphs == ["No sweep has a harmful neuron on test: no removal raises accuracy."]
    table = section.tables["most_harmful"].frame
    assert table["effect_pp"].tolist() == [0.0, -1.0] and table["tied"].tolist() == [1, 1]
    assert section.figures == [] and not (tmp_path / "out" / "figures").exists()
    index = report.write_report(tmp_path, "s", tmp_path / "out").index
    text = _text(index.read_text())
    assert ("Harmful neurons (removal alone raises test accuracy): 0.0 % of the neurons of each "
            "of 2 sweeps; none survives FDR at q = 0.05") in text
    assert "No single neuron's removal raises test accuracy." in text
    impact = pd.read_csv(tmp_path / "out" / "tables" / "impact.csv")
    assert impact["max_unit"].isna().all() and impact["max_effect_pp"].tolist() == [0.0, -1.0, -1.0]
    assert "No harmful neuron has a Benjamini-Hochberg q-value <= 0.05" in text
    # 100 test images: one image is 1 pp, so one decimal resolves it
    assert re.search(r'<td class="num">0\.0</td><td class="num">–</td>', index.read_text())


def test_table_headers_cells_and_context() -> None:
    assert column_header("max_effect_pp") == "max effect (pp)"
    assert column_header("accuracy_base_pct") == "accuracy base (%)"
    assert column_header("pct_harmful_low") == "harmful low (%)"
    assert column_header("n_harmful_fdr") == "n harmful fdr"
    assert format_cell(float("nan"), "effect_pp") == format_cell(pd.NA, "unit") == "–"
    assert format_cell(1.23456, "effect_pp") == "1.23"
    assert format_cell(1.23456, "effect_pp", 3) == "1.235"
    assert format_cell(-0.0001, "effect_pp") == "0.00"
    assert format_cell(0.000123456, "ks_p") == format_cell(4.175e-08, "p_mcnemar") == "<0.001"
    assert format_cell(0.0123456, "q_value") == "0.012"
    assert format_cell(0.000123456, "spearman") == "0.000123"
    assert format_cell(1.0, "n_units") == "1" and format_cell(3, "unit") == "3"
    frame = pd.DataFrame({"dataset": ["digits"] * 2, "model": ["nn"] * 2, "seed": [0, 1],
                          "effect_pp": [0.5, 1.0]})
    shown, context = report.displayed(frame)
    assert list(shown.columns) == ["seed", "effect_pp"]
    assert context == "In every row: dataset digits, model nn."
    only_keys, context = report.displayed(frame[["dataset", "model"]])  # nothing left to drop to
    assert list(only_keys.columns) == ["dataset", "model"] and context == ""
