"""analysis.pruning: weight-level ablation agrees with sweep's kernel and oracle; held-out pruning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.sections.heldout import heldout_pruning, prediction_change
from sweep.data.datasets import DatasetSplits, load_dataset
from sweep.data.models import load_model
from sweep.kernels import NEURON_MODES, ablate_neurons, ablated_units_network, constant_modes, unit_replacements
from sweep.kernels.network import Network, forward, predicted_index
from tests.test_analysis_fixtures import DIGITS_PARAMS, neuron_rows, train_network


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Network, DatasetSplits, Path]:
    path = tmp_path_factory.mktemp("model") / "m.npz"
    return train_network(0, path), load_dataset(**DIGITS_PARAMS), path


@pytest.mark.parametrize("mode", constant_modes())
def test_single_unit_matches_the_kernel(trained, mode: str) -> None:
    net, data, _ = trained
    reference = data.X_train if NEURON_MODES[mode].needs_reference else None
    cols = ablate_neurons(net, data.X_test, data.y_test, 1, np.arange(16), mode, reference)
    for unit in range(16):
        change = prediction_change(net, data.X_test, data.y_test, [(1, unit)], mode, reference)
        assert (len(change.fixed), len(change.broken)) == (cols["fixed"][unit], cols["broken"][unit])


def test_joint_zero_ablation_matches_sklearn(trained) -> None:
    net, data, path = trained
    units = [(0, 1), (0, 4), (1, 2)]
    clf = load_model(str(path))
    for layer, unit in units:
        clf.coefs_[layer][:, unit] = 0.0
        clf.intercepts_[layer][unit] = 0.0
    change = prediction_change(net, data.X_test, data.y_test, units)
    np.testing.assert_array_equal(change.ablated, clf.predict(data.X_test))
    np.testing.assert_array_equal(change.base, net.classes[predicted_index(forward(net, data.X_test))])


def test_heldout_pruning_selects_on_val_and_reports_test(trained) -> None:
    net, data, _ = trained
    val = neuron_rows([0.01, 0.0, 0.02] + [-0.01] * 29, split="val")
    test = pd.concat([neuron_rows([0.03, 0.01, -0.01] + [0.0] * 29, split="test"),
                      neuron_rows([0.0] * 16, split="test", layer=1)])
    result = heldout_pruning(pd.concat([val, test]), net, data.X_test, data.y_test)
    assert result["n_selected"] == 2
    assert result["sum_single_effects"] == pytest.approx(0.02)  # units 0 and 2 on test
    ablated = ablated_units_network(net, np.array([(0, 0), (0, 2)]), "zero", unit_replacements(net, "zero"))
    acc = (net.classes[predicted_index(forward(ablated, data.X_test))] == data.y_test).mean()
    assert result["accuracy"] == pytest.approx(acc)
    assert result["joint_effect"] == pytest.approx(result["accuracy"] - result["accuracy_base"])
    assert heldout_pruning(test, net, data.X_test, data.y_test) is None
