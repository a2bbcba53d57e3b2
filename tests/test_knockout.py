"""Class knockout (sweep.kernels.knockout, kind=knockout) against the naive oracle: the greedy
set equals a brute-force greedy on sklearn (copy the weights, zero, predict), every step's
per-class accuracies are sklearn's, the stop rules, and the sweep end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss

from sweep.kernels import unit_replacements
from sweep.kernels.knockout import KNOCKOUT_COLUMNS, class_accuracies, class_knockout
from sweep.kernels.network import Network
from sweep.kernels.oracle import units_ablated_classifier
from tests.nets import digits, trained_mlp


def splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Digits the network of :func:`classifier` was not trained on: 450 val, 447 test."""
    X, y = digits(1797)
    return {"val": (X[900:1350], y[900:1350]), "test": (X[1350:], y[1350:])}


def classifier():
    """A (24, 12) ReLU net trained on the first 900 digits (93-100 % val accuracy per class)."""
    return trained_mlp("relu", (24, 12), n=900, max_iter=300)


def naive_knockout(clf, target: int, max_other_loss: float, chance: float, units: list[tuple[int, int]],
                   limit: int) -> tuple[list[tuple[int, int]], bool]:
    """Brute-force greedy on sklearn: at each step every remaining unit is added to the set,
    the copy's weights zeroed and ``predict`` called on val (ties: the target class's log-loss)."""
    X, y = splits()["val"]
    n_classes = len(clf.classes_)
    base = class_accuracies(clf.predict(X), y, n_classes)
    others = np.arange(n_classes) != target
    chosen: list[tuple[int, int]] = []
    while len(chosen) < limit:
        current = class_accuracies(units_ablated_classifier(clf, chosen).predict(X), y, n_classes)
        if current[target] <= chance:
            return chosen, True
        on_target = y == target
        now_loss = log_loss(y[on_target], units_ablated_classifier(clf, chosen).predict_proba(X[on_target]),
                            labels=clf.classes_)
        best = None
        for candidate in (u for u in units if u not in chosen):
            acc = class_accuracies(units_ablated_classifier(clf, [*chosen, candidate]).predict(X), y, n_classes)
            lost = base[others] - acc[others]
            if (lost > max_other_loss + 1e-12).any():
                continue
            prob = units_ablated_classifier(clf, [*chosen, candidate]).predict_proba(X[on_target])
            target_loss = log_loss(y[on_target], prob, labels=clf.classes_)
            if acc[target] >= current[target] and target_loss <= now_loss + 1e-12:
                continue  # no progress
            key = (round(acc[target] * on_target.sum()), -round(target_loss, 9),
                   round(float((np.clip(lost, 0, None) * np.bincount(y, minlength=n_classes)[others]).sum())),
                   *candidate)
            best = min(best, (key, candidate)) if best else (key, candidate)
        if best is None:
            return chosen, False
        chosen.append(best[1])
    current = class_accuracies(units_ablated_classifier(clf, chosen).predict(X), y, n_classes)
    return chosen, bool(current[target] <= chance)


@pytest.mark.parametrize(("target", "scope", "max_other_loss", "max_units"),
                         [(3, "network", 0.05, 12), (8, "layer0", 0.1, 2), (9, "layer0", 0.2, 12),
                          (5, "network", 0.1, 12)])
def test_knockout_set_is_the_brute_force_greedy_set(target, scope, max_other_loss, max_units):
    clf = classifier()
    net = Network.from_classifier(clf)
    values = unit_replacements(net, "zero")
    out = class_knockout(net, splits(), target, values, scope=scope, max_units=max_units,
                         max_other_loss=max_other_loss)
    assert list(out) == list(KNOCKOUT_COLUMNS)
    val = out["split"] == "val"
    path = list(zip(out["layer"][val][1:].tolist(), out["unit"][val][1:].tolist()))
    units = [(0, u) for u in range(24)] * (scope != "layer1") + [(1, u) for u in range(12)] * (scope != "layer0")
    expected, reached = naive_knockout(clf, target, max_other_loss, 0.1, units, max_units)
    assert len(path) > 1
    assert path == expected
    assert bool(out["knocked_out"][0]) == reached
    for name, (X, y) in splits().items():
        rows = out["split"] == name
        for k in range(len(path) + 1):
            pred = units_ablated_classifier(clf, path[:k]).predict(X)
            accuracy = class_accuracies(pred, y, 10)
            base = class_accuracies(clf.predict(X), y, 10)
            at = np.flatnonzero(rows & (out["step"] == k))[0]
            assert out["target_accuracy"][at] == pytest.approx(accuracy[target])
            np.testing.assert_allclose(out["class_effect"][at], accuracy - base, atol=1e-12)
            assert out["broken"][at] == ((clf.predict(X) == y) & (pred != y)).sum()
            assert out["other_max_loss"][at] == pytest.approx(np.delete(base - accuracy, target).max())
    assert (out["other_max_loss"][val] <= max_other_loss + 1e-12).all()


def test_knockout_stops_when_no_unit_keeps_the_other_classes():
    """Every live unit of layer 1 is some other class's (it loses 46-100 % when one goes);
    the dead ones change nothing, so none is added."""
    net = Network.from_classifier(classifier())
    out = class_knockout(net, splits(), 9, unit_replacements(net, "zero"), scope="layer1", max_other_loss=0.1)
    assert out["step"].max() == 0 and out["knocked_out"].max() == 0
    assert out["split"].tolist() == ["val", "test"]


def test_knockout_refuses_a_missing_val_split_and_an_unknown_class():
    net = Network.from_classifier(classifier())
    values = unit_replacements(net, "zero")
    with pytest.raises(ValueError, match="needs a 'val' entry"):
        class_knockout(net, {"test": splits()["test"]}, 0, values)
    with pytest.raises(ValueError, match="target class index 10 is outside 0..9"):
        class_knockout(net, splits(), 10, values)


def test_torch_path_equals_numpy():
    pytest.importorskip("torch")
    from sweep.kernels import to_backend

    net = Network.from_classifier(classifier())
    values = unit_replacements(net, "zero")
    data = splits()
    moved = {name: to_backend(net, X, y, "torch", "cpu")[1:] for name, (X, y) in data.items()}
    net_t = to_backend(net, *data["val"], "torch", "cpu")[0]
    a = class_knockout(net, data, 3, values, max_other_loss=0.05)
    b = class_knockout(net_t, moved, 3, values, max_other_loss=0.05)
    for column in ("layer", "unit", "step", "target_accuracy", "broken", "fixed", "knocked_out"):
        np.testing.assert_array_equal(a[column], b[column], err_msg=column)


@pytest.mark.ray
@pytest.mark.slow
def test_knockout_sweep_writes_every_class_and_scope_and_resumes(local_ray, run_config, tmp_path):
    from analysis.load import load_data, load_network
    from sweep.kinds.knockout import knockout_sets
    from sweep.run import pipeline

    common = ("model.hidden_layer_sizes=[24,12]", "model.name=small", "model.max_iter=60", "ablation=class_knockout")
    with pytest.raises(Exception, match="dataset.val_fraction"):
        run_config(*common)
    with pytest.raises(Exception, match="ablation.scopes has 'layer2'"):
        run_config(*common, "dataset.val_fraction=0.2", "ablation.scopes=[layer2]")
    cfg = run_config(*common, "dataset.val_fraction=0.2", "ablation.classes=[0,7]", "ablation.max_other_loss=0.1")
    summary = pipeline.run(cfg)
    rows = pd.read_parquet(f"{summary.results}/kind=knockout")
    sets = knockout_sets(rows)
    assert len(sets) == 2 * 3 and set(sets["scope"]) == {"network", "layer0", "layer1"}
    assert set(sets["target"]) == {0, 7} and summary.rows_written == len(rows)
    net, data = load_network(summary.runs[0]), load_data(summary.runs[0])
    measured = {"val": (data.X_val, data.y_val), "test": (data.X_test, data.y_test)}
    for search in sets.itertuples():
        kernel = class_knockout(net, measured, search.target, unit_replacements(net, "zero"), scope=search.scope,
                                max_other_loss=0.1)
        assert search.set_size == kernel["step"].max() and search.knocked_out == bool(kernel["knocked_out"][0])
        assert search.target_accuracy == pytest.approx(kernel["target_accuracy"][kernel["split"] == "test"][-1])
    assert pipeline.run(cfg).rows_written == 0

    # the report section: the images each set breaks, recounted with sklearn's predict
    from analysis.sections import knockout as section
    from analysis.sections.base import Page
    from analysis.study import Study
    from sweep.data.models import load_model

    [built] = section.build(Study.open(summary.results.rsplit("/", 1)[0], "default"), Page(tmp_path / "report"))
    table = built.tables["knockout_sets"].frame
    clf = load_model(summary.runs[0]["model_path"])
    right = clf.predict(data.X_test) == data.y_test
    for r in table.itertuples():
        units = [tuple(map(int, u.split(":"))) for u in r.units.split()]
        now = units_ablated_classifier(clf, units).predict(data.X_test) == data.y_test
        in_class = data.y_test == r.target
        assert r.target_broken == (right & in_class).sum() - (now & in_class).sum()
        assert r.other_broken == (right & ~in_class).sum() - (now & ~in_class).sum()
    summary_table = built.tables["knockout_classes"].frame
    assert summary_table["seeds"].tolist() == [1] * 6 and built.paragraphs[0].startswith("Is there a unit for a class?")
    assert all(f.path.exists() for f in built.figures)
