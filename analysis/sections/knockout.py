"""Class knockout (``kind=knockout``, ``ablation=class_knockout``): Bau's question "is there a
unit for this class?", answered per class with the smallest greedy set found on val, read on
test. Tables are functions of the rows (and each network's test labels); :func:`build`
presents them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from analysis import figures as fig
from analysis.formatting import count, number
from analysis.sections.base import Figure, Page, Section, Table
from analysis.study import NetworkKey, Study
from sweep.kinds import KNOCKOUT_KEYS, knockout_sets

FAMILY: list[str] = ["dataset", "model", "mode", "scope"]
"""One family of searches: every class and seed of one network kind and scope."""


def knockout_table(rows: pd.DataFrame, class_counts: dict[NetworkKey, np.ndarray]) -> pd.DataFrame:
    """One row per search, on test: the set found on val and the images it breaks.

    Parameters
    ----------
    rows : DataFrame — ``kind=knockout`` rows
    class_counts : dict of NetworkKey to ndarray of shape (n_classes,) — test images per class
        index of each network (networks missing here get no image counts)

    Returns
    -------
    DataFrame
        :func:`sweep.kinds.knockout.knockout_sets` columns (``target_accuracy*`` as fractions)
        plus ``target_broken`` (images of the class the set turns wrong, net) and
        ``other_broken`` (images of other classes it turns wrong, net of those it fixes).
    """
    sets = knockout_sets(rows)
    last = rows[rows["split"] == "test"].sort_values([*KNOCKOUT_KEYS, "step"]).groupby(KNOCKOUT_KEYS).tail(1)
    merged = sets.merge(last[[*KNOCKOUT_KEYS, "class_effect"]], on=KNOCKOUT_KEYS)
    target_broken, other_broken = [], []
    for r in merged.itertuples():
        counts = class_counts.get(NetworkKey(r.dataset, r.model, int(r.seed)))
        if counts is None:
            target_broken.append(np.nan)
            other_broken.append(np.nan)
            continue
        lost = -np.rint(np.asarray(r.class_effect) * counts)
        target_broken.append(lost[r.target])
        other_broken.append(lost.sum() - lost[r.target])
    return merged.drop(columns="class_effect").assign(target_broken=target_broken, other_broken=other_broken)


def class_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per family and class, over seeds: how often the class was knocked out, the set sizes
    (every seed's), how often one unit sufficed, and on test the class's accuracy after the
    set and the images it breaks.

    Returns
    -------
    DataFrame
        ``FAMILY, target, seeds, knocked_out`` (seeds reaching chance on val), ``one_unit``
        (seeds where one unit sufficed), ``set_sizes`` (per seed, ``*``: chance not reached),
        ``target_accuracy_base_pct``, ``target_accuracy_pct`` (mean over seeds, %),
        ``target_broken``, ``other_broken`` (mean images).
    """
    def summarise(group: pd.DataFrame) -> pd.Series:
        group = group.sort_values("seed")
        return pd.Series({
            "seeds": len(group), "knocked_out": int(group["knocked_out"].sum()),
            "one_unit": int(((group["set_size"] == 1) & group["knocked_out"]).sum()),
            "set_sizes": ", ".join(f"{s}{'' if k else '*'}" for s, k in zip(group["set_size"], group["knocked_out"])),
            "target_accuracy_base_pct": 100 * group["target_accuracy_base"].mean(),
            "target_accuracy_pct": 100 * group["target_accuracy"].mean(),
            "target_broken": group["target_broken"].mean(), "other_broken": group["other_broken"].mean(),
        })

    columns = ["seed", "set_size", "knocked_out", "target_accuracy_base", "target_accuracy", "target_broken",
               "other_broken"]
    return table.groupby([*FAMILY, "target"], sort=True)[columns].apply(summarise).reset_index()


def plot_set_sizes(table: pd.DataFrame, ax: Axes, title: str) -> None:
    """Set size per class, one marker per seed: filled where the class reached chance on val,
    hollow where the search stopped first (no unit left that kept the other classes within
    bounds, or the size limit)."""
    seeds = sorted(table["seed"].unique())
    for i, seed in enumerate(seeds):
        part = table[table["seed"] == seed]
        x = part["target"].to_numpy() + (i - (len(seeds) - 1) / 2) * 0.15
        reached = part["knocked_out"].to_numpy(bool)
        colour = f"C{i}"
        ax.scatter(x[reached], part["set_size"][reached], color=colour, label=f"seed {seed}")
        ax.scatter(x[~reached], part["set_size"][~reached], facecolors="none", edgecolors=colour)
    ax.set_xticks(sorted(table["target"].unique()))
    ax.set_xlabel("class (index)")
    ax.set_ylabel("units in the set")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=7)


def study_table(study: Study) -> pd.DataFrame:
    """:func:`knockout_table` of the study's rows, with each network's test images per class."""
    rows = study.rows("knockout")
    counts = {}
    for key in (NetworkKey.of(r) for r in rows[["dataset", "model", "seed"]].drop_duplicates().itertuples()):
        if study.run(key) is not None:
            y = study.split(key, "test")[1]
            counts[key] = np.array([(y == c).sum() for c in study.network(key).classes])
    return knockout_table(rows, counts)


def docs_table(study: Study, figures: Path) -> tuple[pd.DataFrame, Path]:
    """The per-class table (cells formatted, columns named for readers) and the set-size
    figure of the first family, for ``docs/reproductions.md`` (:mod:`analysis.docs`)."""
    table = study_table(study)
    summary = class_summary(table)
    key, family = next(iter(table.groupby(FAMILY, sort=True)))
    figure = fig.new_figure(7.0, 3.6)
    plot_set_sizes(family, figure.subplots(), "/".join(map(str, key[:2])) + f" ({key[2]}, {key[3]})")
    path = fig.save_figure(figure, figures, "knockout_" + "_".join(map(str, key)), False)
    shown = summary.assign(**{c: summary[c].map(lambda v: number(v, 1)) for c in (
        "target_accuracy_base_pct", "target_accuracy_pct", "target_broken", "other_broken")})
    shown = shown.rename(columns={
        "target": "class", "knocked_out": "reached chance", "one_unit": "one unit sufficed", "set_sizes": "set sizes",
        "target_accuracy_base_pct": "class test accuracy (%)", "target_accuracy_pct": "after the set (%)",
        "target_broken": "class images broken", "other_broken": "other images broken (net)"})
    return shown[["model", "scope", "class", "seeds", "reached chance", "one unit sufficed", "set sizes",
                  "class test accuracy (%)", "after the set (%)", "class images broken",
                  "other images broken (net)"]], path


def build(study: Study, page: Page) -> list[Section]:
    """The class-knockout section; none without ``kind=knockout`` rows."""
    if not study.has("knockout"):
        return []
    table = study_table(study)
    summary = class_summary(table)
    figures, paragraphs = [], []
    for key, family in table.groupby(FAMILY, sort=True):
        label = "/".join(map(str, key[:2])) + f" ({key[2]}, {key[3]})"
        figure = fig.new_figure(7.0, 3.6)
        plot_set_sizes(family, figure.subplots(), label)
        path = fig.save_figure(figure, page.figures, f"knockout_{'_'.join(map(str, key))}", page.svg)
        figures.append(Figure(path,
                              f"{label}: units in the smallest greedy set (chosen on val) that brings each class to "
                              "chance while every other class loses at most the allowed val accuracy; one marker "
                              "per seed, hollow where the search stopped before chance."))
        reached = family[family["knocked_out"]]
        sizes = reached["set_size"]
        paragraphs.append(
            f"{label}: {len(reached)} of {count(len(family), 'search', 'searches')} (classes × seeds) "
            "reached chance on val; " + (
                f"their sets hold {int(sizes.min())}-{int(sizes.max())} units "
                f"(median {number(sizes.median(), 0)}), "
                f"one unit sufficed in {int((sizes == 1).sum())}. On test the class falls from "
                f"{number(100 * reached['target_accuracy_base'].mean(), 1)} % to "
                f"{number(100 * reached['target_accuracy'].mean(), 1)} % on average, "
                f"{number(reached['target_broken'].mean(), 0)} of its images broken and "
                f"{number(reached['other_broken'].mean(), 0)} of other classes (net)."
                if len(reached) else "no class could be knocked out within the bounds."))
    answer = ("Is there a unit for a class? " + (
        "No: in no search did a single unit bring a class to chance without costing others more than allowed."
        if not (table["knocked_out"] & (table["set_size"] == 1)).any() else
        f"Sometimes: one unit sufficed in {int((table['knocked_out'] & (table['set_size'] == 1)).sum())} of "
        f"{len(table)} searches."))
    paragraphs.insert(0, answer)
    tables = {
        "knockout_classes": Table(summary, (
            "Per class, over seeds: searches that reached chance on val, those where one unit sufficed, every "
            "seed's set size (* where the search stopped before chance), and on test the class's accuracy before "
            "and after the set (%) and the images it breaks (the class's, and other classes' net).")),
        "knockout_sets": Table(table.drop(columns=["mode"]), (
            "Every search: the units of the set in the order chosen (layer:unit), on test the target class's "
            "accuracy before and after, the largest other-class loss, and images broken."), collapsed=True),
    }
    return [Section("Class knockout: is there a unit for a class?", paragraphs, tables, figures, [answer])]
