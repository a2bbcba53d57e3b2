"""analysis.figures: headless smoke tests (non-empty PNG and SVG) and the input projection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import figures as fig
from sweep.kernels.network import Network
from tests.test_analysis_fixtures import neuron_rows, train_network


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Network:
    return train_network(0, tmp_path_factory.mktemp("model") / "m.npz")


def _saved(figure, tmp_path: Path, name: str) -> None:
    png = fig.save_figure(figure, tmp_path, name)
    assert png.stat().st_size > 1000 and png.with_suffix(".svg").stat().st_size > 1000


def test_layer_figures(tmp_path: Path) -> None:
    rows = neuron_rows([0.02, -0.01, 0.0, 0.01, -0.03])
    figure = fig.new_figure(12, 3)
    axes = figure.subplots(1, 3)
    fig.plot_sorted_effects(rows, axes[0], "layer 0")
    fig.plot_effect_histogram(rows, axes[1])
    fig.plot_class_effects(rows, axes[2], classes=np.array([0, 1, 2]))
    assert any(np.allclose(line.get_ydata(), 0) and line.get_color() == "red"
               for line in axes[0].get_lines())
    np.testing.assert_allclose(axes[0].get_lines()[0].get_ydata(), [2, 1, 0, -1, -3])
    _saved(figure, tmp_path, "layer")


def test_input_projection(net: Network) -> None:
    np.testing.assert_array_equal(fig.input_projection(net, 0, 3), net.coefs[0][:, 3])
    np.testing.assert_allclose(fig.input_projection(net, 1, 2), net.coefs[0] @ net.coefs[1][:, 2])


@pytest.mark.parametrize("shape", [(8, 8), (4, 4, 4), (28, 28)])  # gray, RGB-like, heatmap fallback
def test_vector_image(tmp_path: Path, shape: tuple[int, ...]) -> None:
    figure = fig.new_figure(3, 3)
    values = np.linspace(-1, 1, 64)
    fig.plot_vector_image(values, shape, figure.subplots(), "w")
    _saved(figure, tmp_path, "vector")


def test_changed_images_and_synapses(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X, y = rng.random((20, 64)), rng.integers(0, 3, 20)
    figure = fig.new_figure(10, 3)
    fig.plot_changed_images(figure, X, y, y, (y + 1) % 3, np.array([0, 1]), np.array([5]), (8, 8), n=4)
    _saved(figure, tmp_path, "changed")
    synapses = pd.DataFrame({"source": np.arange(0, 64, 2), "effect": rng.normal(size=32) / 100})
    figure = fig.new_figure(8, 3)
    fig.plot_synapse_effects(synapses, 64, (8, 8), *figure.subplots(1, 2))
    _saved(figure, tmp_path, "synapses")
