"""Pure statistics on arrays and DataFrames: categories, FDR, t-intervals, KS, matching, overlap.

No I/O and no models here.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import stats
from scipy.optimize import linear_sum_assignment

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


def t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval of a sample.

    Parameters
    ----------
    values : ndarray of shape (n,), n >= 2

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
    low, high = stats.t.interval(confidence, values.size - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


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
