"""Benchmark: the report (``python -m analysis``) on a study, against the neuron sweep that made
its data and against the slow ways the report used to compute.

    python bench/analysis.py                                  # the issue's digits study, built here
    python bench/analysis.py --root /work/results-18          # a study already there
    python bench/analysis.py --root R --study paper --label mnist_paper   # any other study

The digits study (issue 18): NN_392_196, 5 seeds, ``dataset.val_fraction=0.2``, one root holding
neurons; ``ablation=synapses ablation.top_harmful=10``; ``ablation=cumulative``;
``ablation=pairs ablation.layers=[1]``; ``ablation=pruning``.

Timed (wall and CPU seconds, one process, its BLAS on 2 threads):

- ``report_s``: the whole ``python -m analysis ROOT`` in a fresh process (start-up included),
  and ``sections``: each topic's build inside one process, in report order, on one loaded
  study (figures included; a topic reuses what earlier ones loaded, as in the report);
- ``neuron_sweep_s`` (digits study built here only): ``python -m sweep`` of the study's neuron
  sweep into a fresh root (start-up, Ray and training included), the target's yardstick;
- side by side on the study's first network, the two computations the report used to do slowly:
  ``bootstrap``: each layer's harmful set under 50 test resamples, one full ``ablate_neurons``
  per resample (before) against weighted counts of the per-image outcomes (now; exact, checked);
  ``bands``: the cumulative curve bands by per-group ``Series.quantile`` lambdas (before)
  against one grouped quantile (now; equal, checked).

Results go to ``--out`` (JSON, default ``bench/analysis.json``) with the package versions.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.sections import SECTIONS  # noqa: E402
from analysis.sections.base import Page  # noqa: E402
from analysis.sections.cumulative import curve_band  # noqa: E402
from analysis.sections.stability import bootstrap_harmful  # noqa: E402
from analysis.stats import jaccard  # noqa: E402
from analysis.study import NetworkKey, Study, network_keys  # noqa: E402
from sweep.kernels import ablate_neurons  # noqa: E402

DIGITS_STUDY = "model=nn_392_196 seeds=[0,1,2,3,4] dataset.val_fraction=0.2"
"""The issue's study: every sweep shares these settings."""

DIGITS_KINDS = ("", "ablation=synapses ablation.top_harmful=10", "ablation=cumulative",
                "ablation=pairs ablation.layers=[1]", "ablation=pruning")
"""The issue's sweeps, in order (the first is the neuron sweep)."""

N_BOOT = 50
"""Resamples in the bootstrap comparison (as the report drew before)."""


def sweep(root: Path, extra: str) -> float:
    """Wall seconds of one ``python -m sweep`` of the digits study into ``root``."""
    command = [sys.executable, "-m", "sweep", *DIGITS_STUDY.split(), *extra.split(),
               f"paths.results={root}", "progress=false"]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def timed(fn: Any) -> tuple[Any, float, float]:
    """``fn()``, its wall and CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def bootstrap_side_by_side(study: Study) -> dict[str, Any]:
    """Before: a full sweep per resample. Now: weighted counts of per-image outcomes."""
    key = network_keys(study.rows("neuron", "test"))[0]
    net = study.network(key)
    X, y = study.split(key, "test")
    units = [np.arange(w) for w in net.hidden_sizes]

    def before() -> list[np.ndarray]:
        out = []
        for layer, unit in enumerate(units):
            rng = np.random.default_rng(0)  # each layer's resamples, as bootstrap_harmful draws them
            for _ in range(N_BOOT):
                rows = rng.integers(0, len(y), size=len(y))
                out.append(ablate_neurons(net, X[rows], y[rows], layer, unit, "zero",
                                          metrics="accuracy")["effect"] > 0)
        return out

    def now() -> list[np.ndarray]:
        out = []
        for layer, unit in enumerate(units):
            fresh = Study(study.root, study.name)  # per-image outcomes computed, not cached
            result = bootstrap_harmful(fresh.flips(key, layer, "zero"), len(unit), len(y), N_BOOT)
            out.append(result.units["harmful_frequency"].to_numpy())
        return out

    slow, slow_s, _ = timed(before)
    fast, fast_s, _ = timed(now)
    frequencies = [np.mean(slow[i * N_BOOT:(i + 1) * N_BOOT], axis=0) for i in range(len(units))]
    mismatches = int(sum((a != b).sum() for a, b in zip(frequencies, fast)))
    return {"network": key.label(), "resamples": N_BOOT, "before_s": slow_s, "now_s": fast_s,
            "ratio": slow_s / fast_s, "mismatches": mismatches}


def bands_side_by_side(study: Study) -> dict[str, Any] | None:
    """Before: a ``Series.quantile`` lambda per group. Now: one grouped quantile."""
    if not study.has("cumulative"):
        return None
    rows = study.rows("cumulative")
    keys = ["dataset", "model", "seed", "mode", "split", "scope", "order", "k"]

    def before() -> pd.DataFrame:
        return rows.groupby(keys, sort=True)["accuracy"].agg(
            mean="mean", low=lambda s: s.quantile(0.025), high=lambda s: s.quantile(0.975),
            n="size").reset_index()

    slow, slow_s, _ = timed(before)
    fast, fast_s, _ = timed(lambda: curve_band(rows, keys=keys[:-1]))
    same = np.allclose(slow[["mean", "low", "high"]], fast[["mean", "low", "high"]])
    return {"groups": len(slow), "before_s": slow_s, "now_s": fast_s, "ratio": slow_s / fast_s,
            "equal": bool(same)}


def sections(study: Study, out: Path) -> dict[str, dict[str, float]]:
    """Each topic built on its own, on one loaded study (its rows and networks cached by the
    topics before it, as in one report)."""
    times = {}
    page = Page(out)
    for topic in SECTIONS:
        built, wall, cpu = timed(lambda: topic.build(study, page))
        times[topic.name] = {"wall_s": wall, "cpu_s": cpu, "sections": len(built)}
    return times


def versions() -> dict[str, str]:
    import matplotlib
    import scipy
    import sklearn

    return {"python": platform.python_version(), "numpy": np.__version__,
            "pandas": pd.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "matplotlib": matplotlib.__version__,
            "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                     capture_output=True, text=True).stdout.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", help="results root holding the study (default: build the "
                                       "digits study in a temporary folder)")
    parser.add_argument("--study", default=None, help="study name (default: the only one)")
    parser.add_argument("--label", default="digits_5_seeds", help="name of this study in the JSON")
    parser.add_argument("--out", default=str(ROOT / "bench" / "analysis.json"))
    args = parser.parse_args()
    record: dict[str, Any] = {"study": args.label, "cpus": os.cpu_count(),
                              "blas_threads": os.environ["OMP_NUM_THREADS"]}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root) if args.root else Path(tmp) / "results"
        if not args.root:
            record["sweep_s"] = {extra or "neurons": sweep(root, extra) for extra in DIGITS_KINDS}
            record["neuron_sweep_s"] = sweep(Path(tmp) / "fresh", "")
        out = Path(tmp) / "report"
        command = [sys.executable, "-m", "analysis", str(root), "--out", str(out)]
        command += ["--study", args.study] if args.study else []
        start = time.perf_counter()
        status = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        record["report_s"] = time.perf_counter() - start
        record["report_exit"] = status.returncode
        study = Study.open(root, args.study)
        record["networks"] = len(study.runs)
        record["sections"] = sections(study, Path(tmp) / "sections")
        record["bootstrap"] = bootstrap_side_by_side(Study.open(root, args.study))
        record["bands"] = bands_side_by_side(Study.open(root, args.study))
    if "neuron_sweep_s" in record:
        record["report_over_neuron_sweep"] = record["report_s"] / record["neuron_sweep_s"]
    record["versions"] = versions()
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
