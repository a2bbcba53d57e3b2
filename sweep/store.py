"""The results API under its first-release name: ``from sweep.store import read_results``
keeps working. Everything lives in :mod:`sweep.results`; this module only re-exports it."""

from sweep.results import RUNS_DIR, ResultStore, StoreError, read_results, to_table

__all__ = ["RUNS_DIR", "ResultStore", "StoreError", "read_results", "to_table"]
