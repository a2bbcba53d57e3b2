"""Cross-seed and resampling stability of the effect distributions and the harmful sets.

Functions on DataFrames, arrays and a :class:`~sweep.network.Network`; no file I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from analysis.stats import (
    CATEGORIES,
    jaccard,
    match_units,
    matched_agreement,
    pairwise_ks,
    t_interval,
)
from sweep.kernels import ablate_neurons
from sweep.kernels.network import Network

ACROSS_SEEDS: list[str] = ["dataset", "model", "mode", "split", "layer"]
"""Groups compared across seeds."""


def share_intervals(impact: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Mean and t-interval across seeds of each category's share of a layer.

    Parameters
    ----------
    impact : DataFrame — :func:`analysis.impact.impact_table` (``ACROSS_SEEDS``, ``seed``,
        ``pct_<category>``)
    confidence : float

    Returns
    -------
    DataFrame
        One row per ``ACROSS_SEEDS`` group with at least two seeds: ``n_seeds`` and, for each
        category, ``pct_<category>_mean``, ``pct_<category>_low``, ``pct_<category>_high``
        (the t-interval clipped to [0, 100]).
    """
    rows = []
    for key, group in impact.groupby(ACROSS_SEEDS, sort=True):
        if group["seed"].nunique() < 2:
            continue
        row = dict(zip(ACROSS_SEEDS, key), n_seeds=int(group["seed"].nunique()))
        for category in CATEGORIES:
            mean, low, high = t_interval(group[f"pct_{category}"].to_numpy(), confidence)
            row.update({f"pct_{category}_mean": mean, f"pct_{category}_low": max(low, 0.0),
                        f"pct_{category}_high": min(high, 100.0)})
        rows.append(row)
    columns = [*ACROSS_SEEDS, "n_seeds"] + [
        f"pct_{c}_{s}" for c in CATEGORIES for s in ("mean", "low", "high")
    ]
    return pd.DataFrame(rows, columns=columns)


def interval_half_width(n: int, confidence: float = 0.95) -> float:
    """Half-width of the Student-t interval of a mean of ``n`` values, in standard deviations
    of those values: ``t((1 + confidence) / 2, n - 1) / sqrt(n)`` (8.98 for two values at 95 %,
    2.48 for three, 1.24 for five).

    Raises
    ------
    ValueError
        If ``n`` < 2 (no interval from one value).
    """
    if n < 2:
        raise ValueError(f"a t-interval needs at least two values, got {n}")
    return float(stats.t.ppf((1 + confidence) / 2, n - 1) / np.sqrt(n))


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


def bootstrap_harmful(
    net: Network,
    X: np.ndarray,
    y: np.ndarray,
    layer: int,
    mode: str = "zero",
    n_boot: int = 50,
    seed: int = 0,
    reference: np.ndarray | None = None,
) -> BootstrapResult:
    """How stable a layer's harmful set is when the evaluation rows are resampled.

    Every unit's effect is recomputed with ``sweep.kernels.ablate_neurons`` on ``n_boot``
    resamples (with replacement) of ``(X, y)``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) — usually the test split
    y : ndarray of shape (n_samples,)
    layer : int — hidden layer
    n_boot : int — number of resamples
    seed : int — seeds the resampling
    """
    units = np.arange(net.hidden_sizes[layer])
    effect = ablate_neurons(net, X, y, layer, units, mode, reference, metrics="accuracy")["effect"]
    full = effect > 0
    rng = np.random.default_rng(seed)
    harmful = np.empty((n_boot, len(units)), dtype=bool)
    for b in range(n_boot):
        rows = rng.integers(0, len(y), size=len(y))
        harmful[b] = ablate_neurons(net, X[rows], y[rows], layer, units, mode, reference, metrics="accuracy")["effect"] > 0
    overlap = np.array([jaccard(np.flatnonzero(full), np.flatnonzero(h)) for h in harmful])
    table = pd.DataFrame({"unit": units, "effect": effect, "harmful": full,
                          "harmful_frequency": harmful.mean(axis=0)})
    return BootstrapResult(table, overlap)
