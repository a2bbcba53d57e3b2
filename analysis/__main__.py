"""``python -m analysis RESULTS [--study S] [--out DIR]``: write the report folder."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from analysis.load import AnalysisError
from analysis.report import write_report


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0, or 1 with a one-line error on stderr)."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis", description="Tables, statistics and figures of an ablation study."
    )
    parser.add_argument("results", help="results root (local path or pyarrow URI)")
    parser.add_argument("--study", help="study to analyse (default: the only one there is)")
    parser.add_argument("--out", help="report folder (default: reports/<study>)")
    args = parser.parse_args(argv)
    try:
        index = write_report(args.results, args.study, args.out)
    except AnalysisError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(index)
    return 0


if __name__ == "__main__":
    sys.exit(main())
