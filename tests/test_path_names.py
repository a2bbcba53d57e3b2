"""Nothing escapes the results root: every string-valued key of the schema, fed hostile values
(``..``, ``/``, ``=``, NUL, 300 characters, non-ASCII, interpolations), either fails in one line
before anything runs or gives a run whose every file lies under ``<root>/<study>`` and
``<root>/models`` (each Hive segment one ``key=value``)."""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sweep.data.models import artifact_path
from sweep.hydra_config import compose_run, override_error
from sweep.kinds import ABLATION_SETTINGS, KINDS
from sweep.results.shards import RunKey, Shard
from sweep.results.store import ResultStore
from sweep.spec import DatasetSpec, ModelSpec, PathsSpec, RaySpec, RunSpec, SpecError, from_mapping

LOCATIONS = {"dataset.data_dir", "dataset.cache_dir", "dataset.mirrors", "paths.results", "paths.models",
             "ray.address"}
"""Keys whose value is a place the user chooses (a folder read from, the root itself, a cluster),
not a name under the root."""


def string_keys() -> list[tuple[str, tuple[str, ...]]]:
    """(key, the overrides that make it exist) for every string-valued key but the locations."""
    groups = {"": RunSpec, "model.": ModelSpec, "dataset.": DatasetSpec, "ray.": RaySpec, "paths.": PathsSpec}
    keys = [(prefix + f.name, ("dataset.val_fraction=0.1",)) for prefix, cls in groups.items() for f in fields(cls)
            if "str" in str(f.type) or str(f.type) == "Any"]
    keys += [(f"ablation.{f.name}", (f"ablation={name}", "dataset.val_fraction=0.1")) for name, cls in ABLATION_SETTINGS.items()
             for f in fields(cls) if "str" in str(f.type) and f.name != "kind"]
    return sorted({k for k in keys if k[0] not in LOCATIONS})


HOSTILE = st.one_of(
    st.sampled_from(["..", "../x", "../../../../escaped", "/", "/tmp/x", "a/b", "a=b", "model=x", "x/../..", "\x00",
                     "a\x00b", "x" * 300, "é", "名前", ".hidden", "_x", "-x", "a b", "${oc.env:HOME}", "'", '"', "[",
                     ",", "*", "~", "a\nb", "nn_392"]),
    st.text(max_size=30),
)


def quoted(value: str) -> str:
    """A Hydra quoted string holding ``value``."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def planned_files(run: RunSpec) -> list[str]:
    """Every file a run of ``run`` would write: each kind's parts, its manifest entries, its models."""
    store = ResultStore(run.paths.results, run.study)
    models = run.paths.models or os.path.join(run.paths.results, "models")
    files = [os.path.join(store.location, "_manifest.json")]
    for seed in run.seeds:
        key = RunKey(run.dataset.tag, run.model.name, seed)
        files += [store.part_path(Shard(key, kind, "zero", "test", 0, 0, 1)) for kind in KINDS]
        files.append(store._entry_path({"dataset": key.dataset, "model": key.model, "seed": seed}, run.ablation.kind))
        files.append(artifact_path(models, run.model, run.dataset.for_seed(seed), seed))
    return files


def check_under_root(run: RunSpec, root: Path) -> None:
    study, models = root / run.study, root / "models"
    for file in planned_files(run):
        normal = Path(os.path.normpath(file))
        assert study in normal.parents or models in normal.parents, file
        inside = normal.relative_to(study).parts if study in normal.parents else ()
        if inside and inside[0].startswith("kind="):
            assert [segment.count("=") for segment in inside[:-1]] == [1, 1, 1, 1], file
        assert "\x00" not in file


@functools.cache
def defaults(needs: tuple[str, ...], root: str) -> dict:
    """The composed configuration of ``needs`` as plain nested dicts."""
    return dataclasses.asdict(compose_run([*needs, f"paths.results={root}"]))


@pytest.mark.parametrize(("key", "needs"), string_keys(), ids=[k for k, _ in string_keys()])
@settings(max_examples=30, deadline=None)
@given(value=HOSTILE)
def test_a_hostile_value_is_refused_in_one_line_or_stays_under_the_root(key, needs, value):
    """What :func:`sweep.spec.from_mapping` makes of any value (the checks every route shares)."""
    root = Path("/results-root")
    values = copy.deepcopy(defaults(needs, str(root)))
    group, _, name = key.rpartition(".")
    (values[group] if group else values)[name] = value
    try:
        run = from_mapping(values, ABLATION_SETTINGS)
    except SpecError as error:
        assert str(error).strip() and "\n" not in str(error)
        return
    check_under_root(run, root)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(string_keys()), value=HOSTILE)
def test_a_hostile_override_fails_in_one_line_or_stays_under_the_root(key, value, tmp_path):
    """The same through Hydra's grammar, as ``python -m sweep KEY='VALUE'`` meets it."""
    key, needs = key
    override = f"{key}={quoted(value)}"
    problem = override_error([*needs, override])
    if problem is not None:
        assert problem.strip() and "\n" not in problem
        return
    root = tmp_path / "results"
    check_under_root(compose_run([*needs, override, f"paths.results={root}"]), root)


def test_the_keys_that_name_folders_are_fuzzed_and_checked():
    keys = {k for k, _ in string_keys()}
    assert {"study", "model.name", "dataset.label", "dataset.name"} <= keys
    assert override_error(["model.name=" + quoted("../x")]).startswith("model.name='../x' is invalid")
    assert override_error(["dataset.label=" + quoted("a=b")]).startswith("dataset.label='a=b' is invalid")
    assert override_error(["study=" + quoted("x" * 300)]).startswith("study='xxxx")
    assert "300 characters" in override_error(["study=" + quoted("x" * 300)])
