"""What one neuron's removal can and cannot tell: its effect against test-image noise.

Pure functions (arrays and DataFrames in, arrays and DataFrames out; no I/O, no models):

- :func:`noise_categories`: beside the paper's sign-only category (helpful / neutral /
  harmful), a noise-aware one: helpful or harmful only when the effect is distinguishable from
  test-image noise (the exact McNemar test surviving Benjamini-Hochberg at ``q`` within each
  sweep, or, with ``rule="images"``, a net change of at least ``min_images`` test images),
  else ``indistinguishable``; :func:`category_shares` puts both side by side per layer.
- Per-image outcomes (``Flips``: for every ablation, the test rows whose correctness it
  changes, fixed or broken) make every resample of the test images a weighted count, exact and
  without new sweeps (:func:`analysis.stats.resample_effects`; :func:`flip_counts` keeps fixed
  and broken apart for the McNemar test).
  :func:`split_half_reliability` (random halves of the test split: Spearman between the halves'
  per-neuron effects, Spearman-Brown corrected to the full split) and :func:`bootstrap_categories`
  (how often each neuron keeps its category when the test images are resampled, and the
  bootstrap spread of each layer's shares).
- :func:`variance_components`: how much of a quantity's variance across runs is test-image
  sampling, how much the split, how much the seed.
- :func:`verdict` and :func:`verdict_table`: a published number judged compatible /
  incompatible / inconclusive against a margin stated in advance (equivalence and
  beyond-the-margin one-sided t-tests over seeds, Bonferroni across the table's comparisons,
  ``too few seeds`` below :data:`~analysis.stats.INFORMATIVE_SEEDS`), with a bounded interval
  for bounded quantities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from analysis.stats import (
    ALPHA,
    INFORMATIVE_SEEDS,
    Q,
    bh_qvalues,
    bootstrap_weights,
    categorize,
    jaccard,
    resample_effects,
)
from sweep.kernels import mcnemar_p

NOISE_CATEGORIES: tuple[str, ...] = ("helpful", "indistinguishable", "harmful")
"""Noise-aware categories: removal lowers accuracy (distinguishably), cannot be told from
test-image noise, raises accuracy (distinguishably)."""

NOISE_RULES: tuple[str, ...] = ("fdr", "images")
"""When an effect counts as distinguishable: ``fdr`` (exact McNemar p, BH q-value at most
``q`` within the sweep) or ``images`` (net change of at least ``min_images`` test images)."""

VERDICTS: tuple[str, ...] = ("compatible", "incompatible", "inconclusive", "too few seeds", "not run here")
"""Outcomes of :func:`verdict` (fewer than :data:`~analysis.stats.INFORMATIVE_SEEDS` runs:
``too few seeds``, never a verdict), and ``not run here`` for a published number without runs."""


# =========================================================================== categories


def noise_category(fixed: np.ndarray, broken: np.ndarray, significant: np.ndarray) -> np.ndarray:
    """Noise-aware category of each ablation.

    Parameters
    ----------
    fixed, broken : ndarray of shape (n,), int — test rows the removal makes right / wrong
    significant : ndarray of shape (n,), bool — the effect is distinguishable from noise

    Returns
    -------
    ndarray of shape (n,), object — elements of :data:`NOISE_CATEGORIES`
    """
    net = np.asarray(fixed, dtype=np.int64) - np.asarray(broken, dtype=np.int64)
    sign = np.where(np.asarray(significant, dtype=bool), np.sign(net), 0)
    return np.asarray(NOISE_CATEGORIES, dtype=object)[sign.astype(int) + 1]


def distinguishable(
    fixed: np.ndarray, broken: np.ndarray, *, rule: str = "fdr", q: float = Q, min_images: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Which effects of one family (one BH family: e.g. every neuron of one network's sweep)
    are distinguishable from test-image noise.

    Parameters
    ----------
    fixed, broken : ndarray of shape (n,) — fixed / broken rows (integers, or integer
        resample weights)
    rule : str — one of :data:`NOISE_RULES`
    q : float — FDR level of ``rule="fdr"``
    min_images : int — net images of ``rule="images"``

    Returns
    -------
    (significant, q_value) : ndarrays of shape (n,) — bool, and the BH q-value of the exact
        McNemar p (computed under both rules, for the record)
    """
    if rule not in NOISE_RULES:
        raise ValueError(f"unknown noise rule {rule!r}; expected one of {NOISE_RULES}")
    q_value = bh_qvalues(mcnemar_p(np.asarray(broken).astype(np.int64), np.asarray(fixed).astype(np.int64)))
    if rule == "fdr":
        return q_value <= q, q_value
    net = np.abs(np.asarray(fixed, dtype=np.int64) - np.asarray(broken, dtype=np.int64))
    return net >= min_images, q_value


def noise_categories(
    rows: pd.DataFrame, family: Sequence[str], *, rule: str = "fdr", q: float = Q, min_images: int = 3
) -> pd.DataFrame:
    """Neuron rows with both categories.

    Parameters
    ----------
    rows : DataFrame — neuron rows (``effect``, ``fixed``, ``broken`` and the ``family`` keys)
    family : list of str — the columns of one BH family (e.g. run, mode, split: all layers of
        one sweep)
    rule, q, min_images : see :func:`distinguishable`

    Returns
    -------
    DataFrame
        A copy of ``rows`` plus ``category`` (sign only: helpful / neutral / harmful),
        ``q_value`` and ``noise_category`` (:data:`NOISE_CATEGORIES`).
    """
    out = rows.copy()
    out["category"] = categorize(out["effect"].to_numpy())
    out["q_value"] = np.nan
    out["noise_category"] = ""
    for _, group in out.groupby(list(family), sort=False):
        significant, q_value = distinguishable(
            group["fixed"].to_numpy(), group["broken"].to_numpy(), rule=rule, q=q, min_images=min_images)
        out.loc[group.index, "q_value"] = q_value
        out.loc[group.index, "noise_category"] = noise_category(
            group["fixed"].to_numpy(), group["broken"].to_numpy(), significant)
    return out


def category_shares(categorized: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Both categories' shares per layer, side by side.

    Parameters
    ----------
    categorized : DataFrame — :func:`noise_categories` rows
    keys : list of str — one layer of one sweep (e.g. run, mode, split, layer)

    Returns
    -------
    DataFrame
        ``keys``, ``n_units``, ``pct_helpful``, ``pct_neutral``, ``pct_harmful`` (sign only)
        and ``pct_helpful_noise``, ``pct_indistinguishable``, ``pct_harmful_noise`` (percent
        of the layer).
    """
    keys = list(keys)
    n = categorized.groupby(keys, sort=True).size()
    sign = pd.crosstab([categorized[k] for k in keys], categorized["category"]).reindex(
        index=n.index, columns=["helpful", "neutral", "harmful"], fill_value=0)
    noise = pd.crosstab([categorized[k] for k in keys], categorized["noise_category"]).reindex(
        index=n.index, columns=list(NOISE_CATEGORIES), fill_value=0)
    table = pd.DataFrame({"n_units": n})
    for name in ("helpful", "neutral", "harmful"):
        table[f"pct_{name}"] = 100.0 * sign[name] / n
    for name in NOISE_CATEGORIES:
        column = "pct_indistinguishable" if name == "indistinguishable" else f"pct_{name}_noise"
        table[column] = 100.0 * noise[name] / n
    return table.reset_index()


# =========================================================================== per-image outcomes


def flip_counts(
    ablation: np.ndarray, row: np.ndarray, fixed: np.ndarray, n_ablations: int, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted fixed and broken counts of each ablation under row weights (through
    :func:`analysis.stats.resample_effects`, the one home of the weighted count).

    Parameters
    ----------
    ablation : ndarray of shape (m,), int — which ablation each flip belongs to
    row : ndarray of shape (m,), int — the test row it changes
    fixed : ndarray of shape (m,), bool — True: wrong -> right; False: right -> wrong
        (:class:`sweep.kernels.Flips`)
    n_ablations : int
    weights : ndarray of shape (n_rows,) or (n_resamples, n_rows) — each row's weight (1 for
        the full split, its multiplicity in a bootstrap resample, 0/1 for a half)

    Returns
    -------
    (fixed, broken) : ndarrays of shape (n_ablations,) or (n_resamples, n_ablations)
    """
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    total = w.sum(axis=1, keepdims=True)
    fixed = np.asarray(fixed, dtype=bool)
    counts = [resample_effects(np.asarray(ablation)[side], np.asarray(row)[side], np.ones(int(side.sum())),
                               n_ablations, w) * total for side in (fixed, ~fixed)]
    return (counts[0][0], counts[1][0]) if np.ndim(weights) == 1 else (counts[0], counts[1])


def _row_ranks(values: np.ndarray) -> np.ndarray:
    return stats.rankdata(values, axis=-1)


def _row_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (NaN when one is constant)."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    norm = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, (a * b).sum(axis=-1) / np.where(norm > 0, norm, 1.0), np.nan)


def spearman_brown(r: np.ndarray | float, factor: float = 2.0) -> np.ndarray | float:
    """Reliability of a measurement ``factor`` times as long: ``factor r / (1 + (factor - 1) r)``."""
    return factor * np.asarray(r) / (1 + (factor - 1) * np.asarray(r))


def random_halves(n_rows: int, n_splits: int, seed: int) -> np.ndarray:
    """``n_splits`` random halves of ``n_rows`` rows as 0/1 weights, shape (n_splits, n_rows)
    (the first ``n_rows // 2`` of a random permutation)."""
    rng = np.random.default_rng(seed)
    half = np.zeros((n_splits, n_rows))
    for s in range(n_splits):
        half[s, rng.permutation(n_rows)[: n_rows // 2]] = 1.0
    return half


def split_half_reliability(
    ablation: np.ndarray, row: np.ndarray, fixed: np.ndarray, n_ablations: int, n_rows: int,
    n_splits: int = 100, seed: int = 0,
) -> pd.DataFrame:
    """Split-half reliability of per-ablation effects (e.g. every neuron of one layer).

    The test rows are split into two random halves ``n_splits`` times; each time every
    ablation's effect is measured on each half (:func:`analysis.stats.resample_effects`, exact) and the two
    halves' effects are compared.

    Returns
    -------
    DataFrame
        One row per split: ``split``, ``spearman`` (rho between the halves' effects, NaN when
        one half's are constant), ``spearman_brown`` (its full-length reliability,
        ``2 rho / (1 + rho)``) and ``harmful_jaccard`` (overlap of the halves' harmful sets,
        1 when both are empty).
    """
    first = random_halves(n_rows, n_splits, seed)
    weights = np.concatenate([first, 1.0 - first])
    effects = resample_effects(ablation, row, np.where(fixed, 1.0, -1.0), n_ablations, weights)
    a, b = effects[:n_splits], effects[n_splits:]
    rho = _row_correlation(_row_ranks(a), _row_ranks(b))
    overlap = [jaccard(np.flatnonzero(x > 0), np.flatnonzero(y > 0)) for x, y in zip(a, b)]
    return pd.DataFrame({"split": np.arange(n_splits), "spearman": rho, "spearman_brown": spearman_brown(rho),
                         "harmful_jaccard": overlap})


class BootstrapCategories(NamedTuple):
    """Categories of a family of ablations under a bootstrap of the test images.

    ``units``: DataFrame, one row per ablation: ``category`` and ``noise_category`` on the
    full split, ``category_survival`` and ``noise_survival`` (share of resamples in which it
    keeps that category); ``shares``: DataFrame, one row per resample and group: ``resample,
    group``, ``pct_<category>`` (sign) and ``pct_<category>_noise`` / ``pct_indistinguishable``.
    """

    units: pd.DataFrame
    shares: pd.DataFrame


def bootstrap_categories(
    ablation: np.ndarray, row: np.ndarray, fixed: np.ndarray, groups: np.ndarray, n_rows: int,
    n_boot: int = 200, seed: int = 0, *, rule: str = "fdr", q: float = Q, min_images: int = 3,
) -> BootstrapCategories:
    """How often each ablation keeps its category when the test images are resampled.

    Parameters
    ----------
    ablation, row, fixed : ndarrays of shape (m,) — the family's flips (see :func:`flip_counts`)
    groups : ndarray of shape (n_ablations,) — each ablation's group for the shares (its
        layer); all ablations form one BH family (as in :func:`noise_categories`)
    n_rows : int — rows of the split
    n_boot : int — resamples; seed : int
    rule, q, min_images : see :func:`distinguishable`
    """
    groups = np.asarray(groups)
    n_ablations = len(groups)
    weights = np.concatenate([np.ones((1, n_rows)), bootstrap_weights(n_rows, n_boot, seed)])  # full split first
    n_fixed, n_broken = flip_counts(ablation, row, fixed, n_ablations, weights)
    n_fixed, n_broken = np.rint(n_fixed).astype(np.int64), np.rint(n_broken).astype(np.int64)
    sign = np.empty(n_fixed.shape, dtype=object)
    noise = np.empty(n_fixed.shape, dtype=object)
    for b in range(len(weights)):
        sign[b] = categorize(n_fixed[b] - n_broken[b])
        significant, _ = distinguishable(n_fixed[b], n_broken[b], rule=rule, q=q, min_images=min_images)
        noise[b] = noise_category(n_fixed[b], n_broken[b], significant)
    units = pd.DataFrame({
        "ablation": np.arange(n_ablations), "group": groups, "category": sign[0], "noise_category": noise[0],
        "category_survival": (sign[1:] == sign[0]).mean(axis=0),
        "noise_survival": (noise[1:] == noise[0]).mean(axis=0),
    })
    shares = []
    for group in np.unique(groups):
        at = groups == group
        row_shares = {"resample": np.arange(n_boot), "group": group}
        for name in ("helpful", "neutral", "harmful"):
            row_shares[f"pct_{name}"] = 100.0 * (sign[1:, at] == name).mean(axis=1)
        for name in NOISE_CATEGORIES:
            column = "pct_indistinguishable" if name == "indistinguishable" else f"pct_{name}_noise"
            row_shares[column] = 100.0 * (noise[1:, at] == name).mean(axis=1)
        shares.append(pd.DataFrame(row_shares))
    return BootstrapCategories(units, pd.concat(shares, ignore_index=True))


# =========================================================================== where the spread comes from


def variance_components(
    own_splits: np.ndarray, test_sampling: np.ndarray, fixed_split: np.ndarray | None = None
) -> pd.DataFrame:
    """How much of a quantity's variance across runs is test-image sampling, split and seed.

    Nested design: ``own_splits`` are runs whose seeds each draw their own train/test split
    (their variance holds all three sources); ``fixed_split`` are runs of several seeds on one
    split (their variance is the seed's alone: the test images are the same); ``test_sampling``
    is the bootstrap variance of the quantity within each network (test images resampled,
    weights fixed).

    Parameters
    ----------
    own_splits : ndarray of shape (n,) — the quantity per run, own splits (n >= 2)
    test_sampling : ndarray of shape (k,) — bootstrap variance within each of k networks
    fixed_split : ndarray of shape (n_fixed,), optional — the quantity per seed on one split

    Returns
    -------
    DataFrame
        ``component`` (``total``, ``test sampling``, ``split``, ``seed``, or ``split and
        seed`` without ``fixed_split``), ``variance`` (the remainders clipped at 0),
        ``share`` (of the total, %) and ``sd`` (square root of the variance).
    """
    own_splits = np.asarray(own_splits, dtype=float)
    if own_splits.size < 2:
        raise ValueError(f"variance across runs needs at least two runs, got {own_splits.size}")
    total = float(own_splits.var(ddof=1))
    sampling = float(np.mean(test_sampling))
    rows = [("total", total), ("test sampling", sampling)]
    if fixed_split is not None and np.size(fixed_split) >= 2:
        seed = float(np.var(np.asarray(fixed_split, dtype=float), ddof=1))
        rows += [("split", max(total - sampling - seed, 0.0)), ("seed", seed)]
    else:
        rows += [("split and seed", max(total - sampling, 0.0))]
    table = pd.DataFrame(rows, columns=["component", "variance"])
    table["share"] = 100.0 * table["variance"] / total if total > 0 else np.nan
    table["sd"] = np.sqrt(table["variance"])
    return table


# =========================================================================== verdicts


def verdict(
    values: np.ndarray,
    published: float,
    margin: float,
    *,
    alpha: float = ALPHA,
    n_comparisons: int = 1,
    bounds: tuple[float, float] | None = None,
    published_runs: float = 1.0,
    min_seeds: int = INFORMATIVE_SEEDS,
) -> dict[str, Any]:
    """A published number against our runs: compatible, incompatible or inconclusive.

    The published number is one run (``published_runs``) of a setup whose mean may differ
    from ours; the question is whether the two setups' means are within ``margin`` of each
    other. The difference ``published - mean`` has standard error
    ``sd * sqrt(1 / n + 1 / published_runs)`` with ``n - 1`` degrees of freedom. With
    ``a = alpha / n_comparisons`` (Bonferroni across a table's comparisons):

    - ``compatible``: both one-sided tests of the equivalence test (TOST) reject a difference
      beyond ``margin`` at level ``a`` (the ``1 - 2a`` interval lies inside the band
      ``published ± margin``);
    - ``incompatible``: the one-sided test that our mean lies beyond the margin on the side it
      falls rejects at level ``a`` (the interval lies outside the band);
    - ``inconclusive``: neither;
    - ``too few seeds``: fewer than ``min_seeds`` runs (the interval is still given from 2).

    Parameters
    ----------
    values : ndarray of shape (n,) — the quantity per run (seed)
    published : float; margin : float — in the quantity's unit, stated before any run
    bounds : (low, high), optional — what the quantity can be (shares, accuracies: (0, 100)):
        the interval and the margin's band are clipped to it, and a band edge at a bound
        holds by itself (an accuracy of 100 % cannot lie above 99.78 + 0.3). Near a bound the
        runs pile up and the t-based tests are approximate; the clipped interval says so by
        its shape.

    Returns
    -------
    dict
        ``n_seeds, mean, low, high`` (the ``1 - 2a`` interval ``mean ± t se``, inside
        ``bounds``: where the published run's setup would have to lie for the two to agree),
        ``width``, ``band_low, band_high``, ``p_equivalent`` (the larger TOST
        p), ``p_beyond`` (one-sided p of a difference beyond the margin), ``alpha`` (the
        corrected level) and ``verdict`` (:data:`VERDICTS`).
    """
    values = np.asarray(values, dtype=float)
    n = values.size
    a = alpha / max(n_comparisons, 1)
    band = (published - margin, published + margin)
    if bounds is not None:
        band = (max(band[0], bounds[0]), min(band[1], bounds[1]))
    out: dict[str, Any] = {"n_seeds": n, "mean": float(values.mean()) if n else np.nan, "low": np.nan,
                           "high": np.nan, "width": np.nan, "band_low": band[0], "band_high": band[1],
                           "p_equivalent": np.nan, "p_beyond": np.nan, "alpha": a}
    if n < 2:
        return {**out, "verdict": "too few seeds"}
    lo_band, hi_band = band
    mean = float(values.mean())
    se = float(values.std(ddof=1)) * np.sqrt(1.0 / n + 1.0 / published_runs)
    t = stats.t(n - 1)
    half = float(t.ppf(1 - a)) * se
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = float(np.clip(low, *bounds)), float(np.clip(high, *bounds))
    if se > 0:
        p_above_low = float(t.sf((mean - lo_band) / se))  # H0: mean <= band low
        p_below_high = float(t.cdf((mean - hi_band) / se))  # H0: mean >= band high
        p_beyond = float(min(t.sf((mean - hi_band) / se), t.cdf((mean - lo_band) / se)))
    else:
        p_above_low = 0.0 if mean > lo_band else 1.0
        p_below_high = 0.0 if mean < hi_band else 1.0
        p_beyond = 0.0 if not lo_band <= mean <= hi_band else 1.0
    if bounds is not None:  # a band edge at the bound holds by itself: nothing lies beyond it
        p_above_low = 0.0 if band[0] <= bounds[0] else p_above_low
        p_below_high = 0.0 if band[1] >= bounds[1] else p_below_high
    p_equivalent = max(p_above_low, p_below_high)
    out.update(low=low, high=high, width=high - low, p_equivalent=p_equivalent, p_beyond=p_beyond)
    if n < min_seeds:
        return {**out, "verdict": "too few seeds"}
    result = "compatible" if p_equivalent < a else "incompatible" if p_beyond < a else "inconclusive"
    return {**out, "verdict": result}


def verdict_half_width(n: int, alpha: float = ALPHA, published_runs: float = 1.0) -> float:
    """Half-width of :func:`verdict`'s interval in standard deviations of the runs:
    ``t(1 - alpha, n - 1) * sqrt(1 / n + 1 / published_runs)``; what ``n`` seeds can resolve."""
    if n < 2:
        raise ValueError(f"an interval needs at least two runs, got {n}")
    return float(stats.t.ppf(1 - alpha, n - 1) * np.sqrt(1.0 / n + 1.0 / published_runs))


def verdict_table(
    comparisons: pd.DataFrame, *, alpha: float = ALPHA, min_seeds: int = INFORMATIVE_SEEDS, published_runs: float = 1.0
) -> pd.DataFrame:
    """:func:`verdict` for every row of a table of comparisons, Bonferroni across the rows
    that have at least ``min_seeds`` runs.

    Parameters
    ----------
    comparisons : DataFrame — one row per comparison: ``values`` (ndarray of the runs; empty:
        not run), ``published``, ``margin``, ``bounds`` (tuple or None), plus any
        identifying columns (kept)

    Returns
    -------
    DataFrame
        The identifying columns, ``published``, ``margin`` and :func:`verdict`'s keys;
        ``verdict`` is ``not run here`` where there are no runs, and ``n_comparisons`` the
        size of the correction's family.
    """
    judged = int(sum(len(v) >= min_seeds for v in comparisons["values"]))
    rows = []
    for record in comparisons.to_dict("records"):
        values = np.asarray(record.pop("values"), dtype=float)
        bounds = record.pop("bounds")
        if values.size == 0:
            rows.append({**record, "n_seeds": 0, "verdict": "not run here"})
            continue
        rows.append({**record, **verdict(values, record["published"], record["margin"], alpha=alpha,
                                         n_comparisons=judged, bounds=bounds,
                                         published_runs=published_runs, min_seeds=min_seeds)})
    table = pd.DataFrame(rows)
    table["n_comparisons"] = judged
    return table
