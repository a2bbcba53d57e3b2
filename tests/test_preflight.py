"""What can be checked before training is checked before training: one line naming the key and
the fix, exit code 2, and nothing trained or written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweep.results import store as store_module
from sweep.results.store import StoreError
from sweep.run import pipeline
from sweep.run.executor import ExecutionError

REPO = Path(__file__).resolve().parents[1]
TINY = ("model.hidden_layer_sizes=[16]", "model.name=tiny", "model.max_iter=20")


def sweep_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "sweep", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize(("overrides", "message"), [
    (("ablation=synapses", "ablation.top_harmful=5"), "ablation.top_harmful chooses neurons on the validation split"),
    (("ablation=cumulative", "ablation.orders=[effect_high]"), "set dataset.val_fraction=0.1"),
    (("ray.num_cpus=0",), "ray.num_cpus=0 is out of range; expected a number >= 1"),
    (("dataset.val_fraction=1.5",), "expected a number in [0, 1)"),
    (("dataset.label_noise=2",), "expected a number in [0, 1]"),
])
def test_settings_that_cannot_work_fail_at_the_command_line(tmp_path, overrides, message):
    error = one_line_error(sweep_cli(*overrides, f"paths.results={tmp_path / 'r'}", cwd=tmp_path))
    assert message in error
    assert not (tmp_path / "r").exists()


def test_a_results_root_that_is_a_file_fails_before_training(tmp_path):
    target = tmp_path / "not-a-folder"
    target.write_text("x")
    error = one_line_error(sweep_cli(*TINY, f"paths.results={target}", cwd=tmp_path))
    assert "is a file, not a folder" in error and str(target) in error
    assert target.read_text() == "x"


def test_an_unreachable_object_store_fails_in_one_line(tmp_path):
    root = "s3://bucket/sweeps?endpoint_override=127.0.0.1:9&scheme=http&region=us-east-1"
    error = one_line_error(sweep_cli(*TINY, f"paths.results='{root}'", cwd=tmp_path))
    assert "cannot reach paths.results=" in error and "127.0.0.1:9" in error


@pytest.mark.ray
def test_gpu_shares_without_gpus_fail_before_training(local_ray, run_config, tmp_path):
    with pytest.raises(ExecutionError, match=r"ray.num_gpus_per_worker=0.5 but the cluster has 0 GPUs"):
        pipeline.run(run_config(*TINY, "ray.num_gpus_per_worker=0.5"))
    assert not (tmp_path / "results" / "models").exists()


@pytest.mark.ray
def test_a_read_only_folder_reports_a_complete_study_and_refuses_new_work(local_ray, run_config, monkeypatch):
    cfg = run_config(*TINY)
    first = pipeline.run(cfg)
    manifest = Path(first.results, "_manifest.json")
    written = manifest.stat().st_mtime_ns

    def read_only(fs, path, data):
        raise PermissionError(30, "Read-only file system", path)

    monkeypatch.setattr(store_module.storage, "write_bytes_atomic", read_only)
    again = pipeline.run(cfg)  # complete: nothing to write, reported as usual
    assert again.rows_written == 0 and len(again.table) == 1
    assert manifest.stat().st_mtime_ns == written
    with pytest.raises(StoreError, match=r"1 model\(s\) must be trained but .* is read-only"):
        pipeline.run(run_config(*TINY, "seeds=[1]"))
    with pytest.raises(StoreError, match="is read-only and 2 neuron part"):
        pipeline.run(run_config(*TINY, "ablation.modes=[remove]", "ablation.splits=[test,train]"))


def before_ray(*args: str, cwd: Path) -> tuple[int, bool, str]:
    """``python -m sweep ARGS`` in a fresh interpreter: exit code, whether Ray was imported, stderr."""
    code = ("import sys\nsys.argv = ['sweep', *sys.argv[1:]]\nfrom sweep import __main__ as m\n"
            "try:\n    m.cli()\nexcept SystemExit as e:\n    print(e.code, 'ray' in sys.modules)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)
    status, ray_imported = result.stdout.split()[-2:]
    return int(status), ray_imported == "True", result.stderr


@pytest.fixture
def tiny_mnist_dir(tmp_path: Path) -> Path:
    """A folder of links to the original MNIST files (the records' md5s are the originals',
    and the damage is done to a copy)."""
    from tests.conftest import MNIST_DIR

    if not (MNIST_DIR / "t10k-labels-idx1-ubyte.gz").exists():
        pytest.skip("MNIST files not available")
    folder = tmp_path / "mnist"
    folder.mkdir()
    for path in MNIST_DIR.glob("*.gz"):
        (folder / path.name).symlink_to(path)
    return folder


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "missing"])
def test_a_damaged_data_file_is_one_line_before_ray_and_leaves_no_folder(tmp_path, tiny_mnist_dir, damage):
    labels = tiny_mnist_dir / "t10k-labels-idx1-ubyte.gz"
    good = labels.read_bytes()
    labels.unlink()
    if damage != "missing":
        labels.write_bytes(good[:-100] if damage == "truncated" else good[:-1] + bytes([good[-1] ^ 1]))
    status, ray_imported, stderr = before_ray("dataset=mnist", f"dataset.data_dir={tiny_mnist_dir}",
                                              f"paths.results={tmp_path / 'r'}", cwd=tmp_path)
    assert (status, ray_imported) == (2, False)
    [line] = [line for line in stderr.splitlines() if line.strip()]
    expected = {"truncated": "truncated or wrong file", "corrupt": "corrupt file", "missing": "cannot read"}[damage]
    assert line.startswith("error: ") and str(labels) in line and expected in line and "Fix: " in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist"]  # no results root, no outputs/


@pytest.mark.parametrize(("data_dir", "message"), [
    ("", "dataset.data_dir is empty; give the folder holding the dataset's files, e.g. dataset.data_dir=path/to/mnist"),
    ("nowhere", "nowhere is not a folder; expected the folder holding train-images-idx3-ubyte.gz"),
])
def test_a_data_dir_that_holds_nothing_is_one_line_before_ray(tmp_path, data_dir, message):
    status, ray_imported, stderr = before_ray("dataset=mnist", f"dataset.data_dir={data_dir}",
                                              f"paths.results={tmp_path / 'r'}", cwd=tmp_path)
    assert (status, ray_imported) == (2, False) and stderr.startswith("error: dataset.data_dir") and message in stderr
    assert len(stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_a_results_root_that_cannot_be_created_is_one_line_before_ray(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        status, ray_imported, stderr = before_ray(*TINY, f"paths.results={locked / 'r'}", cwd=tmp_path)
    finally:
        locked.chmod(0o700)
    assert (status, ray_imported) == (2, False)
    assert stderr.strip().startswith(f"error: cannot create {locked / 'r'} for paths.results=")
    assert "choose a folder you can write" in stderr and len(stderr.strip().splitlines()) == 1


def test_a_proc_results_root_is_not_called_read_only(tmp_path):
    """/proc cannot hold folders, whoever runs: the classic root-user case of the folder above."""
    status, ray_imported, stderr = before_ray(*TINY, "paths.results=/proc/ablation-sweep-test", cwd=tmp_path)
    assert (status, ray_imported) == (2, False) and "read-only" not in stderr
    assert stderr.strip().startswith("error: cannot create /proc/ablation-sweep-test for paths.results=")
    assert list(tmp_path.iterdir()) == []
