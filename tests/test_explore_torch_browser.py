"""The explorer on a torch study (small_cnn on digits), driven in headless Chromium: a
convolution channel's page shows its filter and its mean feature map as heatmaps, a linear
unit its incoming weights, and every number equals ``sweep.kernels.ablate_joint`` and the
module's own weights and outputs, computed here."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from analysis.load import find_run, load_data, load_manifest, load_network
from sweep.kernels import ablate_joint, incoming_weights, torchnet
from tests.test_explore_browser import EC, By, ask, explorer_page, serving, wait
from tests.test_report_browser import BROWSER_MARKS
from tests.test_torch_analysis import torch_study

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    torch_study(root)
    return root


@pytest.fixture(scope="module")
def url(results: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(results, tmp_path_factory.mktemp("no-report")) as line:
        yield line


@pytest.fixture(scope="module")
def page(url: str, tmp_path_factory: pytest.TempPathFactory):
    with explorer_page(url, tmp_path_factory.mktemp("chromium")) as browser:
        yield browser


def network_and_data(results: Path):
    run = find_run(load_manifest(results, "cnn"), "digits", "small_cnn", 0)
    return load_network(run), load_data(run)


def heatmap(page, element: str) -> np.ndarray:
    """The z values of the heatmap drawn in the Dash graph ``element``."""
    z = page.execute_script(f"return document.querySelector('#{element} .js-plotly-plot').data[0].z")
    if isinstance(z, dict):  # plotly's typed-array form: {"dtype", "bdata" (base64), "shape"}
        shape = [int(n) for n in str(z["shape"]).split(",")]
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).astype(float).reshape(shape)
    return np.array(z, dtype=float)


def open_unit(page, url: str, layer: int, unit: int) -> None:
    page.get(url.split("/?")[0] + f"/?model=digits/small_cnn/0&unit={layer}:{unit}")
    wait(page).until(EC.text_to_be_present_in_element((By.ID, "unit-title"), f"Unit {unit} of layer {layer}"))


def test_the_overview_names_the_sites(page, results: Path) -> None:
    line = page.find_element(By.ID, "run-line").text
    assert "0: act1 8 channels, 1: act2 16 channels, 2: act3 32 features" in line
    traces = page.find_elements(By.CSS_SELECTOR, "#curves g.trace.scatter")
    assert [len(t.find_elements(By.CSS_SELECTOR, ".point")) for t in traces] == [8, 16, 32]


def test_a_channel_shows_its_filter_and_mean_feature_map(page, url: str, results: Path) -> None:
    net, data = network_and_data(results)
    open_unit(page, url, 0, 3)
    expected = ablate_joint(net, data.X_test, data.y_test, [(0, 3)])
    summary = page.find_element(By.ID, "unit-summary").text
    assert (f"test accuracy {100 * expected['effect'][0]:+.2f} pp" in summary
            and f"breaks {expected['broken'][0]}, fixes {expected['fixed'][0]}" in summary)
    np.testing.assert_allclose(heatmap(page, "unit-weights"), incoming_weights(net, 0)[3, 0], rtol=1e-6)
    _, outputs = torchnet.site_outputs(net.module, net.images(data.X_test), net.sites)
    mean_map = outputs[0][:, 3].mean(dim=0).numpy()  # act1 channel 3, (8, 8)
    np.testing.assert_allclose(heatmap(page, "unit-feature-map"), mean_map, rtol=1e-6)
    assert page.find_elements(By.CSS_SELECTOR, "#unit-feature-map .colorbar")
    assert "convolution filter (1 x 3 x 3" in page.find_element(By.ID, "profile").text
    assert len(page.find_elements(By.CSS_SELECTOR, "#top-images img")) == 8


def test_a_linear_unit_shows_its_incoming_weights_and_no_map(page, url: str, results: Path) -> None:
    net, _ = network_and_data(results)
    open_unit(page, url, 2, 5)
    z = heatmap(page, "unit-weights")
    np.testing.assert_allclose(z[np.isfinite(z)], incoming_weights(net, 2)[5], rtol=1e-6)  # 64 weights
    assert not page.find_elements(By.ID, "unit-feature-map")
    assert "its 64 incoming weights" in page.find_element(By.ID, "profile").text


def test_asking_about_a_channel_and_a_feature_matches_ablate_joint(page, results: Path) -> None:
    net, data = network_and_data(results)
    ask(page, "1:4, 2:7")
    wait(page).until(EC.text_to_be_present_in_element((By.ID, "answer-head"), "seed 0: 1:4, 2:7"))
    rows = {r.get_attribute("data-split"): {td.get_attribute("class"): td.text
                                            for td in r.find_elements(By.TAG_NAME, "td")}
            for r in page.find_elements(By.CSS_SELECTOR, "#answer-table tbody tr")}
    for split, X, y in (("val", data.X_val, data.y_val), ("test", data.X_test, data.y_test)):
        expected = ablate_joint(net, X, y, [(1, 4), (2, 7)])
        assert rows[split]["after"] == f"{100 * expected['accuracy'][0]:.2f}"
        assert rows[split]["change"] == f"{100 * expected['effect'][0]:+.2f}"
        assert (rows[split]["broken"], rows[split]["fixed"]) == (str(expected["broken"][0]),
                                                                 str(expected["fixed"][0]))
    assert re.search(r"Removing 2 units together", page.find_element(By.ID, "answer-head").text)
