"""Benchmark: every pair of hidden units of an MNIST MLP removed, kernel against the naive loop.

    python bench/pairs.py --models /work/pruning-results/models            # NN_392, seed 0
    python bench/pairs.py --model nn_392_196 --out bench/pairs_392_196.json

Data: MNIST 90/10 holdout (63,000 / 7,000), as ``python -m sweep dataset=mnist
dataset.val_fraction=0.1`` (the model of :mod:`bench.pruning`: that sweep's seed 0 when
``--models`` holds it, else trained here with 2 threads); measured on the 7,000 test rows,
mode ``zero``, ``accuracy`` metrics, 2 BLAS threads.

- ``kernel_s``: :func:`sweep.kernels.pairs.ablate_pairs` over all pairs (single effects and
  screening tables included; the unablated pass ``prepare`` timed apart as ``prepare_s``);
- ``naive_s``: copy the classifier, zero both units' incoming weights and bias, sklearn's
  ``predict`` on the test rows, timed on ``--naive`` seeded pairs and extrapolated to all;
- ``mismatches``: pairs of the naive sample whose broken / fixed / accuracy differ from the
  kernel's; half the sample is drawn among the pairs whose prediction counts changed;
- ``peak_mib``: peak traced allocation (tracemalloc, a separate run over the first
  ``--traced`` first units; the kernel holds one pass copy at a time, so it does not grow).

Results go to ``--out`` (JSON) and are printed.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "2"

import argparse
import copy
import json
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.mnist_model import model_and_data  # noqa: E402
from sweep.kernels import prepare
from sweep.kernels.network import Network
from sweep.kernels.pairs import ablate_pairs, pair_count


def naive_pair(clf: Any, X: np.ndarray, pair: np.ndarray) -> np.ndarray:
    """sklearn's predictions with both units of ``pair`` (layer_a, unit_a, layer_b, unit_b) zeroed."""
    ablated = copy.deepcopy(clf)
    for layer, unit in (pair[:2], pair[2:]):
        ablated.coefs_[layer][:, unit] = 0.0
        ablated.intercepts_[layer][unit] = 0.0
    return ablated.predict(X)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nn_392")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--models", default=None, help="a sweep's models root holding the seed-0 model")
    parser.add_argument("--naive", type=int, default=200, help="pairs timed the naive way (and checked)")
    parser.add_argument("--traced", type=int, default=8, help="first units of the traced-memory run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "pairs.json"))
    args = parser.parse_args()

    clf, data, source = model_and_data(args.model, args.data_dir, args.models)
    X, y = data.X_test, data.y_test
    net = Network.from_classifier(clf)
    units = np.array([(l, u) for l, width in enumerate(net.hidden_sizes) for u in range(width)])
    n_pairs = pair_count(len(units))

    start = time.perf_counter()
    base = prepare(net, X, y)
    prepare_s = time.perf_counter() - start
    start = time.perf_counter()
    columns = ablate_pairs(net, X, y, units, base=base, metrics="accuracy")
    kernel_s = time.perf_counter() - start

    tracemalloc.start()
    ablate_pairs(net, X, y, units, 0, args.traced, base=base, metrics="accuracy")
    peak_mib = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()

    rng = np.random.default_rng(args.seed)
    changed = np.flatnonzero(columns["broken"] + columns["fixed"] > 0)
    half = min(args.naive // 2, len(changed))
    sample = np.unique(np.concatenate([
        rng.choice(changed, half, replace=False), rng.choice(n_pairs, args.naive - half, replace=False)
    ]))
    pairs = np.column_stack([columns[k] for k in ("layer_a", "unit_a", "layer_b", "unit_b")])
    right_base = clf.predict(X) == y
    mismatches = 0
    start = time.perf_counter()
    for k in sample:
        right = naive_pair(clf, X, pairs[k]) == y
        expected = (np.sum(right_base & ~right), np.sum(~right_base & right), right.mean())
        mismatches += expected != (columns["broken"][k], columns["fixed"][k], columns["accuracy"][k])
    naive_per_pair = (time.perf_counter() - start) / len(sample)

    result = {
        "model": args.model, "hidden": list(net.hidden_sizes), "source": source, "rows": len(y),
        "mode": "zero", "metrics": "accuracy", "threads": os.environ["OPENBLAS_NUM_THREADS"],
        "load_average": list(os.getloadavg()), "pairs": n_pairs, "prepare_s": prepare_s,
        "kernel_s": kernel_s, "pairs_per_s": n_pairs / kernel_s,
        "naive_s": naive_per_pair * n_pairs, "naive_extrapolated_from": len(sample),
        "ratio": naive_per_pair * n_pairs / kernel_s, "peak_mib": peak_mib,
        "peak_traced_first_units": args.traced, "checked": len(sample),
        "checked_changed": int(np.isin(sample, changed).sum()), "mismatches": int(mismatches),
        "pairs_changed": len(changed), "redundant": int(np.sum(columns["interaction"] < 0)),
        "better_than_sum": int(np.sum(columns["interaction"] > 0)),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
