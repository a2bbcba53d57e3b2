"""Benchmark: the naive sklearn ablation loop and the fast exact kernels, side by side.

    python bench/ablation.py --max-iter 10            # MNIST 60k/10k, NN_392_196 trained briefly
    python bench/ablation.py --synthetic svhn --kinds neurons --naive-sample 40
    python bench/ablation.py --backend torch --device cuda

Per kind (neurons, synapses) and metric set (``full``, ``accuracy``): the time of
:func:`sweep.ablate.prepare` (the forward pass, once per model and split), the best ablation
time of ``--repeat`` runs given the prepared state, ablations per second, the speed-up over
the naive loop (copy the weights, zero them, sklearn ``predict``; timed on the checked
ablations and extrapolated), peak traced memory (tracemalloc, a separate run) and the number
of ablations whose prediction-based metrics differ from the oracle's. Neurons are checked
all (or ``--naive-sample`` of them); synapses on a seeded sample: ``--synapse-sample``
random synapses plus as many again among those whose prediction counts changed.

Results are merged into ``--out`` (JSON, one entry per data set) and printed as a table.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "2"

import argparse
import gzip
import itertools
import json
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sweep.kernels import (
    METRIC_SETS,
    ablate_neurons,
    ablate_synapses,
    prepare,
    select_synapses,
)
from sweep.kernels.backend import to_backend
from sweep.kernels.network import Network
from sweep.kernels.oracle import naive_neuron_metrics, naive_synapse_metrics

HIDDEN = (392, 196)
SHAPES = {"mnist": (784, 10_000), "svhn": (3072, 26_032)}
"""Synthetic data: (features, test rows) of each data set."""
INTEGER_COLUMNS = ("accuracy", "broken", "fixed", "class_effect")
TABLE = (
    ("data", "{:<15}"), ("kind", "{:<8}"), ("metrics", "{:<8}"), ("ablations", "{:>9}"),
    ("prepare_s", "{:>9.3f}"), ("ablate_s", "{:>8.3f}"), ("per_s", "{:>10.0f}"),
    ("naive_s", "{:>9.0f}"), ("speedup", "{:>9.0f}"), ("peak_mib", "{:>8.1f}"),
    ("checked", "{:>7}"), ("mismatches", "{:>10}"), ("load_1min", "{:>9.1f}"),
)


def _idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = np.frombuffer(raw[4 : 4 + 4 * ndim], ">u4").astype(int)
    return np.frombuffer(raw[4 + 4 * ndim :], np.uint8).reshape(dims)


def mnist(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST official split, pixels / 255: X_train (60000, 784), y_train, X_test, y_test."""
    read = lambda stem: _idx(folder / f"{stem}.gz")
    X_train = read("train-images-idx3-ubyte").reshape(-1, 784) / 255.0
    X_test = read("t10k-images-idx3-ubyte").reshape(-1, 784) / 255.0
    return X_train, read("train-labels-idx1-ubyte"), X_test, read("t10k-labels-idx1-ubyte")


def train(X: np.ndarray, y: np.ndarray, max_iter: int, seed: int) -> Any:
    """NN_392_196 (ReLU, adam) trained for ``max_iter`` epochs."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(HIDDEN, max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    return clf


def synthetic(name: str, seed: int) -> tuple[Any, np.ndarray, np.ndarray]:
    """A classifier with He-scaled random weights and data of ``name``'s shape.

    Inputs are uniform pixels in [0, 1] with 20 % exact zeros; labels are the network's own
    predictions with 10 % replaced, so accuracy is ~90 %, like a trained model.
    """
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import LabelBinarizer

    rng = np.random.default_rng(seed)
    n_features, n_rows = SHAPES[name]
    sizes = (n_features, *HIDDEN, 10)
    X = rng.random((n_rows, n_features)) * (rng.random((n_rows, n_features)) > 0.2)
    clf = MLPClassifier(HIDDEN)
    clf.coefs_ = [rng.normal(0, np.sqrt(2 / a), (a, b)) for a, b in itertools.pairwise(sizes)]
    clf.intercepts_ = [rng.normal(0, 0.1, b) for b in sizes[1:]]
    clf.n_layers_, clf.n_outputs_, clf.out_activation_ = 4, 10, "softmax"
    clf.classes_ = np.arange(10)
    clf._label_binarizer = LabelBinarizer().fit(clf.classes_)
    y = clf.predict(X)
    noisy = rng.random(n_rows) < 0.1
    y[noisy] = rng.integers(10, size=int(noisy.sum()))
    return clf, X, y


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[Any, float]:
    """``fn``'s result and its best wall time over ``repeat`` runs (after one warm-up)."""
    out = fn()
    return out, min(timed(fn)[1] for _ in range(max(repeat, 1)))


def traced_peak(fn: Callable[[], Any]) -> float:
    """Peak traced allocation of ``fn`` in MiB (numpy reports to tracemalloc)."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def mismatches(fast: dict, naive: dict, rows: np.ndarray) -> int:
    """Ablations (``rows`` of ``fast``) whose prediction-based metrics differ from ``naive``."""
    differ = np.zeros(len(rows), dtype=bool)
    for column in INTEGER_COLUMNS:
        a, b = fast[column][rows], naive[column]
        differ |= (a != b).reshape(len(rows), -1).any(axis=1)
    return int(differ.sum())


def loss_check(fast: dict, naive: dict, rows: np.ndarray, metrics: str) -> float | bool:
    """Max |loss difference| (``full``), or whether every loss is NaN (``accuracy``)."""
    if metrics == "accuracy":
        return bool(np.all(np.isnan(fast["loss"])))
    return float(np.max(np.abs(fast["loss"][rows] - naive["loss"])))


def concat(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def measure(
    kind: str, metrics: str, run: Callable[[], dict], prepare_s: float, naive: dict, args
) -> tuple[dict, dict]:
    """Time one kernel sweep and compare it with the oracle's sample."""
    fast, seconds = best_of(run, args.repeat)
    n = len(fast["accuracy"])
    naive_total = naive["seconds"] * n / len(naive["rows"])
    return fast, {
        "kind": kind,
        "metrics": metrics,
        "ablations": n,
        "prepare_s": prepare_s,
        "ablate_s": seconds,
        "per_s": n / seconds,
        "naive_s": naive_total,
        "naive_extrapolated_from": len(naive["rows"]),
        "speedup": naive_total / seconds,
        "peak_mib": traced_peak(run),
        "checked": len(naive["rows"]),
        "checked_on": naive["how"],
        "mismatches": None,
        "load_1min": os.getloadavg()[0],
    }


def neuron_oracle(clf: Any, X_np: np.ndarray, y: np.ndarray, args) -> dict:
    """Naive metrics of all units (or a seeded sample), timed."""
    rng = np.random.default_rng(0)
    picks = [
        (layer, np.arange(w) if not args.naive_sample
         else np.sort(rng.choice(w, args.naive_sample // 2, replace=False)))
        for layer, w in enumerate(HIDDEN)
    ]
    reference = X_np if args.mode == "mean" else None
    metrics, seconds = timed(lambda: concat([
        naive_neuron_metrics(clf, X_np, y, layer, u, args.mode, reference) for layer, u in picks
    ]))
    rows = np.concatenate([u + (HIDDEN[0] if layer else 0) for layer, u in picks])
    how = "all units" if not args.naive_sample else f"a seeded sample of {len(rows)} units"
    return {"metrics": metrics, "seconds": seconds, "rows": rows, "how": how}


def bench_neurons(clf: Any, net: Any, X: Any, y: np.ndarray, X_np: np.ndarray, args) -> list:
    base, prepare_s = best_of(lambda: prepare(net, X, y), args.repeat)
    reference = X if args.mode == "mean" else None
    naive = neuron_oracle(clf, X_np, y, args)
    results = []
    for metrics in args.metrics:
        run = lambda metrics=metrics: concat([
            ablate_neurons(net, X, y, layer, np.arange(w), args.mode, reference,
                           metrics=metrics, base=base)
            for layer, w in enumerate(HIDDEN)
        ])
        fast, row = measure("neurons", metrics, run, prepare_s, naive, args)
        row["mismatches"] = mismatches(fast, naive["metrics"], naive["rows"])
        row["loss_check"] = loss_check(fast, naive["metrics"], naive["rows"], metrics)
        results.append(row)
    return results


def synapse_sample(fast: dict, size: int) -> np.ndarray:
    """``size`` random synapses plus ``size`` random ones whose prediction counts changed."""
    rng = np.random.default_rng(1)
    n = len(fast["source"])
    changed = np.flatnonzero(fast["broken"] + fast["fixed"] > 0)
    picks = [rng.choice(n, min(size, n), replace=False)]
    picks.append(rng.choice(changed, min(size, len(changed)), replace=False))
    return np.unique(np.concatenate(picks))


def synapse_oracle(clf: Any, X_np: np.ndarray, y: np.ndarray, fast: dict, args) -> dict:
    rows = synapse_sample(fast, args.synapse_sample)
    metrics, seconds = timed(lambda: concat([
        naive_synapse_metrics(clf, X_np, y, int(fast["layer"][r]), fast["source"][r : r + 1],
                              fast["target"][r : r + 1])
        for r in rows
    ]))
    how = (f"a seeded sample: {args.synapse_sample} random synapses and {args.synapse_sample} "
           "random among those whose prediction counts changed")
    return {"metrics": metrics, "seconds": seconds, "rows": rows, "how": how}


def bench_synapses(clf: Any, net: Any, X: Any, y: np.ndarray, X_np: np.ndarray, args) -> list:
    base, prepare_s = best_of(lambda: prepare(net, X, y), args.repeat)
    layers = [int(v) for v in args.synapse_layers.split(",")] if args.synapse_layers else None
    chosen = select_synapses(net, layers=layers)
    results, naive = [], None
    for metrics in args.synapse_metrics:
        run = lambda metrics=metrics: concat([
            ablate_synapses(net, X, y, layer, s, t, metrics=metrics, base=base)
            for layer, s, t in chosen
        ])
        fast = run()
        naive = naive or synapse_oracle(clf, X_np, y, fast, args)
        fast, row = measure("synapses", metrics, run, prepare_s, naive, args)
        row["mismatches"] = mismatches(fast, naive["metrics"], naive["rows"])
        row["loss_check"] = loss_check(fast, naive["metrics"], naive["rows"], metrics)
        row["changed_prediction_counts"] = int(np.sum(fast["broken"] + fast["fixed"] > 0))
        results.append(row)
    return results


def table(summary: dict) -> str:
    """The results of every data set in ``summary`` as aligned text."""
    head = " ".join(fmt.replace(".3f", "").replace(".0f", "").replace(".1f", "").format(name)
                    for name, fmt in TABLE)
    lines = [head]
    for data, entry in summary.items():
        for row in entry["results"]:
            values = {"data": data, **row}
            lines.append(" ".join(fmt.format(values[name]) for name, fmt in TABLE))
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-dir", default=str(ROOT / ".." / "shared" / "data" / "mnist"))
    parser.add_argument("--synthetic", choices=sorted(SHAPES))
    parser.add_argument("--rows", type=int, default=10_000, help="test rows (MNIST)")
    parser.add_argument("--train-rows", type=int, default=60_000)
    parser.add_argument("--max-iter", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", default="zero", choices=("zero", "remove", "mean"))
    parser.add_argument("--kinds", default="neurons,synapses")
    parser.add_argument("--metrics", default=",".join(METRIC_SETS),
                        help="metric sets for neurons, e.g. full,accuracy")
    parser.add_argument("--synapse-metrics", default="accuracy",
                        help="metric sets for synapses (full is slow on every synapse)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the best is kept")
    parser.add_argument("--naive-sample", type=int, default=0,
                        help="check this many units against the oracle (0: all)")
    parser.add_argument("--synapse-sample", type=int, default=100)
    parser.add_argument("--synapse-layers", default="",
                        help="weight matrices, e.g. 1,2 (default all)")
    parser.add_argument("--backend", default="numpy", choices=("numpy", "torch"))
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default=str(ROOT / "bench" / "ablation.json"))
    args = parser.parse_args(argv)
    args.metrics = args.metrics.split(",")
    args.synapse_metrics = args.synapse_metrics.split(",")
    return args


def load(args: argparse.Namespace) -> tuple[str, Any, np.ndarray, np.ndarray, float]:
    """(data name, classifier, X test, y test, training seconds)."""
    if args.synthetic:
        return (f"synthetic-{args.synthetic}", *synthetic(args.synthetic, args.seed), 0.0)
    X_train, y_train, X_test, y_test = mnist(Path(args.mnist_dir))
    clf, train_s = timed(lambda: train(
        X_train[: args.train_rows], y_train[: args.train_rows], args.max_iter, args.seed
    ))
    return "mnist", clf, X_test[: args.rows], y_test[: args.rows], train_s


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    data, clf, X_np, y, train_s = load(args)
    net, X, _ = to_backend(Network.from_classifier(clf), X_np, y, args.backend, args.device)
    benches = {"neurons": bench_neurons, "synapses": bench_synapses}
    entry = {
        "rows": int(X_np.shape[0]),
        "features": int(X_np.shape[1]),
        "hidden": list(HIDDEN),
        "max_iter": None if args.synthetic else args.max_iter,
        "mode": args.mode,
        "dtype": str(X_np.dtype),
        "backend": args.backend,
        "device": args.device or "cpu",
        "threads": os.environ["OMP_NUM_THREADS"],
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "repeat": args.repeat,
        "train_s": train_s,
        "accuracy": float(clf.score(X_np, y)),
        "results": [
            row for kind in args.kinds.split(",")
            for row in benches[kind](clf, net, X, y, X_np, args)
        ],
    }
    out = Path(args.out)
    summary = json.loads(out.read_text()) if out.exists() else {}
    summary = {k: v for k, v in summary.items() if isinstance(v, dict) and "results" in v}
    summary[data] = entry
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(table({data: entry}))
    return summary


if __name__ == "__main__":
    main()
