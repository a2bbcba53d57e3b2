"""``python -m analysis RESULTS [--study S] [--out DIR]``: write the report folder."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from analysis.load import AnalysisError, check_parts, resolve_study
from analysis.report import write_report


USAGE_ERROR = 2
"""Exit status of a bad command line or unreadable input, as ``python -m sweep`` and argparse use."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0, or 2 with a one-line error on stderr)."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis", description="Tables, statistics and figures of an ablation study."
    )
    parser.add_argument("results", help="results root (local path or pyarrow URI)")
    parser.add_argument("--study", help="study to analyse (default: the only one there is)")
    parser.add_argument("--out", help="report folder (default: reports/<study>)")
    args = parser.parse_args(argv)
    try:
        study = resolve_study(args.results, args.study)
        check_parts(args.results, study)  # before anything is written
        index = write_report(args.results, study, args.out)
    except AnalysisError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    print(index)
    return 0


if __name__ == "__main__":
    sys.exit(main())
