"""An in-process executor for tests: the real pipeline, kinds and kernels, without Ray.

``python -m sweep`` always runs on Ray; tests that need many real sweeps (the property test
of the report) swap this one in with :func:`serial_sweeps`, so each sweep costs its
training and kernels only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest

from sweep.data.models import train_and_save
from sweep.run import pipeline
from sweep.run.executor import ShardInputs, TrainJob
from sweep.run.worker import run_shard


class SerialExecutor:
    """:class:`sweep.run.executor.Executor` in this process, one thing after another."""

    def put(self, value: Any) -> Any:
        return value

    def train(self, jobs: list[TrainJob], data: Mapping[Any, Any], progress: bool) -> dict[Any, Any]:
        return {job.run: train_and_save(job.model, job.dataset, data[job.run].splits, job.seed,
                                        job.path, 1) for job in jobs}

    def run_shards(self, shards: list, inputs: dict[Any, ShardInputs], store: Any,
                   metadata: dict[Any, dict[str, Any]], progress: bool) -> int:
        return sum(run_shard(s, inputs[s.run].model, inputs[s.run].data, store, metadata[s.run])[1]
                   for s in shards)


@contextmanager
def serial_sweeps(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Within the block, :func:`sweep.run.pipeline.run` runs on a :class:`SerialExecutor`."""
    with monkeypatch.context() as patch:
        patch.setattr(pipeline.executors, "connect", lambda spec, name="ray": SerialExecutor())
        yield
