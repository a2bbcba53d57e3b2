"""What a sweep found, in a few lines: the table and text printed when it ends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from sweep.kinds import KINDS
from sweep.results import storage


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep did: where its results are and a small table of what it found
    (category counts per layer for neurons and synapses, curve areas for cumulative)."""

    results: str
    kind: str
    table: pd.DataFrame
    rows_written: int
    seconds: dict[str, float]
    runs: list[dict[str, Any]]
    rows_reused: int = 0


def format_summary(summary: SweepSummary) -> str:
    """Counts per seed and layer, where the results are, and how to read them."""
    kind = KINDS[summary.kind]
    lines = [f"{summary.rows_reused:,} {kind.name} ablations reused, {summary.rows_written:,} computed "
             f"(train {summary.seconds.get('train', 0):.1f} s, ablate {summary.seconds.get('ablate', 0):.1f} s)"]
    for r in summary.runs:
        lines.append(f"  {r['dataset']}/{r['model']} seed {r['seed']}: train accuracy {r['train_accuracy']:.4f}, "
                     f"test accuracy {r['test_accuracy']:.4f}, {r['n_iter']} iterations")
    if not summary.table.empty:
        lines.append(kind.summary_title)
        lines.append(summary.table.to_string(index=False))
    lines.append(f"results: {summary.results}")
    lines.append(f"read them: pandas.read_parquet({storage.join(summary.results, 'kind=' + kind.name)!r})")
    return "\n".join(lines)
