"""Analysis of ablation sweeps: impact tables, significance, stability, pruning, figures, report.

Typical use::

    import analysis
    df = analysis.load("results", kind="neuron", filters=[("split", "=", "test")])
    table = analysis.impact_table(df, analysis.runs_table(analysis.load_manifest("results")))
    analysis.write_report("results", out_dir="report")
"""

from analysis.impact import impact_table, most_harmful, with_categories
from analysis.load import (
    AnalysisError,
    list_studies,
    load,
    load_manifest,
    resolve_study,
    runs_table,
)
from analysis.pruning import ablated_network, heldout_pruning, prediction_change
from analysis.report import SECTION_BUILDERS, write_report
from analysis.sections import Figure, Section, Table
from analysis.stability import bootstrap_harmful, seed_ks, seed_matching, share_intervals

__all__ = [
    "SECTION_BUILDERS",
    "AnalysisError",
    "Figure",
    "Section",
    "Table",
    "ablated_network",
    "bootstrap_harmful",
    "heldout_pruning",
    "impact_table",
    "list_studies",
    "load",
    "load_manifest",
    "most_harmful",
    "prediction_change",
    "resolve_study",
    "runs_table",
    "seed_ks",
    "seed_matching",
    "share_intervals",
    "with_categories",
    "write_report",
]
