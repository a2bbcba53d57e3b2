"""Read a results folder: studies, the Parquet dataset of one kind, the manifest, models, data.

The only module of :mod:`analysis` that touches files or ``sweep``'s loaders; every other
module works on DataFrames and arrays.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pandas as pd

from sweep import results as results_api
from sweep.data import DatasetSplits, artifact_exists, load_dataset
from sweep.data import load_network as load_artifact
from sweep.kernels import Network, TorchNetwork
from sweep.kinds import KINDS as RESULT_KINDS

KINDS: tuple[str, ...] = tuple(RESULT_KINDS)
"""Result kinds a study may hold, one folder ``kind=<kind>`` each (from :data:`sweep.kinds.KINDS`)."""

RUN_KEYS: list[str] = ["dataset", "model", "seed"]
"""Columns identifying one trained network (the hive partition keys under ``kind=``)."""

Filters = Sequence[tuple[str, str, Any]]


class AnalysisError(ValueError):
    """A results folder that cannot be analysed (missing, empty, ambiguous study, ...)."""


def list_studies(results: str | os.PathLike[str]) -> list[str]:
    """Names of the studies under a results root, sorted (:func:`sweep.results.list_studies`).

    Raises
    ------
    AnalysisError
        If the root does not exist or holds no study.
    """
    studies = results_api.list_studies(os.fspath(results))
    if studies is None:
        raise AnalysisError(f"results folder {os.fspath(results)!r} does not exist")
    if not studies:
        raise AnalysisError(f"results folder {os.fspath(results)!r} holds no study")
    return studies


def resolve_study(results: str | os.PathLike[str], study: str | None = None) -> str:
    """The study to analyse: ``study`` if given and present, else the only one there is.

    Raises
    ------
    AnalysisError
        If ``study`` is absent, or is None while the root holds several studies.
    """
    studies = list_studies(results)
    if study is None and len(studies) == 1:
        return studies[0]
    if study in studies:
        return study
    what = "several studies; choose one with --study" if study is None else f"no study {study!r}"
    raise AnalysisError(f"{os.fspath(results)!r} holds {what} (studies: {', '.join(studies)})")


def load(
    results: str | os.PathLike[str],
    study: str | None = None,
    kind: str = "neuron",
    filters: Filters | None = None,
) -> pd.DataFrame:
    """Rows of one result kind of a study (``sweep.results.read_results``), filters pushed down.

    Parameters
    ----------
    results : path or URI of the results root
    study : str, optional — see :func:`resolve_study`
    kind : one of :data:`KINDS`
    filters : list of (column, op, value), optional — pandas/pyarrow DNF filters, e.g.
        ``[("seed", "=", 0), ("split", "=", "test")]``; partition keys included.

    Returns
    -------
    DataFrame
        ``dataset`` str, ``model`` str, ``seed`` int64, then the file columns of ``kind``
        (see ``.notes/CONTRACTS.md``); ``class_effect`` cells are float arrays.

    Raises
    ------
    AnalysisError
        If the study has no ``kind`` results.
    """
    if kind not in KINDS:
        raise AnalysisError(f"unknown result kind {kind!r}; expected one of {KINDS}")
    study = resolve_study(results, study)
    if not has_kind(results, study, kind):
        raise AnalysisError(f"study {study!r} has no {kind} results (no kind={kind} folder)")
    frame = results_api.read_results(os.fspath(results), study, kind, list(filters) if filters else None)
    leading = [c for c in RUN_KEYS if c in frame.columns]
    frame = frame[leading + [c for c in frame.columns if c not in leading]]
    return frame.astype({"dataset": str, "model": str, "seed": "int64"})


def check_parts(results: str | os.PathLike[str], study: str) -> None:
    """Raise :class:`AnalysisError` naming the first unreadable part of the study, if any (a
    sweep killed while writing leaves none, but a copy or a disk can truncate one).

    Raises
    ------
    AnalysisError
        With the part's path and the fix: rerunning the sweep that wrote it redoes it.
    """
    broken = results_api.ResultStore(os.fspath(results), study).broken_parts()
    if broken:
        more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
        raise AnalysisError(f"{broken[0]}{more} is truncated or corrupt; rerun the sweep that wrote it "
                            "(the same command) to redo it")


def has_kind(results: str | os.PathLike[str], study: str, kind: str) -> bool:
    """Whether the study holds any ``kind`` results."""
    return results_api.ResultStore(os.fspath(results), study).has_kind(kind)


def load_manifest(results: str | os.PathLike[str], study: str | None = None) -> dict[str, Any]:
    """The study's manifest as a dict, merged from its run entries (``runs`` empty when there
    are none)."""
    study = resolve_study(results, study)
    return results_api.ResultStore(os.fspath(results), study).read_manifest()


def runs_table(manifest: dict[str, Any]) -> pd.DataFrame:
    """One row per trained network of the manifest.

    Returns
    -------
    DataFrame
        Columns ``dataset, model, seed, train_accuracy, val_accuracy, test_accuracy``.
    """
    columns = [*RUN_KEYS, "train_accuracy", "val_accuracy", "test_accuracy"]
    rows = [{c: run.get(c) for c in columns} for run in manifest.get("runs", [])]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({"dataset": str, "model": str, "seed": "int64"}).astype(
        {c: "float64" for c in columns[3:]}
    )


def find_run(manifest: dict[str, Any], dataset: str, model: str, seed: int) -> dict[str, Any]:
    """The manifest entry of one trained network.

    Raises
    ------
    AnalysisError
        If the manifest has no such run.
    """
    for run in manifest.get("runs", []):
        if (run["dataset"], run["model"], int(run["seed"])) == (dataset, model, int(seed)):
            return run
    raise AnalysisError(f"manifest has no run {dataset}/{model} seed {seed}")


def has_model(run: dict[str, Any]) -> bool:
    """Whether the run's model artifact is present (local path or URI)."""
    return bool(run.get("model_path")) and artifact_exists(run["model_path"])


def load_network(run: dict[str, Any]) -> Network | TorchNetwork:
    """The run's trained network, through ``sweep.data.models.load_network`` (a torch model's:
    a :class:`~sweep.kernels.torchnet.TorchNetwork`)."""
    return load_artifact(run["model_path"])


def load_data(run: dict[str, Any]) -> DatasetSplits:
    """The run's train/val/test arrays, through ``sweep.data.datasets.load_dataset``."""
    return load_dataset(**run["dataset_params"])
