"""The explorer as a user meets it: ``python -m analysis explore`` on a small digits study,
driven in headless Chromium.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them), selenium and
the ``explore`` extra (both in the ``test`` extra); skipped without Chromium. The numbers the
page shows are checked against ``sweep.kernels.ablate_joint`` run here directly.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from analysis.explore.session import ModelKey, ReportLinks, answers_frame, parse_units, unit_link
from analysis.load import find_run, load_data, load_manifest, load_network
from analysis.report import write_report
from sweep.kernels import ablate_joint
from tests.test_analysis_fixtures import trained_study
from tests.test_report_browser import BROWSER_MARKS, chromium

REPO = Path(__file__).resolve().parents[1]

pytestmark = BROWSER_MARKS

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra")
pytest.importorskip("dash", reason="the explorer needs the explore extra (in the test extra)")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

WAIT_S = 60
"""Longest wait for the page to show something (a hang fails, a slow machine does not)."""


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    trained_study(root)  # digits, (32, 16) networks, seeds 0 and 1, val + test sweeps, synapses
    return root


@pytest.fixture(scope="module")
def report(results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The study's report folder, as ``python -m analysis RESULTS --out DIR`` writes it."""
    folder = tmp_path_factory.mktemp("report")
    write_report(results, out_dir=folder)
    return folder


@contextmanager
def serving(results: Path, report: Path) -> Iterator[str]:
    """The URL ``python -m analysis explore RESULTS --report REPORT`` prints, while it serves."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "analysis", "explore", str(results), "--report", str(report)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = server.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[\w-]{32}", line), (line, server.stderr.read())
        yield line
    finally:
        server.terminate()
        server.wait()


@pytest.fixture(scope="module")
def url(results: Path, report: Path) -> Iterator[str]:
    with serving(results, report) as line:
        yield line


@contextmanager
def explorer_page(url: str, user_data_dir: Path, network_log: bool = False) -> Iterator[webdriver.Chrome]:
    """Headless Chromium on the explorer at ``url``, once its overview has drawn its points."""
    browser = chromium(user_data_dir, 1300, 1000, network_log=network_log)
    try:
        browser.get(url)
        wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#curves .point")))
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def page(url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    with explorer_page(url, tmp_path_factory.mktemp("chromium"), network_log=True) as browser:
        yield browser


def wait(browser: webdriver.Chrome) -> WebDriverWait:
    return WebDriverWait(browser, WAIT_S)


def network_and_data(results: Path, seed: int = 0):
    run = find_run(load_manifest(results), "digits", "nn", seed)
    return load_network(run), load_data(run)


def status(address: str) -> int:
    try:
        with urllib.request.urlopen(address) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_request_without_the_token_is_refused(url: str) -> None:
    base, token = url.split("/?token=")
    assert status(url) == 200
    for path in ("/", "/_dash-layout", "/_dash-dependencies", "/?token=" + "x" * len(token),
                 "/_dash-component-suites/dash/deps/react@18.v4_4_1m1.3.1.min.js"):
        assert status(base + path) == 403, path


def open_tab(page: webdriver.Chrome, name: str) -> None:
    page.find_element(By.ID, f"tab-{name}").click()


def test_overview_shows_every_layer_and_the_counts(page: webdriver.Chrome, results: Path) -> None:
    net, data = network_and_data(results)
    open_tab(page, "overview")
    traces = page.find_elements(By.CSS_SELECTOR, "#curves g.trace.scatter")
    assert [len(t.find_elements(By.CSS_SELECTOR, ".point")) for t in traces] == list(net.hidden_sizes)
    counts = page.find_element(By.ID, "counts").text
    assert "helpful" in counts and "FDR" in counts
    assert page.find_element(By.ID, "stability").text.count("\n") == 4  # header + 2 splits x 2 layers


def test_clicking_a_unit_opens_it_with_its_exact_removal(page: webdriver.Chrome, results: Path) -> None:
    net, data = network_and_data(results)
    open_tab(page, "overview")
    point = page.find_elements(By.CSS_SELECTOR, "#curves g.trace.scatter")[1].find_elements(
        By.CSS_SELECTOR, ".point")[0]  # layer 1's most harmful unit
    ActionChains(page).move_to_element(point).click().perform()
    title = wait(page).until(EC.visibility_of_element_located((By.ID, "unit-title"))).text
    layer, unit = map(int, re.fullmatch(r"Unit (\d+) of layer (\d+)", title).groups()[::-1])
    assert layer == 1
    expected = ablate_joint(net, data.X_test, data.y_test, [(layer, unit)])
    summary = page.find_element(By.ID, "unit-summary").text
    assert (f"test accuracy {100 * expected['effect'][0]:+.2f} pp" in summary
            and f"breaks {expected['broken'][0]}, fixes {expected['fixed'][0]}" in summary)
    images = page.execute_script(
        "return [...document.querySelectorAll('#profile img')].map(i => [i.complete, i.naturalWidth])")
    # 8 top images, the class views of classes it fires on, changed images
    assert len(images) >= 8 and all(ok and width > 0 for ok, width in images)
    for panel in ("unit-weights", "synapse-map"):  # heatmaps with a colour scale, readable
        area = page.find_element(By.CSS_SELECTOR, f"#{panel} .nsewdrag").size
        assert min(area["width"], area["height"]) >= 240, (panel, area)
        assert page.find_elements(By.CSS_SELECTOR, f"#{panel} .colorbar")
    assert len(page.find_elements(By.CSS_SELECTOR, "#broken-images img")) == min(expected["broken"][0], 8)
    page.find_element(By.ID, "add-profile").click()
    open_tab(page, "ask")
    wait(page).until(lambda p: p.find_element(By.ID, "question").get_attribute("value") == f"{layer}:{unit}")


def test_a_row_of_the_units_table_opens_its_unit(page: webdriver.Chrome) -> None:
    open_tab(page, "unit")
    cell = wait(page).until(EC.element_to_be_clickable(
        (By.CSS_SELECTOR, ".ag-row[row-id='0:7'] .ag-cell[col-id='unit']")))
    cell.click()
    wait(page).until(EC.text_to_be_present_in_element((By.ID, "unit-title"), "Unit 7 of layer 0"))
    assert len(page.find_elements(By.CSS_SELECTOR, "#class-views .tile")) == 10


def clear_question(page: webdriver.Chrome) -> None:
    open_tab(page, "ask")

    def cleared(p: webdriver.Chrome) -> bool:
        if p.find_element(By.ID, "question").get_attribute("value") == "":
            return True
        p.find_element(By.ID, "clear").click()  # again, if a busy page let the first click pass
        return False

    WebDriverWait(page, WAIT_S, poll_frequency=2).until(cleared)


def ask(page: webdriver.Chrome, question: str) -> None:
    clear_question(page)
    page.find_element(By.ID, "question").send_keys(question)
    page.find_element(By.ID, "ask").click()


def answer_rows(page: webdriver.Chrome, units: str) -> dict[str, dict[str, str]]:
    """The answer table's cells by split and column, once the answer about ``units`` shows."""
    wait(page).until(EC.text_to_be_present_in_element((By.ID, "answer-head"), f"seed 0: {units}"))
    rows = page.find_elements(By.CSS_SELECTOR, "#answer-table tbody tr")
    return {r.get_attribute("data-split"): {td.get_attribute("class"): td.text
                                            for td in r.find_elements(By.TAG_NAME, "td")} for r in rows}


def test_asking_about_two_units_matches_ablate_joint(page: webdriver.Chrome, results: Path) -> None:
    net, data = network_and_data(results)
    ask(page, "0:3, 1:5")
    shown = answer_rows(page, "0:3, 1:5")
    assert list(shown) == ["val", "test"]
    for split, X, y in (("val", data.X_val, data.y_val), ("test", data.X_test, data.y_test)):
        expected = ablate_joint(net, X, y, [(0, 3), (1, 5)])
        assert shown[split]["n"] == str(len(y))
        assert shown[split]["before"] == f"{100 * expected['accuracy_base'][0]:.2f}"
        assert shown[split]["after"] == f"{100 * expected['accuracy'][0]:.2f}"
        assert shown[split]["change"] == f"{100 * expected['effect'][0]:+.2f}"
        assert shown[split]["broken"] == str(expected["broken"][0])
        assert shown[split]["fixed"] == str(expected["fixed"][0])
        assert float(shown[split]["p"]) == pytest.approx(expected["p_mcnemar"][0], rel=1e-3)
    assert page.find_element(By.ID, "answer-head").text.startswith("Removing 2 units together (zero)")


@pytest.mark.parametrize(("question", "message"), [
    ("", "choose at least one unit"),
    ("0:99", "unit 99 of layer 0 does not exist: layer 0 has units 0-31"),
    ("7:1", "layer 7 does not exist: the network's hidden layers are 0-1"),
    ("0:0-99999999999", "unit 99999999999 of layer 0 does not exist"),
    ("three units", "cannot read 'three': write a unit as layer:unit"),
    ("0:1 " * 6000, "the unit list is too long (24,000 characters; at most 20,000)"),
])
def test_malformed_questions_get_a_message(page: webdriver.Chrome, question: str, message: str) -> None:
    if len(question) > 100:  # typing 24,000 characters key by key takes minutes
        clear_question(page)
        box = page.find_element(By.ID, "question")
        page.execute_script("arguments[0].value = arguments[1]", box, question[:-1])
        box.send_keys(question[-1])  # one real keystroke so React sees the value
        page.find_element(By.ID, "ask").click()
    else:
        ask(page, question)
    wait(page).until(EC.text_to_be_present_in_element((By.ID, "ask-message"), message))
    ask(page, "0:1")  # the server still answers
    assert answer_rows(page, "0:1")["test"]["broken"].isdigit()


def test_units_are_picked_on_val_from_the_page(page: webdriver.Chrome, results: Path) -> None:
    import analysis

    val = analysis.load(results, kind="neuron", filters=[("seed", "=", 0), ("split", "=", "val")])
    harmful = sorted(zip(val.loc[val["effect"] > 0, "layer"], val.loc[val["effect"] > 0, "unit"]))
    clear_question(page)
    page.find_element(By.ID, "pick-harmful").click()
    wait(page).until(lambda p: p.find_element(By.ID, "question").get_attribute("value"))
    assert parse_units(page.find_element(By.ID, "question").get_attribute("value"), (32, 16)) == harmful


def test_a_class_is_knocked_out_from_the_page(page: webdriver.Chrome, results: Path) -> None:
    from analysis.explore.session import Explorer, format_units

    found = Explorer(results).view(ModelKey("digits", "nn", 0)).knockout(0, "zero", 0.1)
    assert found.units
    clear_question(page)
    bound = page.find_element(By.ID, "knockout-other")
    bound.send_keys(Keys.CONTROL, "a")
    bound.send_keys("10")
    # with or without a unit page opened before (run alone, none is: its button is not drawn)
    page.find_element(By.ID, "pick-knockout").click()  # the class selector starts at the first class
    wait(page).until(EC.text_to_be_present_in_element((By.ID, "pick-message"), found.message))
    assert page.find_element(By.ID, "question").get_attribute("value") == format_units(sorted(found.units))
    # a finding, drawn in the text colour, not the error red of the same line
    finding = page.find_element(By.CSS_SELECTOR, "#pick-message .found")
    assert finding.value_of_css_property("color") == "rgba(34, 34, 34, 1)"


def test_one_mode_selector_sets_the_mode_of_every_tab(page: webdriver.Chrome, results: Path) -> None:
    net, data = network_and_data(results)
    labels = [e.text for e in page.find_elements(By.TAG_NAME, "label")]
    assert len([t for t in labels if "mode" in t]) == 1 and not page.find_elements(By.ID, "ask-mode")
    choose_mode(page, "remove")
    ask(page, "0:3, 1:5")
    shown = answer_rows(page, "0:3, 1:5")
    expected = ablate_joint(net, data.X_test, data.y_test, [(0, 3), (1, 5)], "remove")
    assert shown["test"]["change"] == f"{100 * expected['effect'][0]:+.2f}"
    assert page.find_element(By.ID, "answer-head").text.startswith("Removing 2 units together (remove)")
    choose_mode(page, "zero")


def choose_mode(page: webdriver.Chrome, mode: str) -> None:
    """Pick ``mode`` in the one mode selector."""
    page.find_element(By.ID, "mode").click()
    option = wait(page).until(EC.element_to_be_clickable(
        (By.XPATH, f"//*[@role='option'][starts-with(normalize-space(.), '{mode}')]")))
    option.click()
    wait(page).until(EC.text_to_be_present_in_element((By.ID, "mode"), mode))


def test_an_answer_downloads_as_csv(page: webdriver.Chrome, url: str, results: Path,
                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    import pandas as pd

    from analysis.explore.session import Explorer

    page.get(url)  # a fresh page: no menu or pending callback left by the tests before
    wait(page).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#curves .point")))
    folder = tmp_path_factory.mktemp("downloads")
    page.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)})
    ask(page, "0:4, 1:6")
    answer_rows(page, "0:4, 1:6")
    page.find_element(By.ID, "download-answer").click()
    csv = folder / "ask-digits-nn-seed0-zero.csv"
    WebDriverWait(page, WAIT_S).until(lambda _: csv.exists() and csv.stat().st_size > 0)
    view = Explorer(results).view(ModelKey("digits", "nn", 0))
    expected = answers_frame(view.key, [(0, 4), (1, 6)], "zero", view.ask([(0, 4), (1, 6)], "zero"))
    assert csv.read_text() == expected.to_csv(index=False)
    assert pd.read_csv(csv)["split"].tolist() == ["val", "test"]


def test_a_report_unit_link_opens_the_unit_and_it_links_back(page: webdriver.Chrome, url: str, results: Path,
                                                           report: Path) -> None:
    base = url.split("/?")[0]
    page.get(base + "/")  # the cookie carries the token from here on
    link = wait(page).until(EC.element_to_be_clickable((By.ID, "report-link")))
    sections = ReportLinks(report).sections()
    assert [a.get_attribute("href") for a in page.find_elements(By.CSS_SELECTOR, "#report-sections a")] == [
        f"{base}/report/index.html#{s.anchor}" for s in sections]
    link.click()
    unit = wait(page).until(EC.element_to_be_clickable((By.CSS_SELECTOR, "a.unit")))  # the first the report names
    key, (layer, number) = unit_link(unit.get_attribute("href").split("?", 1)[1])
    naming = [s for s in sections if (key, (layer, number)) in s.units]
    unit.click()
    wait(page).until(EC.text_to_be_present_in_element((By.ID, "unit-title"), f"Unit {number} of layer {layer}"))
    assert f"seed {key.seed}" in page.find_element(By.ID, "model").text
    net, data = network_and_data(results, seed=key.seed)
    expected = ablate_joint(net, data.X_test, data.y_test, [(layer, number)])
    assert f"test accuracy {100 * expected['effect'][0]:+.2f} pp" in page.find_element(By.ID, "unit-summary").text
    back = page.find_elements(By.CSS_SELECTOR, "#unit-report a")
    assert [a.text for a in back] == [s.title for s in naming] and naming
    back[0].click()
    wait(page).until(lambda p: p.current_url.endswith(f"/report/index.html#{naming[0].anchor}"))
    page.get(base + "/?model=digits/nn/7&unit=0:3")
    wait(page).until(EC.text_to_be_present_in_element(
        (By.ID, "link-message"), "cannot open the link: no network digits/nn seed 7"))


def test_nothing_is_fetched_from_outside_127_0_0_1(page: webdriver.Chrome, url: str) -> None:
    base = url.split("/?")[0] + "/"
    requested = [json.loads(entry["message"])["message"]["params"]["request"]["url"]
                 for entry in page.get_log("performance")
                 if '"Network.requestWillBeSent"' in entry["message"]]
    assert requested and any(u.endswith(".js") for u in requested)
    # chrome:// (the browser's own start page) and data: (the images) never reach a network
    assert [u for u in requested if u.startswith(("http", "ws", "//")) and not u.startswith(base)] == []
