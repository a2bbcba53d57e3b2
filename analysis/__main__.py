"""``python -m analysis RESULTS [--study S] [--out DIR] [--svg]``: write the report folder;
``--markdown DOCS``: rewrite the paper's generated tables in ``DOCS/reproductions.md`` instead.

Exit status: 0 when every section was built; 3 when some failed (one line per failed section
on stderr, their tracebacks in the folder's ``report.log``; every other section is written);
2 with one line for a bad command line or unreadable results.

``python -m analysis explore RESULTS [--study S] [--port P] [--report DIR]``: serve the
interactive explorer (:mod:`analysis.explore`) on 127.0.0.1 and print its URL; the report
folder (default ``reports/<study>``) is served under ``/report/`` and linked, when it exists.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from analysis.load import AnalysisError
from analysis.report import LOG_NAME, write_report
from analysis.study import Study


USAGE_ERROR = 2
"""Exit status of a bad command line or unreadable input, as ``python -m sweep`` and argparse use."""

SECTIONS_FAILED = 3
"""Exit status when the report was written but some of its sections failed."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0; 3 when sections failed; 2 with a one-line
    error on stderr)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["explore"]:
        return explore(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m analysis", description="Tables, statistics and figures of an ablation study "
        "(python -m analysis explore RESULTS: the interactive explorer).")
    parser.add_argument("results", help="results root (local path or pyarrow URI)")
    parser.add_argument("--study", help="study to analyse (default: the only one there is)")
    parser.add_argument("--out", help="report folder (default: reports/<study>)")
    parser.add_argument("--svg", action="store_true", help="also write every figure as SVG")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="topics built at once, each in its own process (default: 2)")
    parser.add_argument("--markdown", metavar="DOCS", help="instead of the report, rewrite the generated tables "
                        "of DOCS/reproductions.md and the per-seed CSV beside it (study: experiment=paper)")
    args = parser.parse_args(argv)
    try:
        study = Study.open(args.results, args.study)  # a truncated part: refused before writing
        if args.markdown:
            from analysis.docs import write_docs

            print("\n".join(map(str, write_docs(study, Path(args.markdown)))))
            return 0
        result = write_report(study, out_dir=args.out, svg=args.svg, jobs=args.jobs)
    except AnalysisError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    for name, line in result.failures:
        print(f"error: section {name!r} failed: {line}", file=sys.stderr)
    if result.failures:
        print(f"{result.index} written without {len(result.failures)} section(s); tracebacks in "
              f"{result.index.parent / LOG_NAME}", file=sys.stderr)
        return SECTIONS_FAILED
    print(result.index)
    return 0


def explore(argv: Sequence[str]) -> int:
    """``explore RESULTS [--study S] [--port P]``: serve until Ctrl-C (then 0); 2 with one
    line on stderr for a missing extra, unreadable results or a port that is taken."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis explore",
        description="Serve an interactive explorer of one study on 127.0.0.1 (the URL printed "
                    "carries a random access token).")
    parser.add_argument("results", help="results root (local path or pyarrow URI)")
    parser.add_argument("--study", help="study to explore (default: the only one there is)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--report", help="report folder to serve under /report/ and link to, when it "
                                         "exists (default: reports/<study>, as python -m analysis writes it)")
    args = parser.parse_args(argv)
    from analysis.explore import missing_extra

    if hint := missing_extra():
        print(f"error: {hint}", file=sys.stderr)
        return USAGE_ERROR
    from analysis.explore.app import serve
    from analysis.explore.session import Explorer, ReportLinks

    try:
        explorer = Explorer(args.results, args.study)
        serve(explorer, args.port, ReportLinks(args.report or Path("reports") / explorer.study))
    except AnalysisError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except OSError as error:  # the port is taken
        print(f"error: cannot listen on port {args.port}: {error.strerror}", file=sys.stderr)
        return USAGE_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
