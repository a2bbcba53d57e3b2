"""The report's one number formatter and unit rule.

Accuracies and shares are in % (columns ``*_pct``, ``pct_*``), changes of accuracy in
percentage points (``*_pp``); both are printed with the decimals the data can resolve
(one image of ``n`` is ``100 / n`` pp: :func:`resolution_decimals`). p- and q-values print as
``<0.001`` below a thousandth; every other float with three significant digits; integers as
integers; no ``-0``. Every table, figure and sentence of the report formats through here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

MISSING = "–"
"""How an empty cell (NaN, <NA>) is printed."""

DEFAULT_DECIMALS = 2
"""Decimals of a pp or % value when the resolution of the data is not known."""


def resolution_decimals(n_images: int | None) -> int:
    """Decimals that resolve one image of ``n_images`` in pp (one more than the first
    significant digit of ``100 / n``): 2 for 449 images (0.22 pp), 3 for 7,000 (0.014 pp)."""
    if not n_images:
        return DEFAULT_DECIMALS
    return max(1, math.ceil(-math.log10(100.0 / n_images)) + 1)


def _clean(text: str) -> str:
    """No negative zero: ``-0.00`` -> ``0.00``."""
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def number(value: float, decimals: int = DEFAULT_DECIMALS, signed: bool = False) -> str:
    """A value in pp or % with ``decimals`` decimals (``+`` before positive changes when
    ``signed``)."""
    text = _clean(f"{value:{'+' if signed else ''}.{decimals}f}")
    return text[1:] if text.startswith("+") and not text.strip("+0.") else text


def pp(fraction: float, decimals: int = DEFAULT_DECIMALS) -> str:
    """An accuracy change (a fraction) as signed percentage points: ``+0.22 pp``."""
    return f"{number(100 * fraction, decimals, signed=True)} pp"


def pct(fraction: float, decimals: int = DEFAULT_DECIMALS) -> str:
    """An accuracy or a share (a fraction) in percent: ``97.55 %``."""
    return f"{number(100 * fraction, decimals)} %"


def significant(value: float, digits: int = 3) -> str:
    """A float with ``digits`` significant digits, never in scientific notation for values
    a table shows (``0.0123``, ``12.3``, ``1230``)."""
    if value == 0 or not math.isfinite(value):
        return _clean(str(0 if value == 0 else value))
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    return _clean(f"{value:.{decimals}f}")


def p_value(value: float) -> str:
    """A p- or q-value: ``<0.001`` below a thousandth, else three decimals."""
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def is_percent(column: str) -> bool:
    """Whether a column holds pp or % values (by its name's suffix or prefix)."""
    return column.endswith(("_pp", "_pct")) or column.startswith("pct_")


def is_p_value(column: str) -> bool:
    """Whether a column holds p- or q-values (``p_*``, ``*_p``, ``q_value``)."""
    return column.startswith("p_") or column.endswith("_p") or column == "q_value"


def format_cell(value: object, column: str, decimals: int = DEFAULT_DECIMALS) -> str:
    """A table cell as printed (see the module docstring)."""
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if is_percent(column):
            return number(value, decimals)
        if is_p_value(column):
            return p_value(value)
        return str(int(value)) if value.is_integer() and abs(value) < 1e6 else significant(value)
    return str(value)


def column_header(name: str) -> str:
    """A table column's header: its CSV name with the unit spelled out and spaces for
    underscores (``max_effect_pp`` -> ``max effect (pp)``, ``pct_harmful`` -> ``harmful (%)``)."""
    unit = ""
    for suffix, label in (("_pp", "pp"), ("_pct", "%")):
        if name.endswith(suffix):
            name, unit = name.removesuffix(suffix), label
    if name.startswith("pct_"):
        name, unit = name.removeprefix("pct_"), "%"
    return name.replace("_", " ") + (f" ({unit})" if unit else "")


def in_units(frame: pd.DataFrame, pp: Sequence[str] = (), pct: Sequence[str] = ()) -> pd.DataFrame:
    """A table in the report's units: the fraction columns ``pp`` (accuracy changes) become
    ``<name>_pp`` in percentage points and ``pct`` (accuracies) ``<name>_pct`` in percent,
    both times 100."""
    out = frame.copy()
    for columns, suffix in ((pp, "_pp"), (pct, "_pct")):
        out[list(columns)] = out[list(columns)] * 100
        out = out.rename(columns={c: c + suffix for c in columns})
    return out


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 neuron"``, ``"3 neurons"`` (``plural`` when it is not ``noun + "s"``)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def value_range(values: Iterable[float], decimals: int = DEFAULT_DECIMALS,
                signed: bool = False) -> str:
    """``"a to b"`` from the smallest and largest value (one value when they print equal)."""
    values = np.asarray(list(values), dtype=float)
    low, high = (number(v, decimals, signed) for v in (values.min(), values.max()))
    return low if low == high else f"{low} to {high}"


def per_seed(values: Iterable[float], decimals: int = 1) -> str:
    """Every seed's value, in seed order: ``"29.4, 2.9, 26.9"`` (multimodal values stay
    visible beside their mean)."""
    return ", ".join(number(v, decimals) for v in values)


def listing(items: Sequence[object], limit: int = 6) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``; past ``limit`` items, ``"a, b, ... and 7 more"``."""
    items = [str(i) for i in items]
    if len(items) > limit:
        items = items[: limit - 1] + [f"{len(items) - limit + 1} more"]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def units_named(units: Sequence[int], noun: str = "unit") -> str:
    """One unit (``"unit 129"``) or a tie named as a tie (``"units 3, 9 and 129 (a tie)"``)."""
    units = sorted(int(u) for u in units)
    if len(units) == 1:
        return f"{noun} {units[0]}"
    return f"{noun}s {listing(units)} (a {len(units)}-way tie)"


def markdown_table(frame: pd.DataFrame, columns: list[str]) -> str:
    """A GitHub markdown table of ``frame[columns]`` (cells as given, ``|`` escaped)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in frame[columns].itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)
