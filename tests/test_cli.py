"""The command lines as a newcomer meets them: help, one-line errors, exit codes, Ctrl-C."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from analysis.__main__ import main as analysis_main
from sweep.data.datasets import DATASETS, load_dataset
from sweep.kernels.modes import NEURON_MODES
from sweep.kinds import ABLATIONS, KINDS
from sweep.spec import PathsSpec, RaySpec, RunSpec
from tests.conftest import MNIST_DIR

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "release_0_1"


def sweep_cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "sweep", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_help_says_what_the_tool_does_and_lists_the_allowed_values(tmp_path):
    result = sweep_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("python -m sweep: exact ablation sweeps")
    assert "powered by Hydra" not in result.stdout and "_schema" not in result.stdout
    assert f"  ablation: {', '.join(sorted(ABLATIONS))}" in result.stdout
    assert f"  ablation.modes: {', '.join(NEURON_MODES)}" in result.stdout
    assert f"  dataset.name: {', '.join(DATASETS)}" in result.stdout
    top_level = [f"{prefix}{f.name}=" for prefix, cls in (("", RunSpec), ("paths.", PathsSpec), ("ray.", RaySpec))
                 for f in fields(cls) if f.name not in ("model", "dataset", "ablation", "ray", "paths")]
    assert all(f"\n  {key}" in result.stdout for key in top_level), top_level
    assert "\n  seeds=[0]\n" in result.stdout and "\n  progress=true\n" in result.stdout


def test_the_smoke_preset_sweeps_every_ablation():
    import yaml

    preset = yaml.safe_load((REPO / "conf" / "experiment" / "smoke.yaml").read_text())
    assert preset["hydra"]["sweeper"]["params"]["ablation"].split(",") == list(ABLATIONS)


@pytest.mark.slow
@pytest.mark.ray
def test_the_smoke_preset_writes_every_kind_and_nothing_in_the_current_folder(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    result = sweep_cli("-m", "experiment=smoke", f"paths.results={tmp_path / 'r'}", cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    written = sorted(p.name.removeprefix("kind=") for p in (tmp_path / "r" / "smoke").glob("kind=*"))
    assert written == sorted(KINDS) and list(work.iterdir()) == []


def test_hydra_names_the_job_sweep(tmp_path):
    result = sweep_cli("--cfg", "hydra", cwd=tmp_path)
    assert result.returncode == 0 and "  name: sweep\n" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("-m", "model=nn_392,nn_392_196", "dataset.val_fraction=0.1,1.5"),
     "error: dataset.val_fraction=1.5 is out of range; expected a number in [0, 1)"),
    (("dataset.valfraction=0.1",), "error: dataset.valfraction is not a setting; did you mean dataset.val_fraction?"),
    (("+dataset.verify=false",), "error: dataset.verify is not a setting; known keys: name, data_dir"),
    (("+dataset.md5=null",), "error: dataset.md5 is not a setting"),
    (("ablation.orders=[random]",), "error: ablation.orders is not a setting; did you mean ablation.modes? "
                                    "(settings of ablation=neurons:"),
    (("experiment=amjod",), "error: In 'config': Could not find 'experiment/amjod' Available options in 'experiment': "
                            + " ".join(sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")))),
    (("dataset.label=mnist/raw",), "error: dataset.label='mnist/raw' is invalid; expected a name of letters, digits"),
    (("model.name=../x",), "error: model.name='../x' is invalid; expected a name of letters, digits"),
    (("seeds=abc",), "error: seeds=abc is invalid: seeds takes a list of integers, e.g. seeds=[0,1,2]"),
    (("seeds=[0,1",), "error: 'seeds=[0,1' cannot be read: seeds takes a list of integers, e.g. seeds=[0,1,2]"),
    (("ablation=cumulative", "ablation.scopes=[layer2]"), "error: ablation.scopes has 'layer2'; choose from "
                                                          "network, layers, layer0"),
])
def test_mistakes_are_one_line_with_exit_code_2(tmp_path, args, message):
    result = sweep_cli(*args, f"paths.results={tmp_path / 'r'}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(message)
    assert "Config" not in result.stderr and "ListConfig" not in result.stderr  # no OmegaConf words
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no results, no Hydra outputs/


def test_analysis_names_a_truncated_part_and_writes_nothing(tmp_path, capsys):
    root = tmp_path / "results"
    shutil.copytree(FIXTURE, root)
    part = sorted(root.rglob("part-*.parquet"))[3]
    part.write_bytes(part.read_bytes()[:200])
    out = tmp_path / "report"
    assert analysis_main([str(root), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {part} is truncated or corrupt; rerun the sweep that wrote it")
    assert len(error.strip().splitlines()) == 1 and not out.exists()
    assert analysis_main([str(tmp_path / "missing")]) == 2


@pytest.mark.slow
@pytest.mark.skipif(not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists(), reason="MNIST files not available")
def test_a_folder_of_gunzipped_mnist_files_reads_like_the_originals(tmp_path):
    for path in MNIST_DIR.glob("*.gz"):
        (tmp_path / path.stem).write_bytes(gzip.decompress(path.read_bytes()))
    ours = load_dataset("mnist", data_dir=str(tmp_path), split="official")
    originals = load_dataset("mnist", data_dir=str(MNIST_DIR), split="official")
    for a, b in zip(ours, originals):
        np.testing.assert_array_equal(a, b)
    corrupt = tmp_path / "t10k-labels-idx1-ubyte"
    corrupt.write_bytes(corrupt.read_bytes()[:-1] + b"\x07")
    with pytest.raises(Exception, match="t10k-labels-idx1-ubyte has md5 .* \\(corrupt file\\)"):
        load_dataset("mnist", data_dir=str(tmp_path), split="official")


@pytest.mark.slow
@pytest.mark.ray
def test_ctrl_c_is_one_line_and_exit_code_130(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # tol=0 and a large max_iter: training runs until interrupted, however fast the machine
    command = [sys.executable, "-m", "sweep", "model.hidden_layer_sizes=[1024,1024]", "model.name=big",
               "model.tol=0", "model.max_iter=100000", f"paths.results={tmp_path / 'r'}"]
    # as a terminal's foreground job: SIGINT not ignored (a suite started in the background by a
    # non-interactive shell, as CI may be, inherits SIGINT ignored, and Python then keeps it so)
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(process.stderr.fileno(), 4096), b"")))
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and b"training" not in b"".join(chunks):  # past the checks, Ray up
            time.sleep(0.2)
        time.sleep(2)  # the model training: a sweep in progress
        os.killpg(process.pid, signal.SIGINT)  # what a terminal sends to the foreground group
        process.wait(timeout=120)
    finally:
        if process.poll() is None:  # never leave a sweep training behind a failed test
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    reader.join(timeout=10)
    stderr = b"".join(chunks).decode()
    assert process.returncode == 130
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip() and not line.startswith("training")]
    assert lines == ["interrupted: finished parts are kept; run the same command again to resume"]
