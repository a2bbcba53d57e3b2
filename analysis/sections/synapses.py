"""Single-synapse removal (``kind=synapse``): per weight matrix, how many of the swept
synapses are helpful, neutral and harmful, and the largest gain (ties named)."""

from __future__ import annotations

import pandas as pd

from analysis.formatting import count, in_units, listing, value_range
from analysis.sections.base import Page, Section, Table, on_test
from analysis.stats import CATEGORIES, categorize
from analysis.study import Study

MATRIX_KEYS: list[str] = ["dataset", "model", "seed", "mode", "split", "selection", "layer"]
"""One swept weight matrix of one network (``layer``: the matrix, 0 = input -> first hidden)."""


def synapse_table(synapses: pd.DataFrame) -> pd.DataFrame:
    """Per swept weight matrix: synapses, the share of each category, the largest gain and
    the synapses (``source->target``) that tie for it.

    Returns
    -------
    DataFrame
        ``MATRIX_KEYS`` present, ``n_synapses``, ``pct_<category>`` per category,
        ``max_effect`` (a fraction) and ``max_synapses`` (blank when no removal gains).
    """
    keys = [k for k in MATRIX_KEYS if k in synapses.columns]
    rows = []
    for key, group in synapses.groupby(keys, sort=True):
        category = categorize(group["effect"].to_numpy())
        best = group["effect"].max()
        top = group[group["effect"] == best]
        rows.append({**dict(zip(keys, key)), "n_synapses": len(group),
                     **{f"pct_{c}": 100.0 * (category == c).mean() for c in CATEGORIES},
                     "max_effect": best,
                     "max_synapses": listing([f"{s}->{t}" for s, t in zip(top["source"], top["target"])])
                     if best > 0 else ""})
    return pd.DataFrame(rows)


def build(study: Study, page: Page) -> list[Section]:
    """Single-synapse removal, one row per swept weight matrix."""
    if not study.has("synapse"):
        return []
    table = synapse_table(study.rows("synapse"))
    rows, split = on_test(table)
    summary = [f"Harmful synapses (removal alone raises {split} accuracy): "
               f"{value_range(rows['pct_harmful'], 1)} % of the swept synapses of each of "
               f"{count(len(rows), 'weight matrix', 'weight matrices')}."]
    caption = ("Single-synapse removal per network, split and weight matrix (layer 0: input to "
               "the first hidden layer; the last: into the output): synapses swept, the share "
               "whose removal lowers / keeps / raises accuracy, the largest gain and the "
               "synapses (source->target) giving it, ties listed.")
    return [Section("Single-synapse removal", [],
                    {"synapses": Table(in_units(table, pp=["max_effect"]), caption)}, [], summary)]
