"""Results on disk: storage (local folders and pyarrow filesystem URIs), Parquet parts
(atomic, fingerprinted, Hive-partitioned), and the study manifest.

The one API through which results are written (the pipeline and its workers) and read
(:mod:`analysis`, users): :class:`ResultStore` and :func:`read_results`.
"""

from sweep.results.store import RUNS_DIR, ResultStore, StoreError, list_studies, read_results, to_table

__all__ = ["RUNS_DIR", "ResultStore", "StoreError", "list_studies", "read_results", "to_table"]
