"""``resample`` where units are removed together: pairs, pruning paths and class knockout,
every row against the per-image oracle (a copy of the weights edited with each image's own
drawn values, then sklearn's ``predict``), the draws averaged, near-ties included, and the
sweeps end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss

from sweep.data.datasets import load_dataset, reference_inputs
from sweep.data.models import load_model
from sweep.kernels import TIE_TOLERANCE, ablate_pairs, pruning_path, unit_replacements
from sweep.kernels.knockout import class_accuracies, class_knockout
from sweep.kernels.metrics import sample_log_loss
from sweep.kernels.modes import drawn_values
from sweep.kernels.network import Network, propagate
from sweep.kernels.oracle import naive_pair_metrics, per_image_outputs
from sweep.run import pipeline
from tests.nets import digits, trained_mlp
from tests.serial_executor import serial_sweeps
from tests.test_ablate import assert_same_metrics
from tests.test_modes import _classifier

MODE = "resample"


def draws_of(net: Network, reference: np.ndarray, n: int, seed: int, draws: int) -> list[list[np.ndarray]]:
    """Each draw's per-image values of ``n`` rows, ``(n, width)`` per hidden layer."""
    pool = unit_replacements(net, MODE, reference)
    return [drawn_values(pool, MODE, n, seed, draw) for draw in range(draws)]


def oracle_outcome(clf, X, y, units, values) -> tuple[np.ndarray, float]:
    """Per-row correctness and mean log-loss of ``clf`` with ``units`` removed, image by image."""
    if not units:
        pred, proba = clf.predict(X), clf.predict_proba(X)
    else:
        pred, proba = per_image_outputs(clf, X, units, MODE, values)
    return pred == y, float(np.mean(sample_log_loss(proba, np.searchsorted(clf.classes_, y))))


# ------------------------------------------------------------------ pairs


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("metrics", ["full", "accuracy"])
def test_every_resampled_pair_is_the_per_image_oracles(activation: str, metrics: str) -> None:
    """Pairs within a layer and across the two layers, one draw (the same donor image for both
    units of a pair), against a copy edited per image with both units' values."""
    clf = trained_mlp(activation)
    net, (X, y) = Network.from_classifier(clf), digits(120)
    reference = digits(300)[0][150:]
    units = np.array([[0, 0], [0, 3], [0, 5], [1, 1], [1, 2], [1, 6]])
    values = draws_of(net, reference, len(y), 4, 3)[2]
    rows = ablate_pairs(net, X, y, units, mode=MODE, values=values, metrics=metrics)
    pairs = np.column_stack([rows[c] for c in ("layer_a", "unit_a", "layer_b", "unit_b")])
    assert len(pairs) == 15
    naive = naive_pair_metrics(clf, X, y, pairs, MODE, reference, seed=4, draw=2)
    assert_same_metrics({c: rows[c] for c in naive}, naive, metrics)
    np.testing.assert_allclose(rows["interaction"], rows["effect"] - rows["effect_a"] - rows["effect_b"], atol=1e-15)


@pytest.mark.parametrize("seed", range(6))
def test_a_pair_near_tie_under_an_images_own_values_is_settled_as_the_oracle(seed: int) -> None:
    """Row 0's logits 0 and 1 (almost) tie once units a and b of the last hidden layer both
    output row 0's drawn values: the pass with a removed settles it with both units' values
    folded for that row alone."""
    rng = np.random.default_rng(seed)
    coefs = (rng.normal(size=(5, 6)), rng.normal(size=(6, 4)), rng.normal(size=(4, 3)))
    intercepts = (rng.normal(size=6), rng.normal(size=4), rng.normal(size=3))
    net = Network(coefs, intercepts, "tanh", "softmax", np.array([0, 1, 2]))
    X, reference = rng.normal(size=(8, 5)), rng.normal(size=(30, 5))
    a, b = sorted(rng.choice(4, size=2, replace=False).tolist())
    values = draws_of(net, reference, len(X), 0, 1)[0]
    h = np.tanh(np.tanh(X @ coefs[0] + intercepts[0]) @ coefs[1] + intercepts[1])
    h[:, [a, b]] = values[1][:, [a, b]]
    logits = h @ coefs[2] + intercepts[2]
    bias = intercepts[2].copy()
    bias[1] += logits[0, 0] - logits[0, 1]
    bias[2] = min(bias[2], bias[1] - logits[0, 2] + logits[0, 1] - 5.0)
    net = net.with_weights(coefs, (intercepts[0], intercepts[1], bias))
    h[:, [a, b]] = 0.0
    tied = propagate(net, h, 1) + values[1][:, [a, b]] @ coefs[2][[a, b]]
    assert abs(tied[0, 0] - tied[0, 1]) < TIE_TOLERANCE[np.dtype(np.float64)]  # really a near-tie
    y = np.zeros(8, dtype=np.int64)
    units = np.array([[1, a], [1, b]])
    naive = naive_pair_metrics(_classifier(net), X, y, np.array([[1, a, 1, b]]), MODE, reference)
    for metrics in ("full", "accuracy"):
        rows = ablate_pairs(net, X, y, units, mode=MODE, values=values, metrics=metrics)
        assert_same_metrics({c: rows[c] for c in naive}, naive, metrics)


# ------------------------------------------------------------------ pruning paths


def path_data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    X, y = digits(400)
    return {"val": (X[300:360], y[300:360]), "test": (X[360:], y[360:])}


@pytest.mark.parametrize("method", ["random", "single_shot", "greedy"])
def test_every_step_of_a_resampled_path_is_the_mean_of_the_per_image_oracles_draws(method: str) -> None:
    clf = trained_mlp("tanh")
    net, data = Network.from_classifier(clf), path_data()
    reference = digits(300)[0][:150]
    pool = unit_replacements(net, MODE, reference)
    columns = pruning_path(net, data, method, pool, mode=MODE, seed=3, draws=2, resample_seed=7,
                           max_removed=8 if method == "greedy" else None)
    assert set(columns["draws"]) == {2} and set(columns["resample_seed"]) == {7}
    order = [(int(l), int(u)) for l, u in zip(columns["layer"], columns["unit"]) if l >= 0][::2]
    for name, (X, y) in data.items():
        draws = draws_of(net, reference, len(y), 7, 2)
        at = np.flatnonzero(columns["split"] == name)
        right_base, _ = oracle_outcome(clf, X, y, [], None)
        for k, row in enumerate(at):
            outcomes = [oracle_outcome(clf, X, y, order[:k], values) for values in draws]
            accuracy = [right.mean() for right, _ in outcomes]
            assert columns["accuracy"][row] == pytest.approx(np.mean(accuracy), abs=1e-15), (name, k)
            assert columns["effect_sd"][row] == pytest.approx(np.std(accuracy, ddof=1), abs=1e-15)
            assert columns["loss"][row] == pytest.approx(np.mean([loss for _, loss in outcomes]), rel=1e-9)
            broken = np.rint(np.mean([np.sum(right_base & ~right) for right, _ in outcomes]))
            assert columns["broken"][row] == broken


def test_each_greedy_choice_keeps_the_most_val_rows_right_summed_over_the_draws() -> None:
    clf = trained_mlp("relu")
    net, data = Network.from_classifier(clf), path_data()
    reference = digits(300)[0][:150]
    X, y = data["val"]
    columns = pruning_path(net, data, "greedy", unit_replacements(net, MODE, reference), mode=MODE, draws=2,
                           resample_seed=1, max_removed=3)
    chosen = [(int(l), int(u)) for l, u in zip(columns["layer"], columns["unit"]) if l >= 0][::2]
    draws = draws_of(net, reference, len(y), 1, 2)
    remaining = [(l, u) for l in range(2) for u in range(net.hidden_sizes[l])]
    for k, unit in enumerate(chosen):
        scores = {}
        for candidate in remaining:
            outcomes = [oracle_outcome(clf, X, y, [*chosen[:k], candidate], values) for values in draws]
            scores[candidate] = (sum(int(right.sum()) for right, _ in outcomes), np.mean([loss for _, loss in outcomes]))
        best = max(right for right, _ in scores.values())
        lowest = min(loss for right, loss in scores.values() if right == best)
        assert scores[unit][0] == best and scores[unit][1] <= lowest + 1e-12, k
        remaining.remove(unit)


# ------------------------------------------------------------------ class knockout


def test_a_resampled_knockout_search_is_the_oracles_greedy_on_the_draws_mean() -> None:
    """Each step's unit is the brute-force choice on the per-image oracle (target rows right
    summed over the draws, among the units that keep every other class within the bound and
    make progress), and every step's class accuracies are the oracle's mean over the draws."""
    clf = trained_mlp("relu", (16,), n=300, max_iter=200)
    net = Network.from_classifier(clf)
    X, y = digits(700)
    splits = {"val": (X[300:500], y[300:500]), "test": (X[500:], y[500:])}
    reference = X[:150]
    target, bound, n_classes = 4, 0.15, 10
    out = class_knockout(net, splits, target, unit_replacements(net, MODE, reference), mode=MODE,
                         max_other_loss=bound, max_units=4, draws=2, resample_seed=3)
    chosen = [(int(l), int(u)) for l, u in zip(out["layer"], out["unit"]) if l >= 0][::2]
    assert len(chosen) >= 1
    assert set(out["draws"]) == {2} and set(out["resample_seed"]) == {3}
    for name, (Xs, ys) in splits.items():
        draws = draws_of(net, reference, len(ys), 3, 2)
        base = class_accuracies(clf.predict(Xs), ys, n_classes)
        for k, row in enumerate(np.flatnonzero(out["split"] == name)):
            accuracy = np.mean([class_accuracies(np.where(oracle_outcome(clf, Xs, ys, chosen[:k], v)[0], ys, -1),
                                                 ys, n_classes) for v in draws], axis=0)
            assert out["target_accuracy"][row] == pytest.approx(accuracy[target], abs=1e-12), (name, k)
            lost = np.delete(base - accuracy, target)
            assert out["other_max_loss"][row] == pytest.approx(lost.max(), abs=1e-12), (name, k)
    Xv, yv = splits["val"]
    draws = draws_of(net, reference, len(yv), 3, 2)
    base = class_accuracies(clf.predict(Xv), yv, n_classes)
    on_target = yv == target
    first = []
    for candidate in [(0, u) for u in range(16)]:
        rights, accuracies, losses = 0, [], []
        for values in draws:
            pred, proba = per_image_outputs(clf, Xv, [candidate], MODE, values)
            rights += int(np.sum(pred[on_target] == target))
            accuracies.append(class_accuracies(pred, yv, n_classes))
            losses.append(log_loss(yv[on_target], proba[on_target], labels=clf.classes_))
        lost = np.delete(base - np.mean(accuracies, axis=0), target)
        if (lost <= bound + 1e-12).all():
            first.append((rights, -np.mean(losses), candidate))
    assert chosen[0] == min(first)[2]


# ------------------------------------------------------------------ the sweeps


@pytest.mark.slow
def test_pairs_pruning_and_knockout_sweeps_write_resampled_rows_the_oracle_confirms(
    run_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    common = ("model.hidden_layer_sizes=[6,4]", "model.name=tiny", "model.max_iter=40", "dataset.val_fraction=0.2",
              "ablation.modes=[zero,resample]", "ablation.resample_draws=2")
    with serial_sweeps(monkeypatch):
        results = pipeline.run(run_config(*common, "ablation=pairs")).results
        pipeline.run(run_config(*common, "ablation=pruning", "ablation.methods=[greedy,magnitude]",
                                "ablation.max_removed=3"))
        pipeline.run(run_config(*common, "ablation=class_knockout", "ablation.classes=[0,7]", "ablation.max_units=2",
                                "ablation.max_other_loss=0.2"))
    frames = {kind: pd.read_parquet(f"{results}/kind={kind}") for kind in ("pair", "pruning", "knockout")}
    for kind, df in frames.items():
        resampled, constant = df[df["mode"] == MODE], df[df["mode"] == "zero"]
        assert len(resampled) > 0 and len(constant) > 0, kind
        if kind != "knockout":  # a knockout search ends where its mode's greedy search ends
            assert len(resampled) == len(constant), kind
        assert set(resampled["draws"]) == {2} and set(resampled["resample_seed"]) == {0}, kind
        assert constant[["draws", "resample_seed", "effect_sd"]].isna().all().all(), kind
    run = json.loads(Path(results, "_manifest.json").read_text())["runs"][0]
    clf, data = load_model(run["model_path"]), load_dataset(**run["dataset_params"])
    reference = reference_inputs(data.X_train, data.X_val)
    pairs = frames["pair"][(frames["pair"]["mode"] == MODE) & (frames["pair"]["split"] == "test")]
    pairs = pairs.sort_values(["layer_a", "unit_a", "layer_b", "unit_b"])
    ids = pairs[["layer_a", "unit_a", "layer_b", "unit_b"]].to_numpy()
    each = [naive_pair_metrics(clf, data.X_test, data.y_test, ids, MODE, reference, 0, d) for d in range(2)]
    np.testing.assert_allclose(pairs["effect"], np.mean([e["effect"] for e in each], axis=0), rtol=0, atol=1e-15)
    np.testing.assert_allclose(pairs["effect_sd"], np.std([e["effect"] for e in each], axis=0, ddof=1), atol=1e-15)


def test_the_torch_backend_gives_the_same_resampled_pairs_paths_and_knockouts() -> None:
    """The GPU path's arithmetic (torch tensors, here on the CPU): the per-image folds live on
    the backend, the same rows, choices and sets as numpy."""
    pytest.importorskip("torch")
    from sweep.kernels import to_backend

    clf = trained_mlp("relu")
    net, (X, y) = Network.from_classifier(clf), digits(120)
    pool = unit_replacements(net, MODE, digits(300)[0][150:])
    net_t, X_t, _ = to_backend(net, X, y, "torch")
    units = np.array([[0, 0], [0, 3], [1, 1], [1, 2]])
    values = drawn_values(pool, MODE, len(y), 4, 2)
    numpy_pairs = ablate_pairs(net, X, y, units, mode=MODE, values=values, metrics="full")
    torch_pairs = ablate_pairs(net_t, X_t, y, units, mode=MODE, values=values, metrics="full")
    np.testing.assert_array_equal(numpy_pairs["accuracy"], torch_pairs["accuracy"])
    np.testing.assert_allclose(numpy_pairs["loss"], torch_pairs["loss"], rtol=1e-12)
    splits = {"val": (X[:60], y[:60]), "test": (X[60:], y[60:])}
    moved = {name: (to_backend(net, Xs, ys, "torch")[1], ys) for name, (Xs, ys) in splits.items()}
    for search in (lambda n, s: pruning_path(n, s, "greedy", pool, mode=MODE, draws=2, max_removed=4),
                   lambda n, s: class_knockout(n, s, 3, pool, mode=MODE, draws=2, max_other_loss=0.2, max_units=3)):
        on_numpy, on_torch = search(net, splits), search(net_t, moved)
        for column in ("layer", "unit", "accuracy", "broken", "fixed", "effect_sd"):
            np.testing.assert_array_equal(on_numpy[column], on_torch[column], err_msg=column)
