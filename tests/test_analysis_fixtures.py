"""Builders of analysis fixtures (no tests here): results folders in the documented layout,
and tiny trained digits networks with real sweep rows.

``<root>/<study>/kind=<kind>/dataset=<d>/model=<m>/seed=<s>/part-0.parquet`` plus
``<root>/<study>/manifest.json``, as ``.notes/CONTRACTS.md`` specifies.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from sweep.kernels import ablate_neurons
from sweep.data.datasets import load_dataset
from sweep.kernels.metrics import mcnemar_p
from sweep.data.models import save_model
from sweep.kernels.network import Network

KEYS = ["dataset", "model", "seed"]
DIGITS_PARAMS = {"name": "digits", "val_fraction": 0.2, "scale": "unit", "split_seed": 0}
HIDDEN = (32, 16)


def write_results(root: Path, study: str, kind: str, rows: pd.DataFrame) -> None:
    """Write ``rows`` (with the partition keys as columns) as hive-partitioned Parquet parts."""
    for (dataset, model, seed), group in rows.groupby(KEYS):
        folder = root / study / f"kind={kind}" / f"dataset={dataset}" / f"model={model}" / f"seed={seed}"
        folder.mkdir(parents=True, exist_ok=True)
        body = group.drop(columns=KEYS).reset_index(drop=True)
        if "class_effect" in body:
            body["class_effect"] = [list(map(float, v)) for v in body["class_effect"]]
        pq.write_table(pa.Table.from_pandas(body, preserve_index=False), folder / "part-0.parquet")


def write_manifest(root: Path, study: str, runs: list[dict[str, Any]]) -> None:
    (root / study).mkdir(parents=True, exist_ok=True)
    manifest = {"study": study, "updated": "2024-01-01T00:00:00", "versions": {}, "config": {},
                "runs": runs}
    (root / study / "manifest.json").write_text(json.dumps(manifest))


def neuron_rows(effects: list[float], *, dataset: str = "digits", model: str = "nn", seed: int = 0,
                layer: int = 0, mode: str = "zero", split: str = "test", n: int = 100,
                p: list[float] | None = None) -> pd.DataFrame:
    """Neuron rows of one layer with the given effects (multiples of 1/n) and consistent counts."""
    effects_arr = np.asarray(effects, dtype=float)
    net_change = np.rint(effects_arr * n).astype(np.int64)
    fixed, broken = np.maximum(net_change, 0) + 1, np.maximum(-net_change, 0) + 1
    k = len(effects_arr)
    return pd.DataFrame({
        "dataset": dataset, "model": model, "seed": seed, "mode": mode, "split": split,
        "layer": np.full(k, layer, dtype=np.int64), "unit": np.arange(k, dtype=np.int64),
        "n_samples": n, "accuracy_base": 0.9, "accuracy": 0.9 + net_change / n,
        "effect": net_change / n, "loss_base": 0.3, "loss": 0.3 - effects_arr,
        "broken": broken, "fixed": fixed,
        "p_mcnemar": mcnemar_p(broken, fixed) if p is None else np.asarray(p, dtype=float),
        "class_effect": [np.array([e, 0.0, -e]) for e in effects_arr],
    })


def run_entry(dataset: str, model: str, seed: int, model_path: str = "", **extra: Any) -> dict[str, Any]:
    return {"dataset": dataset, "model": model, "seed": seed, "model_path": model_path,
            "dataset_params": DIGITS_PARAMS, "hidden_sizes": list(HIDDEN), "train_accuracy": 0.99,
            "val_accuracy": None, "test_accuracy": 0.95, "n_iter": 10, "timings": {}, **extra}


def train_network(seed: int, path: Path) -> Network:
    """Train a (32, 16) MLP on digits, save it with ``sweep.models.save_model``, return it."""
    data = load_dataset(**DIGITS_PARAMS)
    clf = MLPClassifier(hidden_layer_sizes=HIDDEN, max_iter=60, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(data.X_train, data.y_train)
    save_model(clf, str(path), {"seed": seed})
    return Network.from_classifier(clf)


def sweep_rows(net: Network, seed: int, dataset: str = "digits", model: str = "nn") -> pd.DataFrame:
    """Exact neuron rows of every layer on the val and test splits, mode zero."""
    data = load_dataset(**DIGITS_PARAMS)
    frames = []
    for split, X, y in (("val", data.X_val, data.y_val), ("test", data.X_test, data.y_test)):
        for layer, width in enumerate(net.hidden_sizes):
            cols = ablate_neurons(net, X, y, layer, np.arange(width))
            frame = pd.DataFrame({k: v for k, v in cols.items() if k != "class_effect"})
            frame["class_effect"] = list(cols["class_effect"])
            frames.append(frame.assign(dataset=dataset, model=model, seed=seed, mode="zero",
                                       split=split))
    return pd.concat(frames, ignore_index=True)


def synapse_rows(net: Network, seed: int, rng: np.random.Generator) -> pd.DataFrame:
    """Synthetic synapse rows for every weight of matrices 0 and 1 (random effects)."""
    frames = []
    for layer in (0, 1):
        n_in, n_out = net.coefs[layer].shape
        source, target = np.meshgrid(np.arange(n_in), np.arange(n_out), indexing="ij")
        k = n_in * n_out
        frames.append(pd.DataFrame({
            "dataset": "digits", "model": "nn", "seed": seed, "mode": "zero", "split": "test",
            "layer": layer, "source": source.ravel(), "target": target.ravel(),
            "n_samples": 100, "accuracy_base": 0.9, "accuracy": 0.9,
            "effect": rng.integers(-2, 3, size=k) / 100, "loss_base": 0.3, "loss": 0.3,
            "broken": 1, "fixed": 1, "p_mcnemar": 1.0,
            "class_effect": [np.zeros(10)] * k,
        }))
    return pd.concat(frames, ignore_index=True)


def trained_study(root: Path, study: str = "s", seeds: tuple[int, ...] = (0, 1)) -> dict[int, Network]:
    """A complete study: trained models, neuron rows (val + test), synapse rows, manifest."""
    nets, runs, rows, synapses = {}, [], [], []
    rng = np.random.default_rng(0)
    for seed in seeds:
        path = root / "models" / f"nn_seed{seed}.npz"
        nets[seed] = train_network(seed, path)
        runs.append(run_entry("digits", "nn", seed, str(path), val_accuracy=0.9))
        rows.append(sweep_rows(nets[seed], seed))
        synapses.append(synapse_rows(nets[seed], seed, rng))
    write_results(root, study, "neuron", pd.concat(rows, ignore_index=True))
    write_results(root, study, "synapse", pd.concat(synapses, ignore_index=True))
    write_manifest(root, study, runs)
    return nets


def built(build: Any, results: Path | str, study: str, out: Path) -> list:
    """A topic's sections of one study, as the report builds them (figures under ``out``)."""
    from analysis.sections.base import Page
    from analysis.study import Study

    return build(Study.open(results, study, check=False), Page(Path(out)))


def report_of(results: Path | str, study: str | None, out: Path, *builds: Any) -> Path:
    """``index.html`` of a report made of the given topic builders only."""
    from analysis.report import write_report
    from analysis.sections import Topic

    topics = [Topic(b.__module__.rsplit(".", 1)[-1], b.__module__, b) for b in builds]
    result = write_report(results, study, out, topics)
    assert result.failures == []
    return result.index
