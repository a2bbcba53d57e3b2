"""What a sweep found, in a few lines: the table and text printed when it ends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from sweep import storage


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


def category_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Helpful / neutral / harmful counts per (dataset, model, seed, mode, split, layer)."""
    keys = ["dataset", "model", "seed", "mode", "split", "layer"]
    if df.empty:
        return pd.DataFrame(columns=[*keys, "helpful", "neutral", "harmful"])
    category = np.select([df["effect"] < 0, df["effect"] > 0], ["helpful", "harmful"], "neutral")
    table = df.assign(category=category).pivot_table(
        index=keys, columns="category", values="effect", aggfunc="size", fill_value=0, observed=True
    )
    return table.reindex(columns=["helpful", "neutral", "harmful"], fill_value=0).reset_index()


def curve_areas(df: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy over each cumulative curve (its normalised area), per seed, scope and order."""
    keys = ["dataset", "model", "seed", "mode", "split", "scope", "order"]
    return df.groupby(keys, observed=True)["accuracy"].mean().rename("mean_accuracy").reset_index()


SUMMARIES: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "neuron": category_counts,
    "synapse": category_counts,
    "cumulative": curve_areas,
}
"""The summary table of each result kind."""

TABLE_TITLES = {
    "neuron": "helpful (effect < 0) / neutral (= 0) / harmful (> 0) neurons per seed and layer:",
    "synapse": "helpful (effect < 0) / neutral (= 0) / harmful (> 0) synapses per seed and weight matrix:",
    "cumulative": "mean accuracy over each cumulative-ablation curve (higher: the order hurts less):",
}


def format_summary(summary: SweepSummary) -> str:
    """Counts per seed and layer, where the results are, and how to read them."""
    lines = [f"{summary.rows_written} {summary.kind} ablations computed this run "
             f"(train {summary.seconds.get('train', 0):.1f} s, ablate {summary.seconds.get('ablate', 0):.1f} s)"]
    for r in summary.runs:
        lines.append(f"  {r['dataset']}/{r['model']} seed {r['seed']}: train accuracy {r['train_accuracy']:.4f}, "
                     f"test accuracy {r['test_accuracy']:.4f}, {r['n_iter']} iterations")
    if not summary.table.empty:
        lines.append(TABLE_TITLES[summary.kind])
        lines.append(summary.table.to_string(index=False))
    lines.append(f"results: {summary.results}")
    lines.append(f"read them: pandas.read_parquet({storage.join(summary.results, 'kind=' + summary.kind)!r})")
    return "\n".join(lines)
