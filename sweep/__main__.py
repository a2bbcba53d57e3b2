"""``python -m sweep [overrides]``: compose the Hydra config, convert it, run the sweep."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from sweep.config import ConfigError, register_schema, to_run_config
from sweep.datasets import DatasetError
from sweep.execute import ExecutionError
from sweep.store import StoreError

USER_ERRORS = (ConfigError, DatasetError, ExecutionError, StoreError)
"""Failures a user can fix: reported as one line, exit code 2."""


def config_dir() -> str:
    """``conf/`` of a source checkout, or the copy installed as ``sweep/conf``."""
    installed = Path(__file__).parent / "conf"
    return str(installed if installed.is_dir() else Path(__file__).parent.parent / "conf")


register_schema()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> None:
    from sweep import pipeline
    from sweep.report import format_summary

    try:
        summary = pipeline.run(to_run_config(cfg))
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(format_summary(summary))


if __name__ == "__main__":
    main()
