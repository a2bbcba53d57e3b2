"""Result kinds: one module each, one registry.

Adding a kind is one module (its columns, settings, planner, routine, summary; see
:mod:`sweep.kinds.base`), one line in :data:`_MODULES`, and one YAML in ``conf/ablation/``
when it has an ``ablation=`` of its own. Everything else (allowed ``ablation.kind`` values,
Parquet schemas, fingerprints, summaries, the worker's dispatch, analysis' list of kinds)
derives from the two tables below.
"""

from __future__ import annotations

import pyarrow as pa

from sweep.kinds import cumulative, knockout, neuron, pair, pruning, synapse, unit
from sweep.kinds.base import Ablation, AblationSettings, ResultKind
from sweep.kinds.knockout import KNOCKOUT_KEYS, knockout_sets
from sweep.kinds.pruning import WITHIN_PP, removable_fractions
from sweep.kinds.unit import statistics_split
from sweep.results.store import PARTITIONING

_MODULES = (neuron, synapse, unit, cumulative, pruning, pair, knockout)
"""Every kind module, in the order kinds are listed."""

KINDS: dict[str, ResultKind] = {m.KIND.name: m.KIND for m in _MODULES}
"""Result kinds by partition name (``kind=<name>``)."""

ABLATIONS: dict[str, Ablation] = {m.ABLATION.name: m.ABLATION for m in _MODULES if hasattr(m, "ABLATION")}
"""``ablation=<name>`` choices: each one's settings and the kinds it writes."""

ABLATION_SETTINGS: dict[str, type[AblationSettings]] = {name: a.settings for name, a in ABLATIONS.items()}
"""Each ``ablation=<name>``'s settings class, as :func:`sweep.spec.from_mapping` takes them."""

SCHEMAS = {name: kind.schema for name, kind in KINDS.items()}
"""Each kind's Parquet schema (derived from its columns), as :class:`~sweep.results.ResultStore` takes them."""

STUDY_SCHEMA = pa.unify_schemas([*SCHEMAS.values(), pa.schema([("kind", pa.string())]), PARTITIONING.schema])
"""Every column of every kind plus the Hive keys. Parts written since release 0.2 carry every
kind's columns (the others null), so a reader's defaults see them all; a study written by an
earlier release reads whole with it: ``pandas.read_parquet(study, schema=STUDY_SCHEMA)``,
``pyarrow.dataset.dataset(study, partitioning="hive", schema=STUDY_SCHEMA)``."""

__all__ = [
    "ABLATIONS",
    "ABLATION_SETTINGS",
    "KINDS",
    "KNOCKOUT_KEYS",
    "SCHEMAS",
    "STUDY_SCHEMA",
    "WITHIN_PP",
    "Ablation",
    "AblationSettings",
    "ResultKind",
    "knockout_sets",
    "removable_fractions",
    "statistics_split",
]
