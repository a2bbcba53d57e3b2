"""The torch path of the kernels equals the numpy path (skipped without torch)."""

from __future__ import annotations

import numpy as np
import pytest

from sweep.kernels import (
    METRIC_SETS,
    NEURON_MODES,
    ablate_neurons,
    ablate_synapses,
    prepare,
    select_synapses,
)
from sweep.kernels.backend import to_backend, to_numpy
from sweep.kernels.metrics import METRIC_COLUMNS
from sweep.kernels.network import Network
from tests.nets import digits, trained_mlp

torch = pytest.importorskip("torch")

EXACT = ("n_samples", "accuracy", "broken", "fixed")


def _same(a: dict, b: dict) -> None:
    for column in METRIC_COLUMNS:
        assert isinstance(a[column], np.ndarray), column
        if np.all(np.isnan(b[column])):
            assert np.all(np.isnan(a[column])), column
        elif column in EXACT:
            np.testing.assert_array_equal(a[column], b[column], err_msg=column)
        else:
            np.testing.assert_allclose(a[column], b[column], rtol=0, atol=1e-12, err_msg=column)


def test_to_backend_converts_weights_and_data() -> None:
    net = Network.from_classifier(trained_mlp("relu"))
    X, y = digits(300)
    moved, Xt, yt = to_backend(net, X, y, "torch")
    assert isinstance(Xt, torch.Tensor) and isinstance(moved.coefs[0], torch.Tensor)
    assert isinstance(yt, np.ndarray)
    np.testing.assert_array_equal(to_numpy(moved.coefs[1]), net.coefs[1])
    with pytest.raises(ValueError):
        to_backend(net, X, y, "jax")


CASES = [("relu", False), ("logistic", False), ("tanh", True)]


@pytest.mark.parametrize("metrics", METRIC_SETS)
@pytest.mark.parametrize("activation,binary", CASES)
def test_torch_equals_numpy(activation: str, binary: bool, metrics: str) -> None:
    net = Network.from_classifier(trained_mlp(activation, binary=binary))
    X, y = digits(300, binary)
    moved, Xt, yt = to_backend(net, X, y, "torch", "cpu")
    base, base_t = prepare(net, X, y), prepare(moved, Xt, yt)
    for mode in NEURON_MODES:
        for layer, width in enumerate(net.hidden_sizes):
            units = np.arange(width)
            _same(
                ablate_neurons(moved, Xt, yt, layer, units, mode, Xt, metrics=metrics, base=base_t),
                ablate_neurons(net, X, y, layer, units, mode, X, metrics=metrics, base=base),
            )
    for layer, sources, targets in select_synapses(net):
        _same(
            ablate_synapses(moved, Xt, yt, layer, sources, targets, metrics=metrics, base=base_t),
            ablate_synapses(net, X, y, layer, sources, targets, metrics=metrics, base=base),
        )
