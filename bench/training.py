"""Benchmark: the sweep's training step against a plain one-thread ``MLPClassifier.fit``, side by side.

    python bench/training.py                                  # digits and MNIST NN_392, quiet and loaded
    python bench/training.py --datasets digits --loads quiet  # a quick look

For each dataset and load (``quiet``, or ``busy``: two ``yes > /dev/null`` loops at normal
priority, as a laptop with a browser and an IDE open) it times, in one run:

- ``plain``: ``MLPClassifier(random_state=0).fit`` in this process with one BLAS thread;
- ``sweep``: the fit inside the sweep's Ray training task (the ``train_seconds`` its artifact
  records), with this release's defaults: one BLAS thread per training task, local Ray workers
  at niceness 0; and ``sweep_step``: the whole ``train`` step of ``python -m sweep``
  (``pipeline.run``'s own clock: the object-store copy of the data, scheduling, a worker
  process's imports if none is ready, the fit, scoring and saving the artifact);
- ``first_release`` (digits only, skipped with ``--no-first-release``): the same with the first
  release's settings: two BLAS threads per task on this 2-core machine and Ray's worker
  niceness of 15; stopped after ``--first-release-limit`` seconds (recorded as not finished).

It reports each time, the ratios sweep / plain (target <= 1.5) and sweep_step / plain, and
whether the sweep's weights are bit-identical to the plain fit's, and writes ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sweep.data.datasets import load_dataset  # noqa: E402
from sweep.data.models import load_network, train_classifier  # noqa: E402
from sweep.hydra_config import compose_run  # noqa: E402

MNIST_DIR = Path(os.environ.get("SWEEP_MNIST_DIR", ROOT.parent / "shared" / "data" / "mnist"))
DATASETS = {
    "digits": ["dataset=digits"],
    "mnist": ["dataset=mnist", f"dataset.data_dir={MNIST_DIR}"],
}


@contextlib.contextmanager
def load(kind: str) -> Iterator[None]:
    """Two busy loops at normal priority for ``busy``; nothing for ``quiet``."""
    loops = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(2 if kind == "busy" else 0)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def sweep_training(
    overrides: list[str], root: Path, niceness: str, limit: float | None = None
) -> tuple[float, float, Path]:
    """The fit seconds (inside the training task) and the ``train`` step seconds of a fresh
    ``python -m sweep`` run in a child process (its own Ray, started with
    ``RAY_worker_niceness=niceness``), and the trained model's path.

    Raises
    ------
    subprocess.TimeoutExpired
        If ``limit`` seconds pass first (the run is stopped).
    """
    code = (
        "import json, sys\n"
        "from sweep.hydra_config import compose_run\nfrom sweep.run import pipeline\n"
        "summary = pipeline.run(compose_run(sys.argv[1:]))\n"
        "run = summary.runs[0]\n"
        "print(json.dumps({'fit': run['timings']['train_seconds'], 'step': summary.seconds['train'],"
        " 'model': run['model_path']}))\n"
    )
    env = {**os.environ, "RAY_worker_niceness": niceness, "PYTHONPATH": str(ROOT)}
    args = [*overrides, f"paths.results={root}", "progress=false", "ray.num_cpus=2"]
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True,
                         timeout=limit)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["fit"], result["step"], Path(result["model"])


def measure(dataset: str, load_kind: str, first_release: bool, tmp: Path, limit: float) -> dict:
    overrides = ["model=nn_392", "ablation.layers=[0]", "ablation.metrics=accuracy", *DATASETS[dataset]]
    spec = compose_run(overrides)
    data = load_dataset(**spec.dataset.loader_params())
    row: dict = {"dataset": dataset, "load": load_kind, "n_train": len(data.y_train)}
    with load(load_kind):
        start = time.perf_counter()
        plain = train_classifier(spec.model, data.X_train, data.y_train, seed=0, threads=1)
        row["plain_s"] = time.perf_counter() - start
        row["sweep_s"], row["sweep_step_s"], model = sweep_training(overrides, tmp / f"{dataset}-{load_kind}", "0")
        if first_release:
            try:
                row["first_release_s"], row["first_release_step_s"], _ = sweep_training(
                    [*overrides, "ray.threads_per_worker=2"], tmp / f"{dataset}-{load_kind}-old", "15", limit)
            except subprocess.TimeoutExpired:
                row["first_release_s"] = row["first_release_step_s"] = None
                row["first_release_stopped_after_s"] = limit
    net = load_network(str(model))
    row["identical_weights"] = all(
        np.array_equal(a, b) for a, b in zip([*net.coefs, *net.intercepts], [*plain.coefs_, *plain.intercepts_]))
    row["ratio"] = row["sweep_s"] / row["plain_s"]
    row["step_ratio"] = row["sweep_step_s"] / row["plain_s"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "mnist"], choices=list(DATASETS))
    parser.add_argument("--loads", nargs="+", default=["quiet", "busy"], choices=["quiet", "busy"])
    parser.add_argument("--no-first-release", action="store_true")
    parser.add_argument("--first-release-limit", type=float, default=300.0, help="seconds")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("training.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            for load_kind in args.loads:
                first = dataset == "digits" and not args.no_first_release
                row = measure(dataset, load_kind, first, Path(tmp), args.first_release_limit)
                rows.append(row)
                old = "" if "first_release_s" not in row else (
                    f", first release not done after {args.first_release_limit:.0f} s" if row["first_release_s"] is None else
                    f", first release fit {row['first_release_s']:.1f} s (step {row['first_release_step_s']:.1f} s)")
                print(f"{dataset:7s} {load_kind:5s}: plain {row['plain_s']:.1f} s, sweep fit {row['sweep_s']:.1f} s "
                      f"(ratio {row['ratio']:.2f}), step {row['sweep_step_s']:.1f} s (ratio {row['step_ratio']:.2f})"
                      f"{old}, identical weights: {row['identical_weights']}", flush=True)
    report = {"cpu_count": os.cpu_count(), "machine": platform.machine(), "load_average": os.getloadavg(), "runs": rows}
    args.out.write_text(json.dumps(report, indent=2))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
