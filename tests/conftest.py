"""Shared fixtures: composed Hydra configs and one local Ray per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sweep.hydra_config import compose_run
from sweep.spec import RunSpec

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = Path(os.environ.get("SWEEP_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist"))


@pytest.fixture
def run_config(tmp_path):
    """Factory: a RunSpec writing under ``tmp_path``, quiet, on the small digits default."""

    def make(*overrides: str) -> RunSpec:
        return compose_run([f"paths.results={tmp_path / 'results'}", "progress=false", *overrides])

    return make


@pytest.fixture
def local_ray():
    """A private 2-CPU local Ray, started once and reused (sweeps join it instead of starting
    their own); tests that run their own clusters shut it down, and the next use restarts it."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    return ray
