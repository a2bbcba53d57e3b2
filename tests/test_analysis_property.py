"""Property test of the report: whatever the study's shape, every section builds.

Hypothesis draws a study (1-3 hidden layers of 2-400 units, 1-5 seeds, each ablation kind
present or absent, with or without a val split, each neuron mode, one or two dataset labels,
badly and well trained networks: silent units, ties and networks without a harmful neuron
come with them), runs the real sweeps (the pipeline, kinds and kernels, in process: see
:mod:`tests.serial_executor`) and requires :func:`analysis.write_report` to build every
section without a failure box, with a figure file behind every figure and a CSV behind
every table.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis import Study, write_report
from sweep.hydra_config import compose_run
from sweep.kernels import constant_modes
from sweep.run.pipeline import run
from tests.serial_executor import serial_sweeps

KIND_OVERRIDES: dict[str, list[str]] = {
    "neurons": [],
    "synapses": ["ablation=synapses"],
    "cumulative": ["ablation=cumulative", "ablation.repetitions=2", "ablation.k_points=6",
                   "ablation.orders=[random,selectivity_high,mutual_information_low]"],
    "pairs": ["ablation=pairs"],
    "pruning": ["ablation=pruning", "ablation.repetitions=2", "ablation.max_removed=0.15"],
    "class_knockout": ["ablation=class_knockout", "ablation.classes=[0,1]", "ablation.max_units=3"],
}
"""Each ablation a study may hold, small enough to sweep in a second or two."""

NEEDS_VAL = {"pruning", "class_knockout"}
"""Ablations that choose on the val split (refused without one)."""

MAX_PAIR_WIDTH = 40
"""Widest last layer whose every pair is swept; wider ones sweep the pairs of the 6 units
with the largest val effects (``ablation.top_k``, which needs a val split)."""


@st.composite
def studies(draw: st.DrawFn) -> dict:
    """A study's shape."""
    depth = draw(st.integers(1, 3))
    first = draw(st.sampled_from([2, 7, 40, 400]))
    hidden = [first] + [draw(st.sampled_from([2, 5, 16])) for _ in range(depth - 1)]
    val = draw(st.booleans())
    kinds = draw(st.sets(st.sampled_from(sorted(KIND_OVERRIDES)), min_size=1, max_size=3))
    if not val:
        kinds = kinds - NEEDS_VAL - ({"pairs"} if hidden[-1] > MAX_PAIR_WIDTH else set())
        kinds = kinds or {"neurons"}
    return {
        "hidden": hidden,
        "seeds": list(range(draw(st.integers(1, 5)))),
        "kinds": sorted(kinds),
        "val": val,
        "mode": draw(st.sampled_from(constant_modes())),  # every kind drawn takes it
        "max_iter": draw(st.sampled_from([1, 3, 40])),  # 1: silent units, big effects, ties
        "labels": draw(st.sampled_from([["digits"], ["digits", "digits-b"]])),
    }


def sweep_study(root: Path, shape: dict) -> None:
    """Run every sweep of the shape into ``root`` (study ``s``)."""
    name = "h" + "x".join(map(str, shape["hidden"])) + f"_i{shape['max_iter']}"
    common = [
        f"paths.results={root}", "study=s", "progress=false",
        f"model.hidden_layer_sizes=[{','.join(map(str, shape['hidden']))}]",
        f"model.name={name}", f"model.max_iter={shape['max_iter']}",
        f"seeds=[{','.join(map(str, shape['seeds']))}]",
        f"dataset.val_fraction={0.2 if shape['val'] else 0.0}",
    ]
    for label in shape["labels"]:
        for kind in shape["kinds"]:
            overrides = [*common, f"dataset.label={label}", *KIND_OVERRIDES[kind]]
            if kind != "synapses":
                overrides.append(f"ablation.modes=[{shape['mode']}]")
            if kind == "synapses":  # into the 2 most harmful neurons on val, else the output layer
                if shape["val"]:
                    run(compose_run([*common, f"dataset.label={label}", "ablation.modes=[zero]"]))
                overrides.append("ablation.top_harmful=2" if shape["val"]
                                 else f"ablation.layers=[{len(shape['hidden'])}]")
            if kind == "pairs":
                last = len(shape["hidden"]) - 1
                overrides.append(f"ablation.layers=[{last}]" if shape["hidden"][-1] <= MAX_PAIR_WIDTH
                                 else "ablation.top_k=6")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # max_iter=1: convergence warnings
                run(compose_run(overrides))


@pytest.mark.slow
@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(shape=studies())
def test_every_section_builds_for_any_study(shape: dict, tmp_path_factory: pytest.TempPathFactory,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path_factory.mktemp("results")
    with serial_sweeps(monkeypatch):
        sweep_study(root, shape)
    out = tmp_path_factory.mktemp("report")
    result = write_report(root, "s", out)
    assert result.failures == [], (shape, result.failures)
    page = result.index.read_text()
    for src in re.findall(r'src="([^"]+)"', page):
        assert (out / src).stat().st_size > 0
    for name in re.findall(r'href="tables/([^"]+)\.csv"', page):
        assert (out / "tables" / f"{name}.csv").exists()
    study = Study.open(root, "s")
    assert "Impact of single-neuron removal" in page or not study.has("neuron")
    assert "Unit pairs: interactions" in page or not study.has("pair")
    assert "Pruning chosen on val" in page or not study.has("pruning")
    assert "Cumulative ablation" in page or not study.has("cumulative")
    assert not re.search(r"\bnan\b", re.sub(r"<[^>]+>", " ", page), re.IGNORECASE)


def test_a_study_with_silent_units_and_ties(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The corner cases the property test reaches by chance, pinned: one iteration of a
    400-unit layer leaves many units without effect and every effect tied at whole images
    (a network without any harmful neuron: tests/test_analysis_report.py)."""
    shape = {"hidden": [400, 2], "seeds": [0, 1], "kinds": ["neurons", "pairs"], "val": False,
             "mode": "zero", "max_iter": 1, "labels": ["digits"]}
    with serial_sweeps(monkeypatch):
        sweep_study(tmp_path / "results", shape)
    study = Study.open(tmp_path / "results", "s")
    neurons = study.rows("neuron", "test")
    effects = neurons["effect"].to_numpy()
    assert (effects == 0).sum() > 100  # silent or redundant units: ties at 0
    images = np.rint(effects * neurons["n_samples"].to_numpy())
    assert len(np.unique(images)) < 40 < len(images)  # whole images: ties everywhere
    result = write_report(study, out_dir=tmp_path / "report")
    assert result.failures == []
