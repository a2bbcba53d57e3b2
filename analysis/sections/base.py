"""The one section type of the report: :class:`Section` with its :class:`Table` s and
:class:`Figure` s, and what every topic module shares to build one.

A topic module (``analysis/sections/<topic>.py``) computes its tables with pure functions of
the study's rows and arrays, then presents them: a builder ``(study, out_dir) -> [Section]``
(:data:`SectionBuilder`), registered once in :data:`analysis.sections.SECTIONS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.formatting import DEFAULT_DECIMALS
from analysis.stats import INFORMATIVE_SEEDS, LEVEL, MIN_SEEDS, interval_half_width
from analysis.study import Study

FAMILY_KEYS: list[str] = ["dataset", "model", "seed", "mode", "split"]
"""One sweep of a network: the family over which the FDR is controlled (all its layers)."""

LAYER_KEYS: list[str] = [*FAMILY_KEYS, "layer"]
"""One layer of one sweep."""


@dataclass
class Figure:
    """A figure of a report section.

    Attributes
    ----------
    path : Path — the PNG under ``out_dir / "figures"`` (an SVG beside it with ``--svg``)
    caption : str — what the figure shows and how to read it (the report numbers it)
    collapsed : bool — drawn inside a closed ``<details>`` (per-seed detail)
    """

    path: Path
    caption: str
    collapsed: bool = False


@dataclass
class Table:
    """A table of a report section, written as ``tables/<name>.csv``.

    Attributes
    ----------
    frame : DataFrame — accuracy changes in pp (columns ``*_pp``), accuracies and shares in %
        (``*_pct``, ``pct_*``), see :func:`analysis.formatting.in_units`
    caption : str — what a row is and what the columns mean (the report numbers it)
    note : str — a caveat printed under the table (e.g. intervals from too few seeds)
    collapsed : bool — printed inside a closed ``<details>`` (per-seed or per-pair detail)
    """

    frame: pd.DataFrame
    caption: str
    note: str = ""
    collapsed: bool = False


@dataclass
class Section:
    """One report section.

    Attributes
    ----------
    title : str
    paragraphs : list of str — plain text, one finding each
    tables : dict of str to Table — CSV stem (unique in the report) -> table; empty tables
        are not printed (say so in a paragraph)
    figures : list of Figure
    summary : list of str — at most two headline findings, listed under "What this study
        found" at the top of the report
    failure : str — set by the report when the builder raised: the error, in one line
    """

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: dict[str, Table] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    failure: str = ""


@dataclass(frozen=True)
class Page:
    """What every builder of one report shares.

    Attributes
    ----------
    out_dir : Path — the report folder; figures go to ``out_dir / "figures"``
    decimals : int — decimals of pp and % values (:func:`analysis.formatting.resolution_decimals`)
    svg : bool — also save each figure as SVG
    """

    out_dir: Path
    decimals: int = DEFAULT_DECIMALS
    svg: bool = False

    @property
    def figures(self) -> Path:
        return self.out_dir / "figures"


SectionBuilder = Callable[[Study, Page], list[Section]]
"""``(study, page) -> sections`` (an empty list when the study has nothing for the topic)."""


def family_label(key: dict[str, Any]) -> str:
    """``digits/nn_64 seed 0 (zero, test)`` from a family's keys; mode, split, scope and
    order, where present, go in brackets; other keys are ignored."""
    head = f"{key.get('dataset', '')}/{key.get('model', '')}".strip("/")
    head += f" seed {key['seed']}" if "seed" in key else ""
    rest = [str(key[k]) for k in ("mode", "split", "scope", "order") if k in key]
    return head + (f" ({', '.join(rest)})" if rest else "")


def figure_slug(*parts: Any) -> str:
    """A file-name-safe stem from the parts of a figure's key."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(str(p) for p in parts))


def families(df: pd.DataFrame, keys: list[str] = FAMILY_KEYS) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """``(key dict, rows)`` of each group of ``keys``, sorted."""
    return [(dict(zip(keys, k)), g) for k, g in df.groupby(keys, sort=True)]


def on_test(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The test-split rows of a table and ``"test"``, or every row and ``"every split"``
    when it has none."""
    test = table["split"] == "test"
    return (table[test], "test") if test.any() else (table, "every split")


def interval_note(n_seeds: int, level: float = LEVEL) -> str:
    """The caveat under a table of t-intervals across ``n_seeds`` seeds; empty from
    :data:`~analysis.stats.INFORMATIVE_SEEDS` seeds on."""
    if n_seeds >= INFORMATIVE_SEEDS:
        return ""
    width = interval_half_width(n_seeds, level) if n_seeds >= 2 else float("inf")
    enough = interval_half_width(INFORMATIVE_SEEDS, level)
    if n_seeds < MIN_SEEDS:
        return (
            f"From {n_seeds} seeds a {100 * level:.0f} % t-interval is the mean ± {width:.2f} "
            f"standard deviations: it covers most of the possible range whatever the data. "
            f"Rerun with at least {INFORMATIVE_SEEDS} seeds, e.g. "
            f"seeds=[{','.join(map(str, range(INFORMATIVE_SEEDS)))}]."
        )
    return (
        f"From {n_seeds} seeds a {100 * level:.0f} % t-interval is the mean ± {width:.2f} "
        f"standard deviations; {INFORMATIVE_SEEDS} seeds narrow it to ± {enough:.2f} SD."
    )
