"""Results on disk: storage (local folders and pyarrow filesystem URIs), Parquet parts
(atomic, fingerprinted, Hive-partitioned), and the study manifest.

The one API through which results are written (the pipeline and its workers) and read
(:mod:`analysis`, users): :class:`ResultStore` and :func:`read_results`; what made a study's
numbers (:mod:`~sweep.results.provenance`: versions, commit, BLAS code path).
"""

from sweep.results.provenance import environment, source_commit, versions
from sweep.results.store import RUNS_DIR, ResultStore, StoreError, list_studies, read_results, to_table

__all__ = [
    "RUNS_DIR", "ResultStore", "StoreError", "environment", "list_studies", "read_results", "source_commit",
    "to_table", "versions",
]
