"""Pruning paths (``kind=pruning``): curves, removable fractions, test gains, report section.

Every choice of a path was made on val; everything here is read on test. Tables are functions
of ``kind=pruning`` rows; figures draw on the Axes they are given; :func:`build` presents them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from analysis import figures as fig
from analysis.formatting import in_units, number
from analysis.formatting import per_seed as seed_values
from analysis.sections.base import (
    Figure,
    Page,
    Section,
    Table,
    family_label,
    figure_slug,
    interval_note,
)
from analysis.sections.cumulative import LEGEND
from analysis.stats import ALPHA, LEVEL, grouped_t_interval, percentile_interval, t_interval
from analysis.study import Study
from sweep.kinds import WITHIN_PP, removable_fractions

SHARE = (0.0, 1.0)
"""Bounds of a removable fraction."""

FAMILY: list[str] = ["dataset", "model", "mode", "scope"]
"""Columns identifying one family of paths (every method and seed of one network kind)."""

METHOD_ORDER: tuple[str, ...] = ("greedy", "single_shot", "magnitude", "activation", "random")
"""Methods in the order tables and legends list them."""

Y_RANGE_PP: tuple[float, float] = (-10.0, 1.0)
"""Test-accuracy changes drawn (pp): the curves' interesting part is near 0."""


def _methods(df: pd.DataFrame) -> list[str]:
    present = set(df["method"])
    return [m for m in METHOD_ORDER if m in present] + sorted(present - set(METHOD_ORDER))


def _in_method_order(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its rows in :data:`METHOD_ORDER` (stable within a method)."""
    rank = {m: i for i, m in enumerate(_methods(table))}
    return table.sort_values("method", key=lambda s: s.map(rank), kind="stable", ignore_index=True)


def _interval(values: np.ndarray, level: float = LEVEL,
              bounds: tuple[float, float] | None = None) -> tuple[float, float]:
    """:func:`~analysis.stats.t_interval` of ``values`` (the mean itself for one value)."""
    if len(values) < 2:
        mean = float(np.mean(values))
        return mean, mean
    return t_interval(values, level, bounds)[1:]


# --------------------------------------------------------------------------- tables


def pruning_curves(df: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """Test accuracy change against the fraction removed, per family, method and step.

    A deterministic method's curve is the mean over seeds with a Student-t ``level``
    interval of that mean; ``random`` averages its repetitions within each seed for the mean
    and interval, and its band is the central ``level`` of all its paths (every repetition
    of every seed).

    Returns
    -------
    DataFrame
        :data:`FAMILY`, ``method, step, fraction, mean, low, high`` (effects, accuracy units),
        ``band_low, band_high`` (random only, else NaN), ``seeds``.
    """
    test = df[df["split"] == "test"]
    per_seed = test.groupby([*FAMILY, "method", "step", "seed"], sort=True, observed=True).agg(
        fraction=("fraction", "first"), effect=("effect", "mean"))
    steps = [*FAMILY, "method", "step"]
    per_seed = per_seed.reset_index()
    curves = grouped_t_interval(per_seed, steps, "effect", level).rename(columns={"n": "seeds"})
    fraction = per_seed.groupby(steps, sort=True, observed=True)["fraction"].first().reset_index()
    curves = fraction.merge(curves, on=steps)[[*steps, "fraction", "mean", "low", "high", "seeds"]]
    random = test[test["method"] == "random"]
    band = percentile_interval(random, [*FAMILY, "method", "step"], "effect", level)
    band = band.rename(columns={"low": "band_low", "high": "band_high"}).drop(columns=["mean", "n"])
    return curves.merge(band, on=[*FAMILY, "method", "step"], how="left")


def removable_table(df: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """The largest fraction removable within 0.1 / 0.5 / 1 pp of the unpruned test accuracy
    (:func:`sweep.kinds.pruning.removable_fractions`), per family and method: the mean over
    seeds (random: over its repetitions first) with its Student-t ``level`` interval.

    Returns
    -------
    DataFrame
        :data:`FAMILY`, ``method, seeds``, and per ``w``: ``fraction_<w>pp`` (mean),
        ``fraction_<w>pp_low``, ``fraction_<w>pp_high`` (clipped to 0-1) and
        ``fraction_<w>pp_per_seed`` (every seed's value in %, so a multimodal spread shows).
    """
    paths = removable_fractions(df)
    columns = [f"fraction_{w:g}pp" for w in WITHIN_PP]
    per_seed = paths.groupby([*FAMILY, "method", "seed"], sort=True, observed=True)[columns].mean()
    rows = []
    for key, group in per_seed.groupby(level=[*FAMILY, "method"], sort=True):
        row = {**dict(zip([*FAMILY, "method"], key)), "seeds": len(group)}
        for column in columns:
            values = group[column].to_numpy()
            low, high = _interval(values, level, SHARE)
            row.update({column: values.mean(), f"{column}_low": low, f"{column}_high": high,
                        f"{column}_per_seed": seed_values(100 * values)})
        rows.append(row)
    return pd.DataFrame(rows)


def val_chosen_steps(df: pd.DataFrame) -> pd.DataFrame:
    """Per path, the step with the highest val accuracy (ties: the most units removed), and
    the test result there against the unpruned net (exact McNemar on test).

    The step is chosen on val, so its test accuracy is an honest estimate of what pruning
    to the best val accuracy gives.

    Returns
    -------
    DataFrame
        ``dataset, model, seed, mode, scope, method, repetition, step, fraction,
        val_effect, test_effect, broken, fixed, p_mcnemar`` (``broken``/``fixed``: test
        rows the pruned net gets wrong / right that the unpruned net got right / wrong).
    """
    keys = [*FAMILY, "seed", "method", "repetition"]
    ascending = [True] * len(keys) + [False, False]
    val = df[df["split"] == "val"].sort_values([*keys, "effect", "step"], ascending=ascending)
    best = val.groupby(keys, sort=True, observed=True).head(1)[[*keys, "step", "fraction", "effect"]]
    best = best.rename(columns={"effect": "val_effect"})
    test = df[df["split"] == "test"][[*keys, "step", "effect", "broken", "fixed", "p_mcnemar"]]
    out = best.merge(test.rename(columns={"effect": "test_effect"}), on=[*keys, "step"])
    order = ["dataset", "model", "seed", "mode", "scope", "method", "repetition"]
    columns = [*order, "step", "fraction", "val_effect", "test_effect", "broken", "fixed", "p_mcnemar"]
    return out[columns].sort_values(order, ignore_index=True)


def gain_table(chosen: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Per family and method: how many paths' val-chosen step raises test accuracy
    significantly (McNemar p < ``alpha``), lowers it significantly, and the mean test change.

    Returns
    -------
    DataFrame
        :data:`FAMILY`, ``method, paths, mean_fraction, mean_test_effect, raised, lowered,
        min_p``.
    """
    significant = chosen["p_mcnemar"] < alpha
    table = chosen.assign(raised=significant & (chosen["test_effect"] > 0),
                          lowered=significant & (chosen["test_effect"] < 0))
    return table.groupby([*FAMILY, "method"], sort=True, observed=True).agg(
        paths=("step", "size"), mean_fraction=("fraction", "mean"), mean_test_effect=("test_effect", "mean"),
        raised=("raised", "sum"), lowered=("lowered", "sum"), min_p=("p_mcnemar", "min")).reset_index()


# --------------------------------------------------------------------------- figures


def plot_pruning(curves: pd.DataFrame, ax: Axes, title: str = "") -> None:
    """Test accuracy change (pp) against the fraction removed, one line per method with its
    interval across seeds; ``random`` in black with the band of its paths; clipped to
    :data:`Y_RANGE_PP`.

    Parameters
    ----------
    curves : DataFrame — :func:`pruning_curves` rows of one family
    """
    for method in _methods(curves):
        curve = curves[curves["method"] == method].sort_values("fraction")
        color = "black" if method == "random" else None
        clip = lambda s: np.clip(100 * s.to_numpy(), *Y_RANGE_PP)  # noqa: E731
        (line,) = ax.plot(curve["fraction"], clip(curve["mean"]), label=method, color=color, lw=1.2)
        if method == "random":
            ax.fill_between(curve["fraction"], clip(curve["band_low"]), clip(curve["band_high"]), color="black",
                            alpha=0.15, lw=0)
        elif (curve["high"] > curve["low"]).any():
            ax.fill_between(curve["fraction"], clip(curve["low"]), clip(curve["high"]), color=line.get_color(),
                            alpha=0.15, lw=0)
    ax.axhline(0.0, color="red", lw=0.8)
    ax.set_ylim(*Y_RANGE_PP)
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of hidden units removed (chosen on val)")
    ax.set_ylabel("test accuracy change (pp)")
    ax.set_title(title, fontsize=9)
    ax.legend(**LEGEND)


# --------------------------------------------------------------------------- report


def _percent(x: float) -> str:
    return f"{number(100 * x, 1)} %"


def _family_findings(key: dict, removable: pd.DataFrame, gains: pd.DataFrame, base: float) -> list[str]:
    """The numbers of one family, as sentences."""
    label = family_label(key)
    seeds = int(removable["seeds"].max())
    removable = _in_method_order(removable)
    gains = _in_method_order(gains)
    parts = ", ".join(
        f"{r['method']} {_percent(r['fraction_0.5pp'])} [{_percent(r['fraction_0.5pp_low'])}, "
        f"{_percent(r['fraction_0.5pp_high'])}]"
        + (f" (per seed {r['fraction_0.5pp_per_seed']})" if seeds > 1 else "")
        for _, r in removable.iterrows()
    )
    leaders = "; ".join(
        f"within {w:g} pp, {r['method']} ({_percent(r[f'fraction_{w:g}pp'])})"
        for w in WITHIN_PP
        for r in [removable.sort_values(f"fraction_{w:g}pp", ascending=False, kind="stable").iloc[0]]
    )
    lines = [
        f"On {label} (unpruned test accuracy {_percent(base)}, {seeds} seed{'s' if seeds > 1 else ''}), "
        "the share of hidden units "
        f"removable before test accuracy first falls more than 0.5 pp is: {parts} "
        f"(mean, {100 * LEVEL:.0f} % interval across seeds). Most removed {leaders}."
    ]
    raised, lowered = gains[gains["raised"] > 0], gains[gains["lowered"] > 0]
    paths = int(gains["paths"].sum())
    chosen = ", ".join(
        f"{r.method} {number(100 * r.mean_test_effect, 2, signed=True)} pp at "
        f"{_percent(r.mean_fraction)} removed" for r in gains.itertuples()
    )
    lines.append(
        f"Pruned to its best val accuracy (the last such step), each method changes test accuracy by (mean over "
        f"paths) {chosen}; "
        + (f"{int(raised['raised'].sum())} of {paths} paths raise it significantly "
           f"(exact McNemar p < {ALPHA:g}: {', '.join(raised['method'])})"
           if len(raised) else f"none of the {paths} paths raises it beyond noise (exact McNemar, p < {ALPHA:g})")
        + (f", {int(lowered['lowered'].sum())} lower it significantly "
           f"({', '.join(f'{r.method} {int(r.lowered)} of {int(r.paths)}' for r in lowered.itertuples())})."
           if len(lowered) else ", none lowers it significantly.")
    )
    return lines


def _span(values: pd.Series) -> str:
    low, high = values.min(), values.max()
    return _percent(low) if np.isclose(low, high) else f"{_percent(low)} to {_percent(high)}"


def _claim(removable: pd.DataFrame, gains: pd.DataFrame) -> str:
    """The answer to the paper's claim, from every family's numbers."""
    raised = int(gains["raised"].sum())
    paths = int(gains["paths"].sum())
    column = "fraction_0.5pp"
    best = removable.sort_values(column, ascending=False, kind="stable").groupby(FAMILY, sort=True).head(1)
    greedy = removable[removable["method"] == "greedy"]
    others = removable[removable["method"] != "greedy"]
    best_other = others.sort_values(column, ascending=False, kind="stable").groupby(FAMILY, sort=True).head(1)
    compress = f"pruning chosen on val keeps test accuracy within 0.5 pp while removing {_span(best[column])} of " \
        f"the hidden units (best method per network: {', '.join(sorted(set(best['method'])))})"
    if len(greedy) and len(best_other):
        compress += (f"; greedy elimination removes {_span(greedy[column])}, the best fixed order "
                     f"({', '.join(sorted(set(best_other['method'])))}) {_span(best_other[column])}")
    gain = (
        f"{raised} of {paths} val-chosen pruned networks are significantly more accurate on test"
        if raised else f"no val-chosen pruned network (0 of {paths}) is more accurate on test beyond noise"
    )
    lowered = gains[gains["lowered"] > 0].groupby("method", sort=False)[["lowered", "paths"]].sum()
    if len(lowered):
        gain += (", and pruning to the best val accuracy lowers test accuracy significantly for "
                 + ", ".join(f"{m} ({int(r.lowered)} of {int(r.paths)} paths)" for m, r in lowered.iterrows())
                 + ": their val gains are selection noise")
    verdict = ("so removing units can improve efficiency, and here accuracy too"
               if raised else "so removing the influence of specific neurons improves efficiency as compression "
               "(fewer units at an unchanged accuracy), not as an accuracy gain")
    return (f"The paper's claim, measured with selection on val and report on test: {compress}; {gain}; "
            f"{verdict}.")


def build(study: Study, page: Page) -> list[Section]:
    """The pruning section: one figure per dataset, mode and scope (a panel per model), the
    removable fractions, the val-chosen steps' test changes, and the answer to the paper's
    claim. No section without ``kind=pruning`` results."""
    if not study.has("pruning"):
        return []
    df = study.rows("pruning")
    curves, removable = pruning_curves(df), _in_method_order(removable_table(df))
    chosen = val_chosen_steps(df)
    gains = _in_method_order(gain_table(chosen))
    figures = []
    panel_keys = ["dataset", "mode", "scope"]
    for key, rows in curves.groupby(panel_keys, sort=True):
        models = sorted(rows["model"].unique())
        figure = fig.new_figure(5.0 * len(models) + 1.5, 3.8)
        for ax, model in zip(np.atleast_1d(figure.subplots(1, len(models))), models):
            title = family_label({**dict(zip(panel_keys, key)), "model": model})
            plot_pruning(rows[rows["model"] == model], ax, title)
        label = ", ".join(f"{k} {v}" for k, v in zip(panel_keys, key))
        figures.append(Figure(
            fig.save_figure(figure, page.figures, figure_slug("pruning", *key), page.svg),
            f"Pruning chosen on val ({label}): change of test accuracy, in pp, against the fraction of "
            "hidden units removed, one panel per model and one line per method (mean over seeds, "
            f"shaded: its {100 * LEVEL:.0f} % t-interval across seeds); random is black, its band "
            f"holding the central {100 * LEVEL:.0f} % of its paths. Changes below "
            f"{Y_RANGE_PP[0]:g} pp are drawn at {Y_RANGE_PP[0]:g}.",
        ))
    paragraphs = []
    base = df[(df["split"] == "test") & (df["step"] == 0)].groupby(FAMILY, observed=True)["accuracy"].mean()
    for key, family in removable.groupby(FAMILY, sort=True):
        family_gains = gains.merge(pd.DataFrame([dict(zip(FAMILY, key))]), on=FAMILY)
        paragraphs += _family_findings(dict(zip(FAMILY, key)), family, family_gains, float(base.loc[key]))
    claim = _claim(removable, gains)
    paragraphs.append(claim)
    return [Section("Pruning chosen on val, measured on test", paragraphs, _tables(removable, chosen, gains),
                    figures, [claim])]


def _tables(removable: pd.DataFrame, chosen: pd.DataFrame, gains: pd.DataFrame) -> dict[str, Table]:
    """The section's tables in the report's units (shares in %, accuracy changes in pp)."""
    shares = [c for c in removable.columns if c.startswith("fraction_") and not c.endswith("_per_seed")]
    renamed = {c: c.replace("fraction_", "within_") for c in removable.columns if c.startswith("fraction_")}
    removable = in_units(removable.rename(columns=renamed),
                         pct=[c.replace("fraction_", "within_") for c in shares])
    levels = " / ".join(f"{w:g}" for w in WITHIN_PP)
    return {
        "pruning_removable": Table(
            removable,
            f"Share of the hidden units each method removes before test accuracy first falls more than "
            f"{levels} pp below the unpruned network's (within_<w>pp): mean over seeds (random: over its "
            f"repetitions first), its {100 * LEVEL:.0f} % t-interval across seeds (low, high; "
            "clipped to 0-100 %) and every seed's value (per seed, %).",
            interval_note(int(removable["seeds"].min()), LEVEL),
        ),
        "pruning_val_chosen": Table(
            in_units(chosen, pp=["val_effect", "test_effect"], pct=["fraction"]),
            "Each path pruned to its best val accuracy (the last step reaching it): units removed, the "
            "change of val and test accuracy against the unpruned network, the test rows it breaks "
            "(right before, wrong after) and fixes, and the exact McNemar p of those two counts.",
            collapsed=True,
        ),
        "pruning_gains": Table(
            in_units(gains, pp=["mean_test_effect"], pct=["mean_fraction"]),
            f"Per method, over its val-chosen paths: units removed and test accuracy change (means), and "
            f"how many paths raise or lower test accuracy significantly (exact McNemar p < {ALPHA:g}; "
            "min p: the smallest p).",
        ),
    }
