"""The paper's impact table: helpful / neutral / harmful neurons per layer, largest gain, FDR."""

from __future__ import annotations

import pandas as pd

from analysis.load import RUN_KEYS
from analysis.stats import CATEGORIES, add_qvalues, categorize

FAMILY_KEYS: list[str] = [*RUN_KEYS, "mode", "split"]
"""One sweep of a run: the family over which the FDR is controlled (all its layers)."""

LAYER_KEYS: list[str] = [*FAMILY_KEYS, "layer"]
"""One row of the impact table."""


def with_categories(df: pd.DataFrame, q: float = 0.05) -> pd.DataFrame:
    """Neuron rows with ``category``, ``q_value`` (BH per family) and ``significant`` columns.

    Parameters
    ----------
    df : DataFrame of neuron rows (``kind=neuron``: ``LAYER_KEYS``, ``unit``, ``effect``,
        ``p_mcnemar``, ...)
    q : float — FDR level

    Returns
    -------
    DataFrame
        A copy of ``df`` plus ``category`` (:data:`~analysis.stats.CATEGORIES`), ``q_value``
        and ``significant`` (``q_value <= q``).
    """
    out = add_qvalues(df, FAMILY_KEYS)
    out["category"] = categorize(out["effect"].to_numpy())
    out["significant"] = out["q_value"] <= q
    return out


def impact_table(df: pd.DataFrame, runs: pd.DataFrame | None = None, q: float = 0.05) -> pd.DataFrame:
    """Per (dataset, model, seed, mode, split, layer): category counts, shares, largest gain.

    Parameters
    ----------
    df : DataFrame of neuron rows (see :func:`with_categories`)
    runs : DataFrame, optional — :func:`analysis.load.runs_table`; adds ``train_accuracy``
    q : float — FDR level of ``n_harmful_fdr``

    Returns
    -------
    DataFrame
        ``LAYER_KEYS``, [``train_accuracy``], ``accuracy_base`` (the unablated network's
        accuracy on the row's split), ``n_units``, ``n_<category>`` and ``pct_<category>``
        (percent of the layer) for each category, ``max_effect`` and ``max_unit`` (the unit
        whose removal gains most, the lowest index on ties; ``<NA>`` when no removal raises
        accuracy), ``n_harmful_fdr`` (harmful neurons with BH q-value <= ``q``).
        Accuracies and effects are fractions.
    """
    rows = with_categories(df, q)
    groups = rows.groupby(LAYER_KEYS, sort=True)
    counts = pd.crosstab(
        [rows[k] for k in LAYER_KEYS], rows["category"]
    ).reindex(columns=list(CATEGORIES), fill_value=0)
    table = pd.DataFrame(
        {"accuracy_base": groups["accuracy_base"].first(), "n_units": groups.size()}
    )
    for category in CATEGORIES:
        table[f"n_{category}"] = counts[category]
    for category in CATEGORIES:
        table[f"pct_{category}"] = 100.0 * table[f"n_{category}"] / table["n_units"]
    best = rows.sort_values([*LAYER_KEYS, "effect", "unit"], ascending=[True] * len(LAYER_KEYS) + [False, True])
    best = best.groupby(LAYER_KEYS, sort=True).head(1).set_index(LAYER_KEYS)
    table["max_effect"] = best["effect"]
    table["max_unit"] = best["unit"].astype("Int64").where(best["effect"] > 0)
    harmful_fdr = rows["significant"] & (rows["category"] == "harmful")
    table["n_harmful_fdr"] = harmful_fdr.groupby([rows[k] for k in LAYER_KEYS]).sum()
    table = table.reset_index()
    if runs is not None:
        table = table.merge(runs[[*RUN_KEYS, "train_accuracy"]], on=RUN_KEYS, how="left")
        front = [*LAYER_KEYS, "train_accuracy"]
        table = table[front + [c for c in table.columns if c not in front]]
    return table


def most_harmful(df: pd.DataFrame) -> pd.DataFrame:
    """The neuron with the largest effect of each family (run, mode, split), over all layers.

    Returns
    -------
    DataFrame
        One row per family: ``FAMILY_KEYS``, ``layer``, ``unit``, ``effect`` (ties: lowest
        layer, then lowest unit).
    """
    ordered = df.sort_values(
        [*FAMILY_KEYS, "effect", "layer", "unit"],
        ascending=[True] * len(FAMILY_KEYS) + [False, True, True],
    )
    best = ordered.groupby(FAMILY_KEYS, sort=True).head(1)
    return best[[*FAMILY_KEYS, "layer", "unit", "effect"]].reset_index(drop=True)
