"""Unit pairs (``kind=pair``): interactions, redundant and cancelling pairs, report section.

A pair's interaction is ``effect_ab - effect_a - effect_b`` (accuracy units): 0 when removing
both units costs what removing each costs alone ("independent"), negative when removing both
is worse than the sum (``redundant``: either unit covers for the other), and a pair is
``cancelling`` when removing both is better than removing either alone. Everything is read
on test. Tables are functions of ``kind=pair`` rows; figures draw on the Axes they are given;
:func:`build` presents them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from analysis import figures as fig
from analysis.formatting import in_units, number, pp
from analysis.sections.base import (
    Figure,
    Page,
    Section,
    Table,
    family_label,
    figure_slug,
    interval_note,
)
from analysis.stats import LEVEL, Q, add_qvalues, t_interval
from analysis.study import Study

TOP = 10
"""Pairs listed in each of the most-redundant and most-cancelling tables."""

FAMILY: list[str] = ["dataset", "model", "mode"]
"""Columns identifying one family of pair sweeps (every seed of one network kind)."""

RUN: list[str] = [*FAMILY, "seed", "split"]
"""Columns identifying the pairs of one run, over which the FDR is controlled."""

PAIR: list[str] = ["layer_a", "unit_a", "layer_b", "unit_b"]


def classify(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``redundant`` (interaction < 0), ``cancelling`` (effect above both single
    effects), ``gain`` (effect minus the better single effect) and ``q_value`` (BH over the
    pairs' McNemar p within each run, :data:`RUN`)."""
    out = add_qvalues(df, [c for c in RUN if c in df.columns])
    best_single = np.maximum(out["effect_a"], out["effect_b"])
    return out.assign(redundant=out["interaction"] < 0, cancelling=out["effect"] > best_single,
                      gain=out["effect"] - best_single)


def pair_shares(df: pd.DataFrame) -> pd.DataFrame:
    """Per run on test: pairs, shares of redundant and cancelling pairs, pairs whose joint
    removal changes accuracy significantly (BH q < :data:`Q`), mean interaction.

    Returns
    -------
    DataFrame
        :data:`FAMILY`, ``seed, pairs, redundant, cancelling, significant`` (shares of the
        pairs, 0..1), ``mean_interaction``.
    """
    test = classify(df[df["split"] == "test"])
    return test.groupby([*FAMILY, "seed"], sort=True, observed=True).agg(
        pairs=("interaction", "size"), redundant=("redundant", "mean"), cancelling=("cancelling", "mean"),
        significant=("q_value", lambda q: float(np.mean(q < Q))), mean_interaction=("interaction", "mean"),
    ).reset_index()


def share_stability(shares: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """Across seeds, per family: mean and t-interval of the redundant and cancelling shares
    (a single seed gives its value as mean, low and high).

    Returns
    -------
    DataFrame
        :data:`FAMILY`, ``seeds``, and ``<share>, <share>_low, <share>_high`` for ``redundant``
        and ``cancelling``.
    """
    rows = []
    for key, family in shares.groupby(FAMILY, sort=True, observed=True):
        row = {**dict(zip(FAMILY, key)), "seeds": len(family)}
        for share in ("redundant", "cancelling"):
            values = family[share].to_numpy()
            mean, low, high = (t_interval(values, level, (0.0, 1.0)) if len(values) > 1
                               else (values[0],) * 3)
            row.update({share: mean, f"{share}_low": low, f"{share}_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def extreme_pairs(df: pd.DataFrame, top: int = TOP) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per family, the ``top`` most redundant pairs on test (lowest interaction) and the
    ``top`` most cancelling ones (largest gain over the better single removal), over seeds.

    Returns
    -------
    (redundant, cancelling) : DataFrames of :data:`FAMILY`, ``seed``, the pair, ``effect_a,
    effect_b, effect, interaction, gain, p_mcnemar, q_value``.
    """
    test = classify(df[df["split"] == "test"])
    columns = [*FAMILY, "seed", *PAIR, "effect_a", "effect_b", "effect", "interaction", "gain", "p_mcnemar",
               "q_value"]
    order = [*FAMILY, *PAIR]
    redundant = test[test["redundant"]].sort_values([*order[:3], "interaction", *order[3:]], kind="stable")
    cancelling = test[test["cancelling"]].sort_values([*order[:3], "gain", *order[3:]], kind="stable",
                                                      ascending=[True] * 3 + [False] + [True] * 4)
    return tuple(t.groupby(FAMILY, sort=True, observed=True).head(top)[columns].reset_index(drop=True)
                 for t in (redundant, cancelling))


def interaction_matrix(rows: pd.DataFrame, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """The symmetric interaction matrix of one run's pairs within hidden layer ``layer``,
    units ordered by their single effect (most harmful to remove first; ties: unit index).

    Parameters
    ----------
    rows : DataFrame — one run's pair rows (one seed, mode and split)

    Returns
    -------
    (matrix, units) : ndarray of shape (m, m) (diagonal NaN) and the unit of each row, (m,)
    """
    within = rows[(rows["layer_a"] == layer) & (rows["layer_b"] == layer)]
    single = pd.concat([
        within[["unit_a", "effect_a"]].set_axis(["unit", "effect"], axis=1),
        within[["unit_b", "effect_b"]].set_axis(["unit", "effect"], axis=1),
    ]).drop_duplicates("unit")
    units = single.sort_values(["effect", "unit"], kind="stable")["unit"].to_numpy()
    position = pd.Series(np.arange(len(units)), index=units)
    matrix = np.full((len(units), len(units)), np.nan)
    a, b = position[within["unit_a"]].to_numpy(), position[within["unit_b"]].to_numpy()
    matrix[a, b] = matrix[b, a] = within["interaction"].to_numpy()
    return matrix, units


def plot_interaction_matrix(matrix: np.ndarray, ax: Axes, title: str = "") -> None:
    """A heatmap of an interaction matrix in pp (blue: redundant, worse than the sum;
    red: better than the sum)."""
    values = 100 * matrix
    if not np.any(np.nan_to_num(values)):
        fig.say_empty(ax, "every interaction is 0: the pairs act independently"
                      if np.isfinite(values).any() else "no pair within this layer", title)
        return
    limit = float(np.nanmax(np.abs(values)))
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, label="interaction (pp)")
    ax.set_xlabel("unit (by single effect)")
    ax.set_ylabel("unit (by single effect)")
    ax.set_title(title)


def plot_against_independent(rows: pd.DataFrame, ax: Axes, title: str = "") -> None:
    """Each pair's effect against the independent expectation ``effect_a + effect_b`` (pp),
    with the diagonal where the two are equal. Effects are whole images, so pairs pile up on
    a lattice: one disc per lattice point, its area proportional to the pairs there."""
    points = pd.DataFrame({"expected": np.round(100 * (rows["effect_a"] + rows["effect_b"]), 9),
                           "actual": np.round(100 * rows["effect"], 9)})
    counts = points.value_counts().reset_index(name="pairs")
    sizes = 4 + 300 * counts["pairs"] / counts["pairs"].max()
    ax.scatter(counts["expected"], counts["actual"], s=sizes, alpha=0.5, color="tab:blue",
               linewidths=0)
    top = counts.iloc[0]
    ax.annotate(f"{int(top['pairs']):,} pairs", (top["expected"], top["actual"]), fontsize=7,
                xytext=(6, -10), textcoords="offset points")
    expected, actual = counts["expected"], counts["actual"]
    low, high = float(min(expected.min(), actual.min())), float(max(expected.max(), actual.max()))
    ax.plot([low, high], [low, high], color="tab:red", linewidth=1)
    ax.set_xlabel("effect_a + effect_b (pp, independent)")
    ax.set_ylabel("effect of the pair (pp)")
    ax.set_title(title)


def _pct(share: float) -> str:
    return f"{number(100 * share, 1)} %"


def _finding(key: dict, shares: pd.DataFrame, stable: pd.Series, redundant: pd.DataFrame,
             cancelling: pd.DataFrame) -> str:
    """One paragraph per family, from its numbers."""
    text = (f"{family_label(key)}: of {int(shares['pairs'].iloc[0]):,} unit pairs per seed, "
            f"{_pct(stable['redundant'])} are redundant (removing both is worse than the sum of the single "
            f"removals) and {_pct(stable['cancelling'])} cancelling (removing both beats removing either alone); "
            f"{_pct(shares['significant'].mean())} change test accuracy significantly (BH q < {Q:g}); "
            f"the mean interaction is {pp(shares['mean_interaction'].mean(), 3)}.")
    if len(redundant):
        r = redundant.iloc[0]
        text += (f" The most redundant pair, ({int(r.layer_a)}, {int(r.unit_a)}) and ({int(r.layer_b)}, "
                 f"{int(r.unit_b)}) of seed {int(r.seed)}, changes accuracy by {pp(r.effect)} "
                 f"removed together, against {pp(r.effect_a)} and {pp(r.effect_b)} alone.")
    if len(cancelling):
        c = cancelling.iloc[0]
        text += (f" The most cancelling pair, ({int(c.layer_a)}, {int(c.unit_a)}) and ({int(c.layer_b)}, "
                 f"{int(c.unit_b)}) of seed {int(c.seed)}, gains {pp(c.gain)} over the better "
                 "single removal.")
    if stable["seeds"] > 1:
        spread = max(stable["redundant_high"] - stable["redundant_low"],
                     stable["cancelling_high"] - stable["cancelling_low"])
        text += (f" Across {int(stable['seeds'])} seeds the shares are "
                 + ("stable" if spread < 0.05 else "not stable")
                 + f" (widest {100 * LEVEL:.0f} % interval: {100 * spread:.1f} percentage points).")
    return text


def build(study: Study, page: Page) -> list[Section]:
    """The pairs section: per family an interaction heatmap per hidden layer (first seed) and
    the pairs against the independent expectation, the shares per seed and their stability,
    the most redundant and most cancelling pairs. No section without ``kind=pair`` results."""
    if not study.has("pair"):
        return []
    df = study.rows("pair")
    shares = pair_shares(df)
    stability = share_stability(shares)
    redundant, cancelling = extreme_pairs(df)
    figures, paragraphs = [], []
    test = df[df["split"] == "test"]
    for key, family in test.groupby(FAMILY, sort=True, observed=True):
        labels = dict(zip(FAMILY, key))
        seed = int(family["seed"].min())
        rows = family[family["seed"] == seed]
        layers = sorted(set(rows["layer_a"]) & set(rows["layer_b"]))
        figure = fig.new_figure(4.6 * (len(layers) + 1), 4.0)
        axes = np.atleast_1d(figure.subplots(1, len(layers) + 1))
        for ax, layer in zip(axes, layers):
            plot_interaction_matrix(interaction_matrix(rows, layer)[0], ax, f"layer {layer}")
        plot_against_independent(rows, axes[-1], "pairs vs independent")
        figures.append(Figure(
            fig.save_figure(figure, page.figures, figure_slug("pairs", *key, seed), page.svg),
            f"Unit pairs of {family_label({**labels, 'seed': seed})} on test: per hidden layer the interaction "
            "(effect of removing both minus the two single effects, pp) of every pair within it, units ordered "
            "by single effect (blue: redundant, removing both worse than the sum; red: better than the sum); right: each pair's effect against the "
            "sum of its single effects (on the red diagonal: independent; disc area: how many "
            "pairs share that point).",
        ))
        mine = [t.merge(pd.DataFrame([labels]), on=FAMILY) for t in (shares, stability, redundant, cancelling)]
        paragraphs.append(_finding(labels, mine[0], mine[1].iloc[0], mine[2], mine[3]))
    summary = [p.split(". ")[0] + "." for p in paragraphs]
    pairs_pp = ["effect_a", "effect_b", "effect", "interaction", "gain"]
    tables = {
        "pairs_shares": Table(
            in_units(shares, pp=["mean_interaction"], pct=["redundant", "cancelling", "significant"]),
            f"Per seed on test: unit pairs, the share that are redundant (interaction < 0), cancelling (removing "
            f"both beats removing either alone) and significant (exact McNemar, BH q < {Q:g} over all pairs of "
            "the run), and the mean interaction.",
            collapsed=True,
        ),
        "pairs_stability": Table(
            in_units(stability, pct=[c for c in stability.columns if c.startswith(("redundant", "cancelling"))]),
            f"Are the shares stable across seeds? Mean and {100 * LEVEL:.0f} % t-interval (low, high) of the "
            "redundant and cancelling shares.",
            interval_note(int(stability["seeds"].min()), LEVEL),
        ),
        "pairs_redundant": Table(
            in_units(redundant, pp=pairs_pp),
            f"The {TOP} most redundant pairs per family on test: removing both lowers accuracy most "
            "beyond the sum of the single removals (lowest interaction).",
            collapsed=True,
        ),
        "pairs_cancelling": Table(
            in_units(cancelling, pp=pairs_pp),
            f"The {TOP} most cancelling pairs per family on test: removing both beats the better single removal "
            "by most (gain).",
            collapsed=True,
        ),
    }
    return [Section("Unit pairs: interactions", paragraphs, tables, figures, summary)]
