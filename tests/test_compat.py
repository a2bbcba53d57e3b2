"""Results written by release 0.1 (``tests/fixtures/release_0_1``: a digits study with neuron,
synapse, unit and cumulative parts, made by that release's ``python -m sweep``) keep resuming and
reading: the same commands recompute no part and change no byte, and analysis reads every kind."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import analysis
from sweep.compat import MOVED
from sweep.run import pipeline

FIXTURE = Path(__file__).parent / "fixtures" / "release_0_1"
COMMON = ("model.hidden_layer_sizes=[12,6]", "model.name=tiny", "model.max_iter=40", "dataset.val_fraction=0.2",
          "study=compat")
COMMANDS = {  # the commands that wrote the fixture
    "neuron": (),
    "synapse": ("ablation=synapses", "ablation.layers=[1,2]"),
    "cumulative": ("ablation=cumulative", "ablation.k_points=5", "ablation.repetitions=2",
                   "ablation.orders=[random,selectivity_high,effect_low]"),
}


def part_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("part-*.parquet"))}


@pytest.mark.slow
@pytest.mark.ray
def test_a_release_0_1_study_resumes_without_recomputing_or_changing_a_byte(local_ray, run_config, tmp_path):
    root = tmp_path / "results"
    shutil.copytree(FIXTURE, root)
    before = part_bytes(root)
    assert len(before) == 15
    for overrides in COMMANDS.values():
        summary = pipeline.run(run_config(*COMMON, *overrides))
        assert summary.rows_written == 0
    assert part_bytes(root) == before


def test_analysis_reads_every_kind_of_a_release_0_1_study(tmp_path):
    root = tmp_path / "results"
    shutil.copytree(FIXTURE, root)
    counts = {kind: len(analysis.load(root, "compat", kind)) for kind in ("neuron", "synapse", "unit", "cumulative")}
    assert counts == {"neuron": 2 * 18, "synapse": 2 * (12 * 6 + 6 * 10), "unit": 18, "cumulative": 2 * 4 * 5}
    runs = analysis.runs_table(analysis.load_manifest(root, "compat"))
    assert list(runs["model"]) == ["tiny"]


def test_the_readme_python_api_keeps_working(tmp_path):
    """The first release's public names, as the README shows them, on a model of the fixture."""
    from sweep.ablate import ablate_neurons
    from sweep.datasets import load_dataset
    from sweep.models import load_model
    from sweep.network import Network
    from sweep.store import read_results

    model = next((FIXTURE / "models").rglob("model.npz"))
    clf = load_model(str(model))
    X_train, y_train, X_val, y_val, X_test, y_test = load_dataset("digits", test_fraction=0.25, val_fraction=0.2)
    rows = ablate_neurons(Network.from_classifier(clf), X_test, y_test, layer=0, units=range(12))
    stored = read_results(str(FIXTURE), "compat", "neuron", [("split", "=", "test"), ("layer", "=", 0)])
    assert list(rows["accuracy"]) == list(stored.sort_values("unit")["accuracy"])


def test_a_whole_study_reads_as_one_dataset_after_the_manifest_moves_out_of_the_way(tmp_path):
    """The first release kept ``manifest.json`` and ``runs/`` inside the Parquet tree; the next
    manifest write moves them to ``_manifest.json`` and ``_runs/``, which pyarrow skips."""
    import pandas as pd
    import pyarrow.dataset as ds

    from sweep.kinds import STUDY_SCHEMA
    from sweep.results import ResultStore

    root = tmp_path / "results"
    shutil.copytree(FIXTURE, root)
    study = root / "compat"
    with pytest.raises(Exception):  # noqa: B017 - pyarrow's own error for a non-Parquet file
        pd.read_parquet(study)
    store = ResultStore(str(root), "compat")
    runs = store.read_manifest()["runs"]
    store.write_manifest({"ablation": {"kind": "neurons"}}, runs, {})
    assert sorted(p.name for p in study.iterdir() if not p.name.startswith("kind=")) == ["_manifest.json", "_runs"]
    assert len(list((study / "_runs").iterdir())) == 3 and store.read_manifest()["runs"] == runs
    neurons = pd.read_parquet(study, schema=STUDY_SCHEMA, filters=[("kind", "=", "neuron")])
    assert len(neurons) == 36 and neurons["unit"].notna().all() and neurons["accuracy"].notna().all()
    every = ds.dataset(study, partitioning="hive", schema=STUDY_SCHEMA).to_table()
    assert every.num_rows == 36 + 264 + 18 + 40


def test_a_synapse_measured_under_two_selections_reads_once(tmp_path):
    from sweep.results import ResultStore

    root = tmp_path / "results"
    shutil.copytree(FIXTURE, root)
    partition = root / "compat" / "kind=synapse" / "dataset=digits" / "model=tiny" / "seed=0"
    for part in list(partition.iterdir()):  # the same parts again, as if chosen by another selection
        shutil.copy(part, partition / part.name.replace("c7ee222b2b", "0123456789"))
    store = ResultStore(str(root), "compat")
    assert len(store.read("synapse", distinct=False)) == 2 * 264
    once = store.read("synapse")
    assert len(once) == 264 and not once.duplicated(["split", "layer", "source", "target"]).any()


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_first_release_module_name_is_its_new_home_with_a_warning_naming_it(old, monkeypatch):
    import importlib
    import sys

    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated; import from {MOVED[old]} instead"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])
    assert not (Path(__file__).parents[1] / "sweep" / f"{old.rsplit('.', 1)[1]}.py").exists()
