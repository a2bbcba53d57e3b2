"""Benchmark: the whole greedy pruning path of NN_392 on MNIST, against recomputing from scratch.

    python bench/pruning.py --models /work/pruning-results/models   # a sweep's trained NN_392 seed 0
    python bench/pruning.py --naive-steps 2 --check-steps 6

Data: MNIST 90/10 holdout (63,000 / 7,000), ``dataset.val_fraction=0.1`` (val 6,300 rows: every
choice is made there), pixels / 255, as ``python -m sweep dataset=mnist dataset.val_fraction=0.1``.
The model is that sweep's NN_392 seed 0 when ``--models`` holds it, else trained here (2 threads).

Timed, with 2 BLAS threads:

- ``greedy_s``: :func:`sweep.kernels.pruning.pruning_path` (method ``greedy``, mode ``zero``,
  every step, val and test recorded after each);
- ``naive_s``: the same path recomputed from scratch: at every step, for every remaining unit,
  copy the weights, edit them (the removed units and the candidate) and run sklearn's
  ``predict_proba`` on val; timed on ``--naive-steps`` seeded steps and extrapolated to all
  ``K (K + 1) / 2`` candidates (its cost per candidate does not depend on the step); its choices
  there are compared with the path's;
- ``fresh_base_s``: the kernel's sweep (screening tables recomputed too), but with the pruned
  network's forward pass recomputed (a fresh ``PrunedPass``) at every step instead of updated by rank-1
  changes; timed on ``--fresh-steps`` seeded steps, their mean times the number of steps.

Exactness: on ``--check-steps`` seeded steps (plus the first and last) the recorded val and test
accuracy must equal sklearn's with those units' weights edited (``oracle_mismatches``).
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
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import log_loss

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.mnist_model import model_and_data  # noqa: E402
from sweep.kernels import PrunedPass, unit_replacements
from sweep.kernels.network import Network
from sweep.kernels.pruning import greedy_choice, pruning_path

MODE = "zero"


def edited(clf: Any, units: list[tuple[int, int]]) -> Any:
    """A deep copy of ``clf`` with ``units`` removed in ``zero`` mode (the naive oracle)."""
    pruned = copy.deepcopy(clf)
    for layer, unit in units:
        pruned.coefs_[layer][:, unit] = 0.0
        pruned.intercepts_[layer][unit] = 0.0
    return pruned


def naive_step(clf: Any, removed: list[tuple[int, int]], remaining: list[tuple[int, int]], X, y) -> tuple[tuple[int, int], float]:
    """One greedy step from scratch: every candidate's val accuracy and loss from sklearn;
    returns the choice (most right, then lower loss, then lower unit) and the seconds taken."""
    start = time.perf_counter()
    keys = []
    for unit in remaining:
        prob = edited(clf, [*removed, unit]).predict_proba(X)
        right = int(np.sum(clf.classes_[prob.argmax(axis=1)] == y))
        keys.append((-right, log_loss(y, prob, labels=clf.classes_), unit))
    return min(keys)[2], time.perf_counter() - start


def fresh_step(net: Network, removed: list[tuple[int, int]], remaining: np.ndarray, X, y, values) -> float:
    """One greedy step with the pruned net's forward pass recomputed (a fresh ``PrunedPass``): seconds."""
    start = time.perf_counter()
    coefs, intercepts = [w.copy() for w in net.coefs], [b.copy() for b in net.intercepts]
    for layer, unit in removed:  # zero mode, as ablated_neuron_network, in one copy
        coefs[layer][:, unit] = 0.0
        intercepts[layer][unit] = 0.0
    greedy_choice([PrunedPass.start(net.with_weights(tuple(coefs), tuple(intercepts)), X, y, values, MODE)], remaining)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("SWEEP_MNIST_DIR", str(ROOT.parent / "shared/data/mnist")))
    parser.add_argument("--models", default=None, help="a sweep's models folder (paths.results/models)")
    parser.add_argument("--naive-steps", type=int, default=3, help="steps recomputed from scratch")
    parser.add_argument("--fresh-steps", type=int, default=12, help="steps timed with a fresh forward pass")
    parser.add_argument("--check-steps", type=int, default=8, help="seeded steps checked against sklearn")
    parser.add_argument("--out", default=str(ROOT / "bench" / "pruning.json"))
    args = parser.parse_args()

    clf, data, source = model_and_data("nn_392", args.data_dir, args.models)
    net = Network.from_classifier(clf)
    values = unit_replacements(net, MODE)
    splits = {"val": (data.X_val, data.y_val), "test": (data.X_test, data.y_test)}
    start = time.perf_counter()
    path = pruning_path(net, splits, "greedy", values, mode=MODE)
    greedy_s = time.perf_counter() - start
    val = path["split"] == "val"
    order = list(zip(path["layer"][val][1:].tolist(), path["unit"][val][1:].tolist()))
    K = len(order)

    rng = np.random.default_rng(0)
    sampled = sorted(rng.choice(K, size=min(args.naive_steps, K), replace=False).tolist())
    all_units = [(0, u) for u in range(net.hidden_sizes[0])]
    remaining = lambda t: [u for u in all_units if u not in set(order[:t])]  # noqa: E731
    naive_per_candidate, choice_mismatches = [], 0
    for t in sampled:
        choice, seconds = naive_step(clf, order[:t], remaining(t), data.X_val, data.y_val)
        naive_per_candidate.append(seconds / len(remaining(t)))
        choice_mismatches += choice != order[t]
    naive_s = float(np.mean(naive_per_candidate)) * K * (K + 1) / 2  # candidates: K, K - 1, ..., 1
    fresh_sampled = sorted(rng.choice(K, size=min(args.fresh_steps, K), replace=False).tolist())
    fresh = [fresh_step(net, order[:t], np.array(remaining(t)), data.X_val, data.y_val, values) for t in fresh_sampled]
    fresh_s = float(np.mean(fresh)) * K

    checked = sorted({0, K, *rng.choice(np.arange(1, K), size=min(args.check_steps, K - 1), replace=False).tolist()})
    oracle_mismatches, loss_diff = 0, 0.0
    for k in checked:
        pruned = edited(clf, order[:k])
        for split, (X, y) in splits.items():
            row = (path["step"] == k) & (path["split"] == split)
            oracle_mismatches += int(path["accuracy"][row][0] != np.mean(pruned.predict(X) == y))
            loss_diff = max(loss_diff, abs(path["loss"][row][0] - log_loss(y, pruned.predict_proba(X), labels=clf.classes_)))

    test = path["split"] == "test"
    result = {
        "data": f"mnist holdout, val {len(data.y_val)} rows (choices), test {len(data.y_test)} rows",
        "model": f"nn_392 seed 0 ({source})",
        "mode": MODE,
        "threads": 2,
        "steps": K,
        "greedy_s": greedy_s,
        "steps_per_s": K / greedy_s,
        "naive_s": naive_s,
        "naive_extrapolated_from_steps": sampled,
        "ratio": naive_s / greedy_s,
        "fresh_base_s": fresh_s,
        "fresh_base_extrapolated_from_steps": fresh_sampled,
        "ratio_fresh_base": fresh_s / greedy_s,
        "choice_mismatches": f"{choice_mismatches} of {len(sampled)} steps",
        "oracle_checked_steps": checked,
        "oracle_mismatches": oracle_mismatches,
        "max_loss_difference": loss_diff,
        "test_accuracy_unpruned": float(path["accuracy"][test][0]),
        "test_accuracy_best": float(path["accuracy"][test].max()),
        "load_1min": os.getloadavg()[0],
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for key, value in result.items():
        print(f"{key:>30}: {value:.4g}" if isinstance(value, float) else f"{key:>30}: {value}")


if __name__ == "__main__":
    main()
