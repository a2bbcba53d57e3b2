"""Analysis of ablation sweeps: a study loaded once, report sections, figures, the report.

Typical use::

    import analysis
    study = analysis.Study.open("results")              # the only study there, checked
    neurons = study.rows("neuron", split="test")        # rows of one kind, read once
    table = analysis.impact_table(neurons, study.runs)  # the paper's table
    analysis.write_report("results", out_dir="report")  # every section; failures boxed
"""

from analysis.load import AnalysisError, list_studies, load, load_manifest, resolve_study, runs_table
from analysis.report import ReportResult, write_report
from analysis.sections import SECTIONS, Topic
from analysis.sections.base import Figure, Section, Table
from analysis.sections.harmful import most_harmful_table
from analysis.sections.impact import impact_table, with_categories
from analysis.study import NetworkKey, Study

__all__ = [
    "SECTIONS",
    "AnalysisError",
    "Figure",
    "NetworkKey",
    "ReportResult",
    "Section",
    "Study",
    "Table",
    "Topic",
    "impact_table",
    "list_studies",
    "load",
    "load_manifest",
    "most_harmful_table",
    "resolve_study",
    "runs_table",
    "with_categories",
    "write_report",
]
