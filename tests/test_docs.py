"""The documentation stays true: the configuration page matches the registries, the two-machine
table matches the per-seed CSVs beside it, and the examples in the public entry points'
docstrings run."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCTESTED = ["sweep.spec", "sweep.data.datasets", "sweep.kernels.neurons", "sweep.results.store"]
"""Modules whose docstring examples are run (the public entry points of docs/api.md)."""


def test_the_configuration_page_is_written_from_the_registries():
    done = subprocess.run([sys.executable, "docs/scripts/configuration.py", "--check"], cwd=REPO, capture_output=True,
                          text=True, env={"PYTHONPATH": str(REPO), "PATH": ""}, timeout=120)
    assert done.returncode == 0, "docs/configuration.md is out of date: run python docs/scripts/configuration.py"


def test_the_two_machines_table_is_written_from_the_per_seed_csvs():
    done = subprocess.run([sys.executable, "docs/scripts/machines.py", "--check"], cwd=REPO, capture_output=True,
                          text=True, env={"PYTHONPATH": str(REPO), "PATH": ""}, timeout=120)
    assert done.returncode == 0, "docs/reproductions.md's paper-machines is out of date: run docs/scripts/machines.py"


@pytest.mark.parametrize("name", DOCTESTED)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)  # sklearn's convergence notice in the examples
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
