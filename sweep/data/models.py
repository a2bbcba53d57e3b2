"""Train ``MLPClassifier`` models and keep them as ``.npz`` weights plus JSON metadata; torch
models (``model.architecture`` other than ``mlp``) go through :mod:`sweep.data.torch_models`
(``.safetensors`` + JSON), under the same content-keyed cache.

Never pickle: :func:`load_model` rebuilds a fitted classifier from plain arrays read with
``allow_pickle=False``, so opening someone else's results can never run code.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import time
import warnings
from dataclasses import asdict, dataclass
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import LabelBinarizer
from threadpoolctl import threadpool_limits

from sweep.kernels.network import Network
from sweep.kernels.torchnet import TorchNetwork
from sweep.results import storage

if TYPE_CHECKING:
    from sweep.spec import DatasetSpec, ModelSpec

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelArtifact:
    """Where a trained model lives and what its metadata says."""

    path: str
    meta: dict[str, Any]


def model_key(model: ModelSpec, dataset: DatasetSpec, seed: int) -> str:
    """Content key of a training job: same settings, same key, same cached model."""
    payload = {
        "format": FORMAT_VERSION,
        "model": model.classifier_params() if model.architecture == "mlp" else model.torch_params(),
        "dataset": dataset.content_params(),
        "seed": seed,
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def artifact_path(models_root: str, model: ModelSpec, dataset: DatasetSpec, seed: int) -> str:
    """Path of the weights of a training job under ``models_root`` (``model.npz``, or
    ``model.safetensors`` for a torch model)."""
    name = f"{dataset.tag}-{model.name}-seed{seed}-{model_key(model, dataset, seed)}"
    return storage.join(models_root, name, "model.npz" if model.architecture == "mlp" else "model.safetensors")


Progress = Callable[[int, float], None]
"""``progress(iteration, loss)``: called after each training iteration."""


class _IterationLines(io.TextIOBase):
    """A text stream that turns sklearn's verbose lines (``Iteration 12, loss = 0.1234``) into
    :data:`Progress` calls and drops everything else."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line.startswith("Iteration ") and ", loss = " in line:
                head, loss = line.split(", loss = ")
                self.progress(int(head.removeprefix("Iteration ")), float(loss))
        return len(text)


def train_classifier(
    model: ModelSpec, X: np.ndarray, y: np.ndarray, seed: int, threads: int, progress: Progress | None = None
) -> MLPClassifier:
    """Fit an ``MLPClassifier`` with ``random_state=seed`` on at most ``threads`` BLAS threads.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    progress : callable, optional — told each iteration's number and loss, read from sklearn's
        own verbose output (``verbose`` changes what ``fit`` prints, never the weights; it is
        restored before the classifier is returned)
    """
    clf = MLPClassifier(random_state=seed, **model.classifier_params())
    quiet = contextlib.nullcontext() if progress is None else contextlib.redirect_stdout(_IterationLines(progress))
    if progress is not None:
        clf.set_params(verbose=True)
    with threadpool_limits(limits=threads), warnings.catch_warnings(), quiet:
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    return clf.set_params(verbose=model.verbose)


def _weights_npz(clf: MLPClassifier) -> bytes:
    arrays = {f"coef_{i}": w for i, w in enumerate(clf.coefs_)}
    arrays.update({f"intercept_{i}": b for i, b in enumerate(clf.intercepts_)})
    arrays["classes"] = clf.classes_
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def save_model(clf: MLPClassifier, path: str, meta: dict[str, Any]) -> ModelArtifact:
    """Write ``path`` (.npz weights) then its ``.json`` metadata, each atomically.

    The JSON is written last, so its presence marks a complete artifact.
    """
    fs, fpath = storage.resolve(path)
    blob = _weights_npz(clf)
    full_meta = {
        **meta,
        "format": FORMAT_VERSION,
        "params": clf.get_params(),
        "activation": clf.activation,
        "out_activation": clf.out_activation_,
        "n_features_in": int(clf.n_features_in_),
        "n_iter": int(clf.n_iter_),
        "loss": float(clf.loss_),
        "loss_curve": [float(v) for v in clf.loss_curve_],
        "t": int(clf.t_),
        "sklearn_version": sklearn.__version__,
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    storage.write_bytes_atomic(fs, fpath, blob)
    storage.write_bytes_atomic(fs, _meta_path(fpath), json.dumps(full_meta, indent=2, default=str).encode())
    return ModelArtifact(path, full_meta)


def _meta_path(weights_path: str) -> str:
    return weights_path[: weights_path.rindex(".")] + ".json"


def artifact_exists(path: str) -> bool:
    """Whether the ``.npz`` at ``path`` (local path or URI) exists."""
    fs, fpath = storage.resolve(path)
    return storage.exists(fs, fpath)


def read_artifact(path: str) -> ModelArtifact | None:
    """The artifact at ``path`` if both files exist and the weights match their hash."""
    fs, fpath = storage.resolve(path)
    if not (storage.exists(fs, _meta_path(fpath)) and storage.exists(fs, fpath)):
        return None
    meta = json.loads(storage.read_bytes(fs, _meta_path(fpath)))
    if hashlib.sha256(storage.read_bytes(fs, fpath)).hexdigest() != meta.get("sha256"):
        return None
    return ModelArtifact(path, meta)


def _load_arrays(path: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    fs, fpath = storage.resolve(path)
    meta = json.loads(storage.read_bytes(fs, _meta_path(fpath)))
    with np.load(io.BytesIO(storage.read_bytes(fs, fpath)), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return arrays, meta


def load_network(path: str) -> Network | TorchNetwork:
    """The weights of a saved model as a :class:`~sweep.kernels.network.Network` (a torch
    model's ``.safetensors``: a :class:`~sweep.kernels.torchnet.TorchNetwork`)."""
    if path.endswith(".safetensors"):
        from sweep.data.torch_models import load_torch_network

        return load_torch_network(path)
    arrays, meta = _load_arrays(path)
    n = sum(1 for k in arrays if k.startswith("coef_"))
    return Network(
        coefs=tuple(arrays[f"coef_{i}"] for i in range(n)),
        intercepts=tuple(arrays[f"intercept_{i}"] for i in range(n)),
        activation=meta["activation"],
        out_activation=meta["out_activation"],
        classes=arrays["classes"],
    )


def load_model(path: str) -> MLPClassifier:
    """A fitted ``MLPClassifier`` rebuilt from a saved ``.npz`` + ``.json`` (no pickle).

    ``predict``, ``predict_proba`` and ``score`` give the same results as the model that
    was saved.
    """
    arrays, meta = _load_arrays(path)
    net = load_network(path)
    params = dict(meta["params"])
    params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    clf = MLPClassifier(**params)
    clf.coefs_ = [w.copy() for w in net.coefs]
    clf.intercepts_ = [b.copy() for b in net.intercepts]
    clf.classes_ = net.classes
    clf._label_binarizer = LabelBinarizer().fit(net.classes)
    clf.n_layers_ = len(net.coefs) + 1
    clf.n_outputs_ = int(net.coefs[-1].shape[1])
    clf.out_activation_ = meta["out_activation"]
    clf.n_features_in_ = meta["n_features_in"]
    clf.n_iter_ = meta["n_iter"]
    clf.loss_ = meta["loss"]
    clf.loss_curve_ = list(meta["loss_curve"])
    clf.best_loss_ = min(clf.loss_curve_)
    clf.t_ = meta["t"]
    return clf


def train_and_save(
    model: ModelSpec, dataset: DatasetSpec, splits: dict[str, tuple[np.ndarray, np.ndarray]],
    seed: int, path: str, threads: int, progress: Progress | None = None, device: str = "cpu",
) -> ModelArtifact:
    """Train one model on ``splits["train"]`` and save it with its accuracies and timing.

    Parameters
    ----------
    splits : dict of str to (ndarray, ndarray)
        ``train``, ``val``, ``test`` -> (X of shape (n, n_features), y of shape (n,)); val may be empty.
    progress : see :func:`train_classifier` (a torch model: once per epoch)
    device : str — where a torch model trains (``cpu``, or ``cuda`` on a GPU worker)
    """
    if model.architecture != "mlp":
        from sweep.data import torch_models

        return ModelArtifact(path, torch_models.train_and_save(model, dataset, splits, seed, path, threads, progress,
                                                               device))
    start = time.perf_counter()
    clf = train_classifier(model, *splits["train"], seed, threads, progress)
    seconds = time.perf_counter() - start
    accuracy = {name: float(clf.score(X, y)) if len(y) else None for name, (X, y) in splits.items()}
    meta = {
        "model": model.name,
        "dataset": dataset.tag,
        "seed": seed,
        "model_config": asdict(model),
        "dataset_params": dataset.loader_params(),
        "hidden_sizes": list(model.hidden_layer_sizes),
        "train_accuracy": accuracy["train"],
        "val_accuracy": accuracy["val"],
        "test_accuracy": accuracy["test"],
        "train_seconds": seconds,
        "n_train": int(len(splits["train"][1])),
    }
    return save_model(clf, path, meta)
