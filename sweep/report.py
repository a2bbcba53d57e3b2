"""The short text summary printed at the end of a sweep."""

from __future__ import annotations

from sweep.pipeline import SweepSummary


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
    lines.append(f"read them: pandas.read_parquet({summary.results + '/kind=' + summary.kind!r})")
    return "\n".join(lines)
