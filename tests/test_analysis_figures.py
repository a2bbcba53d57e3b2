"""analysis.figures: headless smoke tests (non-empty PNG and SVG) and the input projection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from analysis import figures as fig
from sweep.kernels.network import Network
from tests.test_analysis_fixtures import neuron_rows, train_network


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Network:
    return train_network(0, tmp_path_factory.mktemp("model") / "m.npz")


def _saved(figure, tmp_path: Path, name: str) -> None:
    png = fig.save_figure(figure, tmp_path, name, svg=True)
    assert png.stat().st_size > 1000 and png.with_suffix(".svg").stat().st_size > 1000


def test_png_only_by_default(tmp_path: Path) -> None:
    figure = fig.new_figure(2, 2)
    figure.subplots().plot([0, 1])
    png = fig.save_figure(figure, tmp_path, "plain")
    assert png.exists() and not png.with_suffix(".svg").exists()


def test_synapses_into_a_deeper_layer_draw_a_heat_strip(tmp_path: Path) -> None:
    # the crash of issue 18: a layer-1 neuron's 392 incoming synapses drawn as an input image
    rng = np.random.default_rng(0)
    synapses = pd.DataFrame({"source": np.arange(0, 392, 3), "effect": rng.normal(0, 0.002, 131)})
    figure = fig.new_figure(8, 3)
    ax_image, ax_curve = figure.subplots(1, 2)
    fig.plot_synapse_effects(synapses, 392, (392,), ax_image, ax_curve)
    [image] = ax_image.get_images()
    assert image.get_array().shape == (1, 392)
    assert image.get_clim() == pytest.approx((-synapses.effect.abs().max() * 100,
                                              synapses.effect.abs().max() * 100))
    _saved(figure, tmp_path, "strip")


def test_an_all_zero_panel_says_so_instead_of_a_blank_image() -> None:
    figure = fig.new_figure(4, 2)
    ax = figure.subplots()
    fig.plot_vector_image(np.zeros(64), (8, 8), ax, "weights")
    assert not ax.get_images() and [t.get_text() for t in ax.texts] == ["every value is 0"]


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


def _overlap(boxes: list) -> bool:
    return any(a.x1 > b.x0 for a, b in zip(boxes, boxes[1:]))


def test_effect_histogram_of_a_large_test_set(tmp_path: Path) -> None:
    # MNIST-sized: 7,000 test images, effects of -21 to +7 images (-0.3 to +0.1 pp)
    steps = np.random.default_rng(0).integers(-21, 8, size=392)
    rows = neuron_rows(list(steps / 7000), n=7000)
    figure = fig.new_figure(10, 3.2)  # the report's row of three panels
    axes = figure.subplots(1, 3)
    fig.plot_sorted_effects(rows, axes[0])
    fig.plot_effect_histogram(rows, axes[1])
    fig.plot_class_effects(rows, axes[2])
    canvas = FigureCanvasAgg(figure)  # no display
    canvas.draw()
    bars = axes[1].patches
    assert len(bars) == steps.max() - steps.min() + 1  # one bar per image gained or lost
    np.testing.assert_allclose(bars[0].get_x(), (steps.min() - 0.5) * 100 / 7000)
    assert sum(b.get_height() for b in bars) == 392
    low, high = axes[1].get_xlim()
    labels = [t for t in axes[1].get_xticklabels() if low <= t.get_position()[0] <= high]
    assert 3 <= len(labels) <= fig.MAX_TICKS + 1
    boxes = sorted((t.get_window_extent(canvas.get_renderer()) for t in labels), key=lambda b: b.x0)
    assert not _overlap(boxes)
    _saved(figure, tmp_path, "histogram")


def test_effect_bins() -> None:
    np.testing.assert_allclose(fig.effect_bins(np.array([-1.0, 0.0, 2.0]), 100), [-1.5, -0.5, 0.5, 1.5, 2.5])
    assert fig.effect_bins(np.linspace(-50, 50, 40), 100) == 10  # 100 steps: equal bins instead
    assert fig.effect_bins(np.zeros(400)) == 50
