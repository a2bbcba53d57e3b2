"""Stability across seeds and test resamples: shares across seeds (bounded t-intervals,
every seed's value), KS between seeds' effect distributions, neurons matched across seeds,
and the bootstrap of each layer's harmful set from per-image outcomes (exact, no new sweep).
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations
from typing import NamedTuple

import numpy as np
import pandas as pd

from analysis.formatting import count, per_seed, value_range
from analysis.sections.base import Page, Section, Table, interval_note, on_test
from analysis.sections.impact import impact_table
from analysis.stats import (
    ALPHA,
    CATEGORIES,
    LEVEL,
    PERCENT,
    bootstrap_weights,
    jaccard,
    match_units,
    matched_agreement,
    pairwise_ks,
    resample_effects,
    t_interval,
)
from analysis.study import NetworkKey, Study, resample_seed
from sweep.kernels import Flips, unit_outputs

ACROSS_SEEDS: list[str] = ["dataset", "model", "mode", "split", "layer"]
"""Groups compared across seeds."""

N_BOOT = 200
"""Bootstrap resamples of the test rows (each a weighted count of per-image outcomes)."""

STABLE = 0.9
"""A harmful neuron is called stable when it stays harmful in this share of resamples."""


def share_intervals(impact: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """Mean, t-interval (clipped to 0-100 %) and every seed's value of each category's share
    of a layer, across seeds.

    Parameters
    ----------
    impact : DataFrame — :func:`analysis.impact.impact_table` (``ACROSS_SEEDS``, ``seed``,
        ``pct_<category>``)
    level : float

    Returns
    -------
    DataFrame
        One row per ``ACROSS_SEEDS`` group with at least two seeds: ``n_seeds`` and, for each
        category, ``pct_<category>_mean``, ``pct_<category>_low``, ``pct_<category>_high``
        (the t-interval clipped to [0, 100]), and ``harmful_per_seed`` (the harmful shares
        in seed order, so a multimodal spread stays visible).
    """
    rows = []
    for key, group in impact.groupby(ACROSS_SEEDS, sort=True):
        if group["seed"].nunique() < 2:
            continue
        group = group.sort_values("seed")
        row = dict(zip(ACROSS_SEEDS, key), n_seeds=int(group["seed"].nunique()))
        for category in CATEGORIES:
            mean, low, high = t_interval(group[f"pct_{category}"].to_numpy(), level, PERCENT)
            row.update({f"pct_{category}_mean": mean, f"pct_{category}_low": low,
                        f"pct_{category}_high": high})
        row["harmful_per_seed"] = per_seed(group["pct_harmful"])
        rows.append(row)
    columns = [*ACROSS_SEEDS, "n_seeds"] + [
        f"pct_{c}_{s}" for c in CATEGORIES for s in ("mean", "low", "high")
    ] + ["harmful_per_seed"]
    return pd.DataFrame(rows, columns=columns)


def seed_ks(df: pd.DataFrame) -> pd.DataFrame:
    """Pairwise two-sample KS tests between seeds' effect distributions, per layer.

    Parameters
    ----------
    df : DataFrame of neuron rows (``ACROSS_SEEDS``, ``seed``, ``effect``)

    Returns
    -------
    DataFrame
        ``ACROSS_SEEDS``, ``seed_a``, ``seed_b``, ``ks_statistic``, ``ks_p``.
    """
    frames = []
    for key, group in df.groupby(ACROSS_SEEDS, sort=True):
        samples = {int(s): g["effect"].to_numpy() for s, g in group.groupby("seed", sort=True)}
        ks = pairwise_ks(samples).rename(columns={"a": "seed_a", "b": "seed_b"})
        frames.append(ks.assign(**dict(zip(ACROSS_SEEDS, key))))
    columns = [*ACROSS_SEEDS, "seed_a", "seed_b", "ks_statistic", "ks_p"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def seed_matching(
    df: pd.DataFrame, activations: Mapping[int, list[np.ndarray]]
) -> pd.DataFrame:
    """Match neurons of every pair of seeds by activation correlation and compare their effects.

    Parameters
    ----------
    df : DataFrame — neuron rows of one (dataset, model, mode, split): ``seed, layer, unit,
        effect``, every unit of each layer present
    activations : mapping seed -> list of ndarray — hidden activations of that seed's network
        on one shared reference set; element ``l`` has shape ``(n_ref, width_l)``

    Returns
    -------
    DataFrame
        ``layer, seed_a, seed_b, mean_correlation`` (of the matched pairs) and the keys of
        :func:`analysis.stats.matched_agreement`; ``harmful_jaccard`` is NaN where neither
        seed has a harmful neuron in the layer (there is no set to compare).
    """
    rows = []
    seeds = sorted(activations)
    for layer in sorted(df["layer"].unique()):
        effects = {
            int(s): g.sort_values("unit")["effect"].to_numpy()
            for s, g in df[df["layer"] == layer].groupby("seed")
        }
        for a, b in combinations([s for s in seeds if s in effects], 2):
            match, corr = match_units(activations[a][layer], activations[b][layer])
            rows.append({"layer": int(layer), "seed_a": a, "seed_b": b,
                         "mean_correlation": float(corr.mean()),
                         **matched_agreement(effects[a], effects[b], match)})
    matched = pd.DataFrame(rows)
    if rows:
        neither = (matched["harmful_a"] == 0) & (matched["harmful_b"] == 0)
        matched["harmful_jaccard"] = matched["harmful_jaccard"].mask(neither)
    return matched


class BootstrapResult(NamedTuple):
    """Resampling stability of one layer's harmful set.

    ``units``: DataFrame with ``unit``, ``effect`` (full sample), ``harmful`` (bool) and
    ``harmful_frequency`` (share of resamples in which the unit is harmful), one row per unit;
    ``jaccard``: ndarray of shape (n_boot,), overlap of each resample's harmful set with the
    full-sample one.
    """

    units: pd.DataFrame
    jaccard: np.ndarray


def bootstrap_harmful(flips: Flips, n_units: int, n_rows: int, n_boot: int = N_BOOT,
                      seed: int = 0) -> BootstrapResult:
    """How stable a layer's harmful set is when the evaluation rows are resampled.

    Each resample (rows drawn with replacement, :func:`~analysis.stats.bootstrap_weights`)
    gives every unit's effect as a weighted count of the images its removal fixes and breaks
    (:func:`~analysis.stats.resample_effects`): exactly what a sweep on the resampled rows
    gives, without one.

    Parameters
    ----------
    flips : Flips — per-image outcomes of every unit of the layer (``ablation`` = unit)
    n_units : int — units of the layer
    n_rows : int — rows the flips were measured on
    n_boot : int — number of resamples
    seed : int — seeds the resampling
    """
    signed = flips.signed()
    full = np.bincount(flips.ablation, weights=signed, minlength=n_units) / n_rows
    effects = resample_effects(flips.ablation, flips.row, signed, n_units,
                               bootstrap_weights(n_rows, n_boot, seed))
    harmful = effects > 0
    chosen = np.flatnonzero(full > 0)
    overlap = np.array([jaccard(chosen, np.flatnonzero(h)) for h in harmful])
    table = pd.DataFrame({"unit": np.arange(n_units), "effect": full, "harmful": full > 0,
                          "harmful_frequency": harmful.mean(axis=0) if n_boot else np.nan})
    return BootstrapResult(table, overlap)


# --------------------------------------------------------------------------- presentation


def bootstrap_table(study: Study, neurons: pd.DataFrame) -> pd.DataFrame:
    """Bootstrap stability of every layer's harmful set, per network and mode, on the test
    split; ``mean_jaccard`` is NaN where the full harmful set is empty."""
    rows = []
    test = neurons[neurons["split"] == "test"]
    for (dataset, model, seed, mode), family in test.groupby(["dataset", "model", "seed", "mode"], sort=True):
        key = NetworkKey(dataset, model, int(seed))
        if study.run(key) is None:
            continue
        net = study.network(key)
        n_rows = len(study.split(key, "test")[1])
        for layer, width in enumerate(net.hidden_sizes):
            result = bootstrap_harmful(study.flips(key, layer, mode, "test", resample_seed(family)), width, n_rows)
            harmful = result.units[result.units["harmful"]]
            rows.append({"dataset": dataset, "model": model, "seed": int(seed), "mode": mode,
                         "layer": layer, "n_harmful": len(harmful),
                         "n_stable": int((harmful["harmful_frequency"] >= STABLE).sum()),
                         "mean_harmful_resampled": float(result.units["harmful_frequency"].sum()),
                         "mean_jaccard": float(result.jaccard.mean()) if len(harmful) else np.nan})
    return pd.DataFrame(rows)


def matching_table(study: Study, neurons: pd.DataFrame) -> pd.DataFrame:
    """Cross-seed matching per (dataset, model, mode, split), activations on the test split
    of the lowest seed's data."""
    frames = []
    for (dataset, model), group in neurons.groupby(["dataset", "model"], sort=True):
        keys = [NetworkKey(dataset, model, int(s)) for s in sorted(group["seed"].unique())]
        keys = [k for k in keys if study.run(k) is not None]
        if len(keys) < 2:
            continue
        X_ref = study.split(keys[0], "test")[0]
        activations = {k.seed: unit_outputs(study.network(k), X_ref) for k in keys}
        for (mode, split), rows in group.groupby(["mode", "split"], sort=True):
            matched = seed_matching(rows, activations)
            frames.append(matched.assign(dataset=dataset, model=model, mode=mode, split=split))
    if not frames:
        return pd.DataFrame()
    matched = pd.concat(frames, ignore_index=True)
    front = ["dataset", "model", "mode", "split"]
    return matched[front + [c for c in matched.columns if c not in front]]


def matching_summary(matched: pd.DataFrame) -> pd.DataFrame:
    """One row per layer: over every pair of seeds, the median (min to max) matched
    correlation, Spearman rho of matched effects and Jaccard of harmful sets."""
    if matched.empty:
        return matched
    keys = ["dataset", "model", "mode", "split", "layer"]

    def spread(values: pd.Series) -> str:
        values = values.dropna()
        return (f"{values.median():.2f} ({value_range(values)})" if len(values) else "–")

    grouped = matched.groupby(keys, sort=True)
    return pd.DataFrame({
        "seed_pairs": grouped.size(),
        "matched_correlation": grouped["mean_correlation"].apply(spread),
        "effect_spearman": grouped["spearman"].apply(spread),
        "harmful_jaccard": grouped["harmful_jaccard"].apply(spread),
    }).reset_index()


def stability_summary(shares: pd.DataFrame, matched: pd.DataFrame, boot: pd.DataFrame) -> list[str]:
    """At most two headlines: whether the seeds agree (matched effects, test split) and how
    many harmful neurons survive resampling of the test images."""
    lines = []
    if not matched.empty:
        rows, split = on_test(matched)
        rho = rows["spearman"].dropna()
        if len(rho):
            lines.append(f"Neurons matched across seeds have effects that agree with Spearman "
                         f"rho {value_range(rho)} ({split}): a neuron's effect is not a "
                         "property its counterpart in another seed shares.")
    if not boot.empty and boot["n_harmful"].sum() > 0:
        stable = int(boot["n_stable"].sum())
        lines.append(
            f"Of {count(int(boot['n_harmful'].sum()), 'harmful neuron')} on the full test "
            f"split, {stable} {'stays' if stable == 1 else 'stay'} harmful in at least "
            f"{100 * STABLE:.0f} % of {N_BOOT} bootstrap resamples of the test images.")
    return lines


def build(study: Study, page: Page) -> list[Section]:
    """Shares across seeds with bounded t-intervals, KS between seeds, matched neurons, and
    the bootstrap of the harmful sets; per-pair detail collapsed."""
    if not study.has("neuron"):
        return []
    df = study.rows("neuron")
    shares = share_intervals(impact_table(df), LEVEL)
    ks = seed_ks(df)
    matched = matching_table(study, df)
    boot = bootstrap_table(study, df)
    paragraphs, tables = [], {}
    if len(shares):
        n_seeds = int(shares["n_seeds"].min())
        tables["seed_shares"] = Table(
            shares,
            "Share of helpful, neutral and harmful neurons in each layer across seeds, in %: "
            f"mean and {100 * LEVEL:.0f} % Student-t interval (clipped to 0-100), and every "
            "seed's harmful share.", interval_note(n_seeds, LEVEL))
    else:
        paragraphs.append("Every network has one seed: there is nothing to compare across seeds.")
    if not ks.empty:
        paragraphs.append(
            f"The seeds' effect distributions differ (two-sample KS p < {ALPHA}) in "
            f"{int((ks['ks_p'] < ALPHA).sum())} of {len(ks)} layer-wise seed pairs (table collapsed).")
        tables["seed_ks"] = Table(ks, "Two-sample Kolmogorov-Smirnov tests between the effect "
                                      "distributions of every pair of seeds, per layer.",
                                  collapsed=True)
    if not matched.empty:
        tables["seed_matching_summary"] = Table(
            matching_summary(matched),
            "Neurons of two seeds matched one to one by activation correlation on the test "
            "images (Hungarian assignment), per layer over every pair of seeds: median (min to "
            "max) of the matched pairs' mean correlation, of the Spearman correlation of their "
            "effects, and of the Jaccard overlap of their harmful sets.")
        tables["seed_matching"] = Table(
            matched, "Every pair of seeds: the matched pairs' mean correlation, the Spearman "
            "correlation of their effects (p-value), each seed's harmful neurons and the Jaccard "
            "overlap of the harmful sets (blank when neither seed has one).", collapsed=True)
    if not boot.empty:
        tables["bootstrap_harmful"] = Table(
            boot,
            f"Each layer's harmful set under {N_BOOT} bootstrap resamples of the test images "
            "(exact, from per-image outcomes): harmful neurons on the full split, those harmful "
            f"in at least {100 * STABLE:.0f} % of the resamples (stable), how many are harmful "
            "in a resample on average, and the mean Jaccard overlap of a resample's harmful set "
            "with the full one (blank when the full set is empty).")
        if (boot["n_harmful"] == 0).all() and (boot["mean_harmful_resampled"] > 0).any():
            paragraphs.append("No layer has a harmful neuron on the full test split, yet "
                              "resampled test images make some harmful: test-set noise.")
    if not tables and not paragraphs:
        return []
    return [Section("Stability across seeds and test resamples", paragraphs, tables, [],
                    stability_summary(shares, matched, boot))]
