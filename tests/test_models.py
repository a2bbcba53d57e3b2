"""Model artifacts: .npz + JSON, no pickle, exact reload, cache keys."""

from __future__ import annotations

import numpy as np
import pytest

from sweep.data import models
from sweep.data.datasets import load_dataset
from tests.conftest import compose_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cfg = compose_run(["model.hidden_layer_sizes=[16,8]", "model.max_iter=30"])
    data = load_dataset(**cfg.dataset.loader_params())
    splits = {"train": (data.X_train, data.y_train), "val": (data.X_val, data.y_val), "test": (data.X_test, data.y_test)}
    path = models.artifact_path(str(tmp_path_factory.mktemp("models")), cfg.model, cfg.dataset, 0)
    artifact = models.train_and_save(cfg.model, cfg.dataset, splits, 0, path, threads=1)
    clf = models.train_classifier(cfg.model, data.X_train, data.y_train, 0, threads=1)
    return cfg, data, artifact, clf


def test_reloaded_model_predicts_exactly_like_the_trained_one(trained):
    cfg, data, artifact, clf = trained
    loaded = models.load_model(artifact.path)
    np.testing.assert_array_equal(loaded.predict_proba(data.X_test), clf.predict_proba(data.X_test))
    assert loaded.score(data.X_test, data.y_test) == artifact.meta["test_accuracy"]
    assert artifact.meta["val_accuracy"] is None and artifact.meta["n_train"] == len(data.y_train)
    assert artifact.meta["hidden_sizes"] == [16, 8]


def test_artifact_holds_no_pickles_and_detects_tampering(trained):
    _, _, artifact, _ = trained
    with np.load(artifact.path, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["classes", "coef_0", "coef_1", "coef_2", "intercept_0", "intercept_1", "intercept_2"]
    assert models.read_artifact(artifact.path).meta["sha256"] == artifact.meta["sha256"]
    data = bytearray(open(artifact.path, "rb").read())
    data[-10] ^= 0xFF
    tampered = artifact.path.replace("model.npz", "tampered.npz")
    open(tampered, "wb").write(bytes(data))
    open(tampered.replace(".npz", ".json"), "w").write(open(artifact.path.replace(".npz", ".json")).read())
    assert models.read_artifact(tampered) is None


def test_cache_key_follows_what_changes_the_model():
    base = compose_run([])
    key = models.model_key(base.model, base.dataset, 0)
    assert models.model_key(base.model, base.dataset, 1) != key
    assert models.model_key(compose_run(["dataset.scale=none"]).model, compose_run(["dataset.scale=none"]).dataset, 0) != key
    moved = compose_run(["dataset.data_dir=/elsewhere"])
    assert models.model_key(moved.model, moved.dataset, 0) == key


def test_progress_reports_every_iteration_and_leaves_the_weights_bit_identical(trained):
    cfg, data, _, _ = trained
    from sklearn.neural_network import MLPClassifier

    seen: list[tuple[int, float]] = []
    clf = models.train_classifier(cfg.model, data.X_train, data.y_train, 0, threads=1, progress=lambda i, loss: seen.append((i, loss)))
    plain = MLPClassifier(random_state=0, **cfg.model.classifier_params()).fit(data.X_train, data.y_train)
    for ours, theirs in zip([*clf.coefs_, *clf.intercepts_], [*plain.coefs_, *plain.intercepts_]):
        np.testing.assert_array_equal(ours, theirs)
    assert [i for i, _ in seen] == list(range(1, plain.n_iter_ + 1))
    assert seen[-1][1] == pytest.approx(plain.loss_, rel=1e-7)  # printed with 8 decimals
    assert clf.get_params()["verbose"] is False
