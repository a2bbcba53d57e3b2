"""The executor seam: what the pipeline needs from whatever runs its work.

An executor places shared inputs once (:meth:`Executor.put`), trains models
(:meth:`Executor.train`) and runs shards (:meth:`Executor.run_shards`), each shard through
:func:`sweep.run.worker.run_shard`. :data:`EXECUTORS` names the implementations; the Ray one
(:mod:`sweep.run.ray_executor`) is the only module that imports ``ray``, and it is imported
only when a sweep starts (after the configuration has been validated).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sweep.data.models import ModelArtifact
from sweep.results.shards import RunKey, Shard
from sweep.results.store import ResultStore

if TYPE_CHECKING:
    from sweep.spec import DatasetSpec, ModelSpec, RaySpec


class ExecutionError(RuntimeError):
    """A sweep could not run: the executor is unreachable, or a task failed for good."""


@dataclass(frozen=True)
class TrainJob:
    """One model to train: its settings, its seed and where its artifact goes."""

    run: RunKey
    model: ModelSpec
    dataset: DatasetSpec
    seed: int
    path: str


@dataclass(frozen=True)
class ShardInputs:
    """Handles (as returned by :meth:`Executor.put`) of what a model's shards need."""

    model: Any
    data: Any


class Executor(Protocol):
    """What runs a sweep's work."""

    def put(self, value: Any) -> Any:
        """Place a value where every task can read it, once; returns its handle."""

    def train(self, jobs: list[TrainJob], data: Mapping[RunKey, Any], progress: bool) -> dict[RunKey, ModelArtifact]:
        """Train every job on the dataset behind its run's handle in ``data`` (showing each
        model's iterations when ``progress``); returns each run's artifact."""

    def run_shards(self, shards: list[Shard], inputs: dict[RunKey, ShardInputs], store: ResultStore,
                   metadata: dict[RunKey, dict[str, Any]], progress: bool) -> int:
        """Run every shard, each writing its part; returns the rows written."""


EXECUTORS: dict[str, str] = {"ray": "sweep.run.ray_executor"}
"""Executor name -> module with ``connect(ray_spec) -> Executor`` and ``shutdown()``."""


def connect(spec: RaySpec, name: str = "ray") -> Executor:
    """Start or join the executor ``name`` (imported only now)."""
    return importlib.import_module(EXECUTORS[name]).connect(spec)


def shutdown() -> None:
    """Stop whatever executor this process started (its module's ``shutdown()``), if any."""
    for module in EXECUTORS.values():
        if module in sys.modules:
            sys.modules[module].shutdown()
