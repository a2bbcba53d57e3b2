"""``python -m sweep [overrides]``: compose the Hydra config, convert it, run the sweep."""

from __future__ import annotations

import contextlib
import io
import os
import sys

import hydra
from omegaconf import DictConfig

from sweep.hydra_config import config_dir, help_text, override_error, register_schema, to_run_spec

register_schema()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> None:
    from sweep.run import pipeline
    from sweep.run.summary import format_summary

    try:
        summary = pipeline.run(to_run_spec(cfg))
    except pipeline.USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(format_summary(summary))


INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT), as shells report it."""


def cli() -> None:
    """Entry point: report a bad override in one line (exit 2), else run through Hydra; Ctrl-C
    is one line (exit 130): every finished part is on disk, and the same command resumes."""
    if {"--help", "-h"} & set(sys.argv[1:]):
        print(help_text())
        sys.exit(0)
    try:
        problem = override_error(sys.argv[1:])
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            sys.exit(2)
        main()
    except KeyboardInterrupt:
        from sweep.run.executor import shutdown

        with contextlib.redirect_stderr(io.StringIO()):
            shutdown()  # a local Ray's processes stop with it
        print("interrupted: finished parts are kept; run the same command again to resume", file=sys.stderr)
        sys.stderr.flush()
        os._exit(INTERRUPTED)  # no interpreter teardown: exit hooks would print tracebacks


if __name__ == "__main__":
    cli()
