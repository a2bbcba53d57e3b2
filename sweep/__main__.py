"""``python -m sweep [overrides]``: compose the Hydra config, convert it, run the sweep."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
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


def override_error(args: list[str]) -> str | None:
    """Compose the config with the command line's overrides; one line saying what is wrong.

    Hydra reports a bad override over many lines (search paths, stack hints); this names
    the key and the allowed values on one. Sweeps (``-m``) and Hydra's own flags are left
    to Hydra.
    """
    overrides = [a for a in args if not a.startswith("-") and not a.startswith("hydra")]
    if len(overrides) != len(args):
        return None
    try:
        if any(o.is_sweep_override() for o in OverridesParser.create().parse_overrides(overrides)):
            return None
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            to_run_config(compose(config_name="config", overrides=overrides))
    except Exception as error:  # noqa: BLE001 - every composition failure is reported the same way
        text = str(error).split("Config search path")[0]
        if error.__cause__ is not None:
            text += ": " + str(error.__cause__).split("full_key")[0].strip() + f" (key {getattr(error.__cause__, 'full_key', '?')})"
        return " ".join(line.strip() for line in text.splitlines() if line.strip())
    return None


register_schema()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> None:
    from sweep import pipeline
    from sweep.summary import format_summary

    try:
        summary = pipeline.run(to_run_config(cfg))
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(format_summary(summary))


def cli() -> None:
    """Entry point: report a bad override in one line (exit 2), else run through Hydra."""
    problem = override_error(sys.argv[1:])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    main()


if __name__ == "__main__":
    cli()
