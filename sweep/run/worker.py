"""What a worker does with one shard: compute its rows through its kind's routine and write
its part. No Ray here: executors ship :func:`run_shard` to workers, tests call it in-process."""

from __future__ import annotations

import time
from typing import Any

from sweep.kinds import KINDS
from sweep.kinds.base import DataArrays, ModelInputs
from sweep.results.shards import Shard
from sweep.results.store import ResultStore, to_table


def run_shard(
    shard: Shard, model: ModelInputs, data: DataArrays, store: ResultStore, metadata: dict[str, Any]
) -> tuple[str, int, float]:
    """Compute one shard and write its part; returns (shard id, rows, seconds)."""
    start = time.perf_counter()
    kind = KINDS[shard.kind]
    constants = {"mode": shard.mode, "split": shard.split, "selection": shard.selection}
    table = to_table(kind.schema, kind.compute(shard, model, data), {c: constants[c] for c in kind.constants})
    store.write_part(shard, table, metadata)
    return shard.id, table.num_rows, time.perf_counter() - start
