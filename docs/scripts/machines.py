"""Write ``docs/reproductions.md``'s region ``paper-machines``: the paper study's per-seed values
made on two machines, side by side (:func:`analysis.sections.reproductions.compare_seed_tables`).

The earlier machine's values are ``docs/reproductions_paper_seeds_haswell.csv`` (the per-seed CSV
of commit 059eb15: NN_392, pixels / 255, 10 seeds, OpenBLAS taking its Haswell kernels); this
machine's are the per-seed CSV the study writes beside the docs
(``python -m analysis RESULTS --study paper --markdown docs``).

    python docs/scripts/machines.py          # rewrite the region
    python docs/scripts/machines.py --check  # exit 1 if it is out of date (tests run this)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from analysis.docs import SEEDS_CSV, region_text, rewrite_regions
from analysis.formatting import MISSING, markdown_table, number
from analysis.sections.reproductions import compare_seed_tables

DOCS = Path(__file__).resolve().parents[1]
EARLIER = "reproductions_paper_seeds_haswell.csv"
"""The earlier machine's per-seed values (commit 059eb15's CSV), beside the docs."""

REGION = "paper-machines"


def _spread(mean: float, sd: float, n: int) -> str:
    return f"{number(mean, 2)}{'' if pd.isna(sd) else f' ± {number(sd, 2)}'} ({n})"


def _difference(difference: float, low: float, high: float) -> str:
    interval = "" if pd.isna(low) else f" [{number(low, 2)}, {number(high, 2)}]"
    return number(difference, 2, signed=True) + interval


def region_markdown(earlier: pd.DataFrame, current: pd.DataFrame) -> str:
    """The region's body: one row per network, scaling, layer and quantity run on both machines."""
    table = compare_seed_tables(earlier, current)
    shown = pd.DataFrame({
        "model": table["model"], "scaling": table["scaling"], "layer": table["layer"],
        "quantity": [f"{q} ({u})" for q, u in zip(table["quantity"], table["unit"])],
        "Haswell: mean ± sd (seeds)": [_spread(*r) for r in zip(table["mean_first"], table["sd_first"], table["n_first"])],
        "this machine: mean ± sd (seeds)": [_spread(*r) for r in zip(table["mean_second"], table["sd_second"],
                                                                      table["n_second"])],
        "identical seeds": [f"{i} of {n}" for i, n in zip(table["identical"], table["same_seeds"])],
        "difference [95 % CI]": [_difference(*r) for r in zip(table["difference"], table["low"], table["high"])],
        "Welch p": [MISSING if pd.isna(p) else number(p, 3) for p in table["p"]],
    })
    return (markdown_table(shown, list(shown.columns)) + "\n\n*Written by `python docs/scripts/machines.py` from "
            f"`{EARLIER}` (Haswell) and `{SEEDS_CSV}` (this machine: the footers above); difference: this machine "
            "minus Haswell, Welch's t-test and interval.*")


def main() -> int:
    earlier, current = pd.read_csv(DOCS / EARLIER), pd.read_csv(DOCS / SEEDS_CSV)
    body = region_markdown(earlier, current)
    page = DOCS / "reproductions.md"
    if "--check" in sys.argv[1:]:
        return 0 if region_text(page, REGION) == body else 1
    rewrite_regions(page, {REGION: body})
    return 0


if __name__ == "__main__":
    sys.exit(main())
