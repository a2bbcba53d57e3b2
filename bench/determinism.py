"""Is training reproducible across machines? The paper preset's NN_392 (MNIST, pixels / 255,
seed 1, its own 63,000 / 7,000 split) retrained with the same code, package versions, data and
seed, each variant in a fresh process whose only difference is the CPU code path numpy and
OpenBLAS take (as a machine with another instruction set would):

- ``native``: this machine's dispatch (numpy's SIMD, OpenBLAS's kernel for this CPU);
- ``openblas-sandybridge``: ``OPENBLAS_CORETYPE=Sandybridge`` (OpenBLAS's AVX kernels);
- ``baseline-simd``: ``NPY_DISABLE_CPU_FEATURES=X86_V3`` and ``OPENBLAS_CORETYPE=Sandybridge``
  (numpy's baseline SIMD as well).

For each it records the test accuracy, the helpful / neutral / harmful shares of the 392
neurons (zero mode, test split), the largest weight difference from ``native`` and how far the
two networks' per-neuron effects agree (Spearman, harmful-set Jaccard, same category).

    python bench/determinism.py --out bench/determinism.json    # about 6 min per variant, quiet

Writes ``--out`` (JSON) with the versions and the CPU's numpy SIMD features.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

VARIANTS: dict[str, dict[str, str]] = {
    "native": {},
    "openblas-sandybridge": {"OPENBLAS_CORETYPE": "Sandybridge"},
    "baseline-simd": {"NPY_DISABLE_CPU_FEATURES": "X86_V3", "OPENBLAS_CORETYPE": "Sandybridge"},
}
"""Environment of each variant's process (on top of one BLAS thread)."""

SEED = 1


def train_one(data_dir: str, weights: str) -> dict:
    """Train the preset's NN_392 seed :data:`SEED` as the sweep does; save its weights and effects."""
    from sweep.data.datasets import load_dataset
    from sweep.data.models import train_classifier
    from sweep.kernels import ablate_neurons
    from sweep.kernels.network import Network
    from sweep.spec import ModelSpec

    data = load_dataset(name="mnist", data_dir=data_dir, split_seed=SEED, scale="unit")
    clf = train_classifier(ModelSpec(name="nn_392", hidden_layer_sizes=[392]), data.X_train, data.y_train, SEED, 1)
    net = Network.from_classifier(clf)
    effect = ablate_neurons(net, data.X_test, data.y_test, 0, np.arange(392))["effect"]
    np.savez(weights, *net.coefs, effect=effect)
    return {"n_iter": int(clf.n_iter_), "test_accuracy": float(clf.score(data.X_test, data.y_test)),
            **{f"pct_{name}": float(100 * share(effect)) for name, share in (
                ("helpful", lambda e: (e < 0).mean()), ("neutral", lambda e: (e == 0).mean()),
                ("harmful", lambda e: (e > 0).mean()))}}


def agreement(a: dict, b: dict) -> dict:
    """Weight difference and per-neuron agreement of two variants' saved networks."""
    from scipy import stats

    ea, eb = a["effect"], b["effect"]
    ha, hb = set(np.flatnonzero(ea > 0)), set(np.flatnonzero(eb > 0))
    return {"max_weight_difference": float(max(np.abs(a[k] - b[k]).max() for k in a.files if k != "effect")),
            "effect_spearman": float(stats.spearmanr(ea, eb).statistic),
            "harmful_jaccard": len(ha & hb) / len(ha | hb) if ha | hb else 1.0,
            "same_category_pct": float(100 * (np.sign(ea) == np.sign(eb)).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))
    parser.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    parser.add_argument("--work", default="determinism-weights", help="folder for the variants' weights")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a variant's own process
    args = parser.parse_args()
    work = Path(args.work)
    if args.one:
        print(json.dumps(train_one(args.data_dir, str(work / f"{args.one}.npz"))))
        return
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, env in VARIANTS.items():
        run = subprocess.run([sys.executable, __file__, "--one", name, "--data-dir", args.data_dir, "--work", str(work)],
                             env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **env},
                             capture_output=True, text=True, check=True)
        results[name] = {"env": env, **json.loads(run.stdout.strip().splitlines()[-1])}
    native = np.load(work / "native.npz")
    for name in VARIANTS:
        results[name]["vs_native"] = agreement(native, np.load(work / f"{name}.npz"))
    import sklearn
    from threadpoolctl import threadpool_info

    Path(args.out).write_text(json.dumps({
        "numpy": np.__version__, "scikit-learn": sklearn.__version__, "seed": SEED,
        "blas": [(i["internal_api"], i.get("version"), i.get("architecture")) for i in threadpool_info()],
        "variants": results}, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
