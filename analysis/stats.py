"""Pure statistics on arrays and DataFrames: the report's levels, categories, FDR,
t-intervals (bounded), KS, matching, overlap, and resampling from per-image outcomes.

The one home of the report's statistical constants (:data:`LEVEL`, :data:`ALPHA`,
:data:`Q`) and of its intervals. No I/O and no models here.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import sparse, stats
from scipy.optimize import linear_sum_assignment

LEVEL: float = 0.95
"""Coverage of every interval of the report."""

ALPHA: float = 0.05
"""Significance level of the report's tests."""

Q: float = 0.05
"""False-discovery rate of the report's Benjamini-Hochberg selections."""

MIN_SEEDS: int = 3
"""Fewest seeds whose t-interval says anything (two values: the mean ± 8.98 SD at 95 %)."""

INFORMATIVE_SEEDS: int = 5
"""Seeds from which a t-interval is narrow (± 1.24 SD at 95 %); fewer get a note."""

PERCENT: tuple[float, float] = (0.0, 100.0)
"""Bounds of a share or an accuracy in %."""

CATEGORIES: tuple[str, ...] = ("helpful", "neutral", "harmful")
"""Effect categories: removal lowers (< 0), keeps (== 0) or raises (> 0) accuracy."""


def categorize(effect: np.ndarray) -> np.ndarray:
    """Category of each ablation effect.

    Parameters
    ----------
    effect : ndarray of shape (n,) — accuracy change on removal

    Returns
    -------
    ndarray of shape (n,), object — elements of :data:`CATEGORIES`
    """
    effect = np.asarray(effect, dtype=float)
    return np.asarray(CATEGORIES, dtype=object)[np.sign(effect).astype(int) + 1]


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), shape ``(n,)`` like ``p``."""
    p = np.asarray(p, dtype=float)
    return stats.false_discovery_control(p, method="bh") if p.size else p.copy()


def add_qvalues(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """``df`` with a ``q_value`` column: BH over ``p_mcnemar`` within each ``by`` group."""
    out = df.copy()
    out["q_value"] = df.groupby(by, sort=False)["p_mcnemar"].transform(bh_qvalues)
    return out


def t_interval(
    values: np.ndarray, level: float = LEVEL, bounds: tuple[float, float] | None = None
) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval of a sample, clipped to what it can be.

    Parameters
    ----------
    values : ndarray of shape (n,), n >= 2
    level : float — coverage
    bounds : (low, high), optional — the quantity's range (e.g. :data:`PERCENT`); the
        interval is clipped to it

    Returns
    -------
    (mean, low, high) : floats; the interval collapses to the mean when the sample is constant.
    """
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        raise ValueError("a t-interval needs at least two values")
    mean = float(values.mean())
    sem = float(stats.sem(values))
    if sem == 0.0:
        return mean, mean, mean
    low, high = stats.t.interval(level, values.size - 1, loc=mean, scale=sem)
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return mean, float(low), float(high)


def interval_half_width(n: int, level: float = LEVEL) -> float:
    """Half-width of the Student-t interval of a mean of ``n`` values, in standard deviations
    of those values: ``t((1 + level) / 2, n - 1) / sqrt(n)`` (8.98 for two values at 95 %,
    2.48 for three, 1.24 for five).

    Raises
    ------
    ValueError
        If ``n`` < 2 (no interval from one value).
    """
    if n < 2:
        raise ValueError(f"a t-interval needs at least two values, got {n}")
    return float(stats.t.ppf((1 + level) / 2, n - 1) / np.sqrt(n))


def grouped_t_interval(
    frame: pd.DataFrame, keys: list[str], value: str, level: float = LEVEL,
    bounds: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """:func:`t_interval` of ``value`` in every group of ``keys``, in one vectorised pass
    (a group of one value, or of equal values, has the mean as its interval).

    Returns
    -------
    DataFrame
        ``keys``, ``mean``, ``low``, ``high``, ``n``.
    """
    grouped = frame.groupby(keys, sort=True, observed=True)[value]
    out = grouped.agg(mean="mean", sd="std", n="size")
    dof = np.maximum(out["n"].to_numpy() - 1, 1)
    half = stats.t.ppf((1 + level) / 2, dof) * out["sd"].to_numpy() / np.sqrt(out["n"].to_numpy())
    half = np.where((out["n"].to_numpy() < 2) | ~(half > 0), 0.0, half)
    low, high = out["mean"] - half, out["mean"] + half
    if bounds is not None:
        low, high = low.clip(lower=bounds[0]), high.clip(upper=bounds[1])
    out["low"], out["high"] = low, high
    return out[["mean", "low", "high", "n"]].reset_index()


def percentile_interval(
    frame: pd.DataFrame, keys: list[str], value: str, level: float = LEVEL
) -> pd.DataFrame:
    """Per group of ``keys``: the mean of ``value``, its central ``level`` percentile
    interval and the group size, in one vectorised pass.

    Returns
    -------
    DataFrame
        ``keys``, ``mean``, ``low``, ``high``, ``n``.
    """
    tail = (1 - level) / 2
    grouped = frame.groupby(keys, sort=True)[value]
    out = grouped.agg(mean="mean", n="size")
    quantiles = grouped.quantile([tail, 1 - tail]).unstack()
    out["low"], out["high"] = quantiles.iloc[:, 0], quantiles.iloc[:, 1]
    return out[["mean", "low", "high", "n"]].reset_index()


def resample_effects(
    ablation: np.ndarray, row: np.ndarray, signed: np.ndarray, n_ablations: int,
    weights: np.ndarray,
) -> np.ndarray:
    """Effects of ablations on weighted copies of the rows, from per-image outcomes.

    An ablation's effect on rows weighted ``w`` (bootstrap counts, a 0/1 half, ...) is
    ``sum(w[row] * signed) / sum(w)`` over the rows whose correctness it changes: exact,
    with no new sweep.

    Parameters
    ----------
    ablation, row, signed : ndarray of shape (m,) — :class:`sweep.kernels.Flips`' ablation,
        row and ``signed()`` (+1 fixed, -1 broken)
    n_ablations : int
    weights : ndarray of shape (n_draws, n_rows) — row weights of each draw

    Returns
    -------
    ndarray of shape (n_draws, n_ablations) — accuracy changes (fractions)
    """
    weights = np.asarray(weights, dtype=float)
    outcomes = sparse.csr_array((np.asarray(signed, float), (ablation, row)),
                                shape=(n_ablations, weights.shape[1]))
    return np.asarray((outcomes @ weights.T).T) / weights.sum(axis=1, keepdims=True)


def bootstrap_weights(n_rows: int, n_draws: int, seed: int = 0) -> np.ndarray:
    """Bootstrap counts of ``n_rows`` rows, shape ``(n_draws, n_rows)``: draw ``b`` resamples
    the rows with replacement (``rng.integers(0, n_rows, n_rows)`` with
    ``np.random.default_rng(seed)``, one draw after the other)."""
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, n_rows, size=n_rows), minlength=n_rows)
                     for _ in range(n_draws)]) if n_draws else np.zeros((0, n_rows))


def pairwise_ks(samples: Mapping[Hashable, np.ndarray]) -> pd.DataFrame:
    """Two-sample Kolmogorov-Smirnov test between every pair of samples.

    Parameters
    ----------
    samples : mapping label -> ndarray of shape (n_label,)

    Returns
    -------
    DataFrame
        Columns ``a, b, ks_statistic, ks_p`` — one row per unordered pair, labels in key order.
    """
    labels = list(samples)
    rows = []
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            result = stats.ks_2samp(samples[a], samples[b])
            rows.append({"a": a, "b": b, "ks_statistic": result.statistic, "ks_p": result.pvalue})
    return pd.DataFrame(rows, columns=["a", "b", "ks_statistic", "ks_p"])


def activation_correlation(act_a: np.ndarray, act_b: np.ndarray) -> np.ndarray:
    """Pearson correlation between every unit of ``a`` and every unit of ``b``.

    Parameters
    ----------
    act_a : ndarray of shape (n_samples, width_a)
    act_b : ndarray of shape (n_samples, width_b) — activations on the same inputs

    Returns
    -------
    ndarray of shape (width_a, width_b); 0 where a unit is constant on the inputs.
    """
    def standardize(a: np.ndarray) -> np.ndarray:
        centred = a - a.mean(axis=0)
        norm = np.linalg.norm(centred, axis=0)
        return centred / np.where(norm > 0, norm, 1.0)

    return standardize(np.asarray(act_a, float)).T @ standardize(np.asarray(act_b, float))


def match_units(act_a: np.ndarray, act_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of units that maximizes the summed activation correlation.

    Hungarian assignment (:func:`scipy.optimize.linear_sum_assignment`) on ``-correlation``.

    Parameters
    ----------
    act_a : ndarray of shape (n_samples, width)
    act_b : ndarray of shape (n_samples, width)

    Returns
    -------
    match : ndarray of shape (width,), int — unit ``i`` of ``a`` is matched to ``match[i]`` of ``b``
    correlation : ndarray of shape (width,) — the matched pairs' correlations
    """
    corr = activation_correlation(act_a, act_b)
    rows, cols = linear_sum_assignment(-corr)
    match = np.empty(corr.shape[0], dtype=np.int64)
    match[rows] = cols
    return match, corr[rows, cols][np.argsort(rows)]


def jaccard(a: Iterable[Hashable], b: Iterable[Hashable]) -> float:
    """``|a ∩ b| / |a ∪ b|`` of two sets; 1.0 when both are empty."""
    a, b = set(a), set(b)
    union = a | b
    return len(a & b) / len(union) if union else 1.0


def matched_agreement(
    effect_a: np.ndarray, effect_b: np.ndarray, match: np.ndarray
) -> dict[str, float]:
    """Agreement of two seeds' unit effects once units are matched.

    Parameters
    ----------
    effect_a : ndarray of shape (width,) — effect of unit ``i`` of seed a
    effect_b : ndarray of shape (width,) — effect of unit ``j`` of seed b
    match : ndarray of shape (width,), int — from :func:`match_units`

    Returns
    -------
    dict
        ``spearman`` (rho between ``effect_a[i]`` and ``effect_b[match[i]]``; NaN when one side
        is constant), ``spearman_p``, ``harmful_a``, ``harmful_b`` (counts) and
        ``harmful_jaccard`` (overlap of the harmful sets, seed b's mapped onto a's units).
    """
    effect_a = np.asarray(effect_a, float)
    paired = np.asarray(effect_b, float)[match]
    constant = np.ptp(effect_a) == 0 or np.ptp(paired) == 0
    rho, p = (np.nan, np.nan) if constant else stats.spearmanr(effect_a, paired)
    return {
        "spearman": float(rho),
        "spearman_p": float(p),
        "harmful_a": int((effect_a > 0).sum()),
        "harmful_b": int((paired > 0).sum()),
        "harmful_jaccard": jaccard(np.flatnonzero(effect_a > 0), np.flatnonzero(paired > 0)),
    }
