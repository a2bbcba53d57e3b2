"""The report as a reader sees it: ``index.html`` of a small study in headless Chromium.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and selenium
(the ``test`` extra); skipped without them. Nothing is fetched from the network: the page is
opened from disk and must need nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from analysis import write_report
from analysis.report import UNIT_LINK_SCRIPT
from tests.test_analysis_fixtures import trained_study

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WIDTH, HEIGHT = 1400, 900
MAX_PAGE_HEIGHT = 15_000
"""The tallest a report may be at 1,400 px (issue 18: per-seed detail collapsed)."""

BROWSER_MARKS = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="no /usr/bin/chromium or /usr/bin/chromedriver: "
               "apt-get install -y chromium chromium-driver",
    ),
]
"""Marks of every test that drives Debian's headless Chromium."""

pytestmark = BROWSER_MARKS

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


def chromium(user_data_dir: Path, width: int = WIDTH, height: int = HEIGHT,
             network_log: bool = False) -> webdriver.Chrome:
    """A headless Chromium that stays offline (no background networking, updates or sync);
    ``network_log`` records every request in the performance log."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                     f"--user-data-dir={user_data_dir}", f"--window-size={width},{height}"):
        options.add_argument(argument)
    if network_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    trained_study(root)  # digits, two seeds, val + test sweeps, synapses
    return write_report(root, out_dir=tmp_path_factory.mktemp("report")).index


@pytest.fixture(scope="module")
def page(index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    browser = chromium(tmp_path_factory.mktemp("chromium"))
    try:
        browser.get(index.as_uri())  # returns once the page and its images have loaded
        yield browser
    finally:
        browser.quit()


def _all(page: webdriver.Chrome, selector: str, script: str) -> list:
    """``script`` (on ``e``) of every element matching ``selector``, hidden ones included."""
    return page.execute_script(f"return [...document.querySelectorAll('{selector}')].map(e => {script})")


def test_every_image_renders(page: webdriver.Chrome) -> None:
    images = page.execute_script(
        "return [...document.images].map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
    assert len(images) >= 4
    broken = [src for src, complete, width in images if not (complete and width > 0)]
    assert broken == []


def test_text_has_no_raw_markup_or_missing_numbers(page: webdriver.Chrome) -> None:
    text = page.find_element(By.TAG_NAME, "body").get_attribute("textContent")
    assert "What this study found" in text and "Impact of single-neuron removal" in text
    assert not re.search(r"\bnan\b|\binf\b", text, re.IGNORECASE)  # NaN, nan, inf
    assert not re.search(r"\bNone\b|<NA>|NaT|-0\.0+\b", text)
    for raw in ("**", "![", "|---", "&lt;", "&gt;", "&amp;", "&#"):
        assert raw not in text, raw


def test_figures_and_tables_are_numbered_with_captions(page: webdriver.Chrome) -> None:
    captions = _all(page, "figure:not(.table) > figcaption", "e.textContent")
    assert [c.split(".")[0] for c in captions] == [f"Figure {i}" for i in range(1, len(captions) + 1)]
    stems = [Path(src).stem for src in _all(page, "figure:not(.table) img", "e.getAttribute('src')")]
    assert all(stem not in caption and len(caption) > 100 for stem, caption in zip(stems, captions))
    assert captions[0].startswith("Figure 1. Single-neuron effects of digits/nn (zero, test) of every seed")
    tables = _all(page, "figure.table > figcaption", "e.textContent")
    assert [t.split(".")[0] for t in tables] == [f"Table {i}" for i in range(1, len(tables) + 1)]
    note = page.find_element(By.CSS_SELECTOR, "figure.table p.note").text
    assert note.startswith("Note. From 2 seeds a 95 % t-interval is the mean ± 8.98 standard")


def test_one_readable_page(page: webdriver.Chrome) -> None:
    height = page.execute_script("return document.documentElement.scrollHeight")
    assert height <= MAX_PAGE_HEIGHT
    closed = page.find_elements(By.CSS_SELECTOR, "details:not([open]) > summary")
    assert closed  # per-seed and per-pair detail starts collapsed ...
    closed[0].click()  # ... and opens on a click
    assert page.execute_script("return document.querySelectorAll('details[open]').length") == 1
    assert page.execute_script("return document.documentElement.scrollHeight") > height
    summary = page.find_elements(By.CSS_SELECTOR, "section.summary li")
    assert 2 <= len(summary) <= 8 and all(len(li.text) < 330 for li in summary)  # two lines


def test_layout_fits_a_reader(page: webdriver.Chrome) -> None:
    # no sideways scrolling: the page and every table fit the window
    assert page.execute_script("return document.documentElement.scrollWidth") <= WIDTH
    too_wide = page.execute_script(
        "return [...document.querySelectorAll('.scroll')]"
        ".filter(e => e.scrollWidth > e.clientWidth).map(e => e.parentElement.id)")
    assert too_wide == []
    # a readable measure: paragraphs at most about 90 characters wide, in 16-18 px type
    widths = page.execute_script(
        "return [...document.querySelectorAll('main section > p')]"
        ".map(p => [p.getBoundingClientRect().width, parseFloat(getComputedStyle(p).fontSize)])")
    assert widths and all(width <= 46 * 16 and 15 <= size <= 18 for width, size in widths)
    headings = [h.text for h in page.find_elements(By.TAG_NAME, "h2")]
    assert headings[:3] == ["What this study found", "Contents", "1 Impact of single-neuron removal"]


def test_page_is_self_contained(index: Path, page: webdriver.Chrome) -> None:
    source = index.read_text()
    assert re.findall(r"<script[^>]*>(.*?)</script>", source, re.S) == [UNIT_LINK_SCRIPT]
    assert "<link" not in source and "@import" not in source
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", source)
    # opened from disk, the unit links (explorer pages) are inert text
    assert 'class="unit" href=' in source
    assert page.execute_script("return document.querySelectorAll('a.unit[href]').length") == 0
    assert page.execute_script("return document.querySelectorAll('a.unit').length") > 0
    links = page.execute_script("return [...document.querySelectorAll('a[href]')].map(a => a.href)")
    files = [Path(unquote(urlparse(link).path)) for link in links if link.startswith("file:")
             and "#" not in link]
    tables = len(re.findall(r'href="tables/[^"]+\.csv"', source))
    assert tables >= 7 and len(files) == tables  # a CSV per table, PNG only (SVG with --svg)
    assert all(f.is_file() and f.stat().st_size > 0 for f in files)
