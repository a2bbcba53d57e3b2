"""Shared fixtures: composed Hydra configs and one local Ray per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from sweep.__main__ import config_dir
from sweep.config import RunConfig, register_schema, to_run_config

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = Path(os.environ.get("SWEEP_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist"))

register_schema()


def compose_run(overrides: list[str]) -> RunConfig:
    """The validated RunConfig that ``python -m sweep OVERRIDES`` would run."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return to_run_config(compose(config_name="config", overrides=overrides))


@pytest.fixture
def run_config(tmp_path):
    """Factory: a RunConfig writing under ``tmp_path``, quiet, on the small digits default."""

    def make(*overrides: str) -> RunConfig:
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
