"""cluster.yaml: valid for Ray's cluster launcher, installs the package, opens nothing to the world."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import REPO, compose_run


@pytest.fixture(scope="module")
def launcher_config() -> dict:
    """cluster.yaml as ``ray up`` sees it: merged with the provider's defaults and validated."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(yaml.safe_load((REPO / "cluster.yaml").read_text()))
    validate_config(config)
    return config


def test_head_cpu_and_gpu_worker_types_install_the_package(launcher_config):
    types = launcher_config["available_node_types"]
    assert set(types) == {"head", "cpu_worker", "gpu_worker"}
    assert launcher_config["head_node_type"] == "head"
    assert launcher_config["file_mounts"]["~/ablation-sweep"] == "."
    assert any("pip install" in c and "ablation-sweep" in c for c in launcher_config["setup_commands"])
    assert any("[gpu]" in c for c in types["gpu_worker"]["worker_setup_commands"])


def test_no_port_is_opened_by_ray_and_token_auth_stays_on(launcher_config):
    # Ray's AWS launcher creates (and opens SSH to 0.0.0.0/0 on) a security group for every node
    # type without SecurityGroupIds; with them on every node type it creates none.
    from ray.autoscaler._private.aws.config import _configure_security_group

    assert "security_group" not in launcher_config["provider"]
    groups = [t["node_config"].get("SecurityGroupIds") for t in launcher_config["available_node_types"].values()]
    assert all(groups) and _configure_security_group(launcher_config) is launcher_config
    head_start = " ".join(launcher_config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start and "0.0.0.0" not in head_start
    starts = [c for c in launcher_config["head_start_ray_commands"] + launcher_config["worker_start_ray_commands"]
              if "ray start" in c]
    assert starts and all("RAY_AUTH_MODE=token" in c for c in starts)
    assert "~/.ray/auth_token" in launcher_config["file_mounts"]


def test_ray_cluster_config_joins_the_running_cluster():
    cfg = compose_run(["ray=cluster"])
    assert cfg.ray.address == "auto" and cfg.ray.include_dashboard is False
