"""Throughput of a synapse sweep on 1 and 2 Ray workers (one BLAS thread each).

The sweep uses ``ablation.metrics=full`` (every changed row recomputed, exact loss), so
that the work is compute-bound and cut into a few dozen shards.

    python bench/scaling.py [--hidden 256 128] [--workers 1 2] [--out bench/scaling.json]

Trains a small model on digits once, then runs the same sweep (every synapse ablated, test
split) on a fresh local Ray per worker count, each into its own results folder, and prints
ablations per second, the speed-up over one worker and the parallel efficiency
(speed-up / workers). Figures are noisy on a machine whose cores are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import ray

from sweep.hydra_config import compose_run
from sweep.run import pipeline
from sweep.run import ray_executor as execute
from sweep.spec import RunSpec


def sweep_config(results: Path, models: Path, hidden: list[int], workers: int) -> RunSpec:
    """The benchmark's synapse sweep on ``workers`` local CPUs (shards of ~5e8 multiply-adds)."""
    overrides = [
        "ablation=synapses", "ablation.metrics=full", "ablation.shard_cost=5e7", f"model.hidden_layer_sizes={hidden}", "model.name=bench", "model.max_iter=30",
        f"paths.results={results}", f"paths.models={models}", f"ray.num_cpus={workers}", "progress=false",
    ]
    return compose_run(overrides)


@ray.remote(num_cpus=1)
def _start_worker() -> None:
    """Occupy one worker slot for a moment, with the kernels imported."""
    import sweep.run.worker  # noqa: F401

    time.sleep(1.0)


def measure(cfg: RunSpec) -> dict[str, float]:
    """Run the sweep on a fresh Ray of ``cfg.ray.num_cpus`` CPUs; its ablation time and rate.

    The worker processes are started before the clock runs (their start-up, seconds of
    imports, would otherwise count against the larger pool).
    """
    ray.shutdown()
    execute.connect(cfg.ray)
    ray.get([_start_worker.remote() for _ in range(cfg.ray.num_cpus)])
    summary = pipeline.run(cfg)
    ray.shutdown()
    seconds = summary.seconds["ablate"]
    return {"workers": cfg.ray.num_cpus, "rows": summary.rows_written, "seconds": seconds,
            "ablations_per_second": summary.rows_written / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 128])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("scaling.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp, "models")
        ray.shutdown()
        pipeline.run(sweep_config(Path(tmp, "warmup"), models, args.hidden, max(args.workers)))  # trains once
        runs = [measure(sweep_config(Path(tmp, f"w{n}"), models, args.hidden, n)) for n in args.workers]
    base = runs[0]["ablations_per_second"] / runs[0]["workers"]
    for run in runs:
        run["speedup"] = run["ablations_per_second"] / runs[0]["ablations_per_second"]
        run["efficiency"] = run["ablations_per_second"] / (base * run["workers"])
        print(f"{run['workers']} worker(s): {run['rows']} ablations in {run['seconds']:.2f} s = "
              f"{run['ablations_per_second']:.0f}/s, speed-up {run['speedup']:.2f}x, efficiency {run['efficiency']:.0%}")
    report = {"hidden": args.hidden, "cpu_count": os.cpu_count(), "machine": platform.machine(),
              "load_average": os.getloadavg(), "runs": runs}
    args.out.write_text(json.dumps(report, indent=2))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
