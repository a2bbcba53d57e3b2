"""The MNIST model and splits the pairs and pruning benches measure on (one home for both)."""

from __future__ import annotations

import time
from typing import Any

from sweep.data import models
from sweep.data.datasets import load_dataset
from sweep.hydra_config import compose_run


def model_and_data(model: str, data_dir: str, models_root: str | None) -> tuple[Any, Any, str]:
    """The seed-0 classifier of ``model`` on MNIST (63,000 / 7,000 holdout, 10 % of train as val),
    the data splits, and where the model came from (a cached artifact under ``models_root``, or
    trained here with 2 BLAS threads)."""
    spec = compose_run([f"model={model}", "dataset=mnist", f"dataset.data_dir={data_dir}", "dataset.val_fraction=0.1"])
    data = load_dataset(**spec.dataset.loader_params())
    if models_root:
        path = models.artifact_path(models_root, spec.model, spec.dataset, 0)
        if models.read_artifact(path) is not None:
            return models.load_model(path), data, path
    start = time.perf_counter()
    clf = models.train_classifier(spec.model, data.X_train, data.y_train, seed=0, threads=2)
    return clf, data, f"trained here in {time.perf_counter() - start:.0f} s"
