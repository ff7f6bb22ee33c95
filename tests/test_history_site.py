"""The published dashboard and `report --html` in a real browser: Debian's chromium driven by Selenium
through /usr/bin/chromedriver (installed by `make browser`, which `make test` runs). One browser for the
module; pages opened from file:// (the site needs no server and reaches no network)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from history_helpers import write_run
from synthetic_results import standard_rows, write_csv
from seqbench.cli import main

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1300,1000")
N_RUNS, STEP_AT = 12, 8  # sdpa 15% slower from c0008
pytestmark = pytest.mark.slow  # starts a real browser


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("no browser: /usr/bin/chromium and /usr/bin/chromedriver are missing (`make browser` installs "
                    "Debian's chromium and chromium-driver as root)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the test extra has it)")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="seqbench-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the driver's path given explicitly: Selenium Manager never runs (it would try to download one)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    runs = root / "runs"
    runs.mkdir()
    paths = [write_run(runs, i, scale={"sdpa": 1.15} if i >= STEP_AT else None) for i in range(N_RUNS)]
    store = str(root / "h.db")
    assert main(["history", "add", *map(str, paths), "--store", store, "-q"]) == 0
    assert main(["history", "publish", "-o", str(root / "site"), "--store", store]) == 0
    return root / "site"


def _open(driver, url: str, charts: int | None = None):
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(url)
    WebDriverWait(driver, 20).until(lambda d: d.execute_script(
        "return typeof FIGURES !== 'undefined' && FIGURES.every(f => document.getElementById(f.id).querySelector('.main-svg'))"))
    if charts is not None:
        assert driver.execute_script("return FIGURES.length") == charts
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def _trend_id(driver, title: str) -> str:
    return driver.execute_script(
        "return FIGURES.find(f => f.layout.title.text === arguments[0]).id", title)


def test_pages_load_without_console_errors(browser, site):
    # index: a trend chart per kernel (2 kernels, forward) + the latest run's scaling chart (one B)
    assert _open(browser, (site / "index.html").as_uri(), charts=3) == []
    assert browser.title == "seqbench history"
    assert _open(browser, (site / "runs" / "1.html").as_uri(), charts=1) == []
    assert "c0000" in browser.find_element("tag name", "body").text


def test_trend_chart_holds_every_commit_and_the_change_point(browser, site):
    _open(browser, (site / "index.html").as_uri())
    fid = _trend_id(browser, "sdpa, forward")
    info = browser.execute_script("""
        const gd = document.getElementById(arguments[0]);
        return {x: gd.data.map(t => t.x), names: gd.data.map(t => t.name),
                drawn: Array.from(gd.querySelectorAll('.scatterlayer .trace')).map(t => t.querySelectorAll('.points path').length),
                ticks: gd.querySelectorAll('.xtick').length};""", fid)
    points = [x for x, n in zip(info["x"], info["names"]) if n != "change points"]
    assert len(points) == 2 and all(x == [f"c{i:04d}" for i in range(N_RUNS)] for x in points)
    assert info["drawn"][:2] == [N_RUNS, N_RUNS]  # every commit drawn as a marker, on both traces
    marks = info["x"][info["names"].index("change points")]
    assert marks == [f"c{STEP_AT:04d}"] * 2  # the planted step, marked on both sdpa points


def test_hover_shows_the_commit(browser, site):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, (site / "index.html").as_uri())
    fid = _trend_id(browser, "sdpa, forward")
    marker = browser.execute_script(
        "return document.getElementById(arguments[0]).querySelectorAll('.scatterlayer .trace')[0]"
        ".querySelectorAll('.points path')[5]", fid)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", marker)
    ActionChains(browser).move_to_element(marker).perform()
    text = WebDriverWait(browser, 10).until(lambda d: d.execute_script(
        "const h = document.getElementById(arguments[0]).querySelector('.hoverlayer .hovertext');"
        "return h ? h.textContent : null;", fid))
    assert "commit c0005" in text and "ms [" in text and "2026-12-01T00:05:00" in text


def test_legend_click_hides_a_series_and_a_point_opens_its_run(browser, site):
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, (site / "index.html").as_uri())
    fid = _trend_id(browser, "rnn_loop, forward")
    toggle = browser.execute_script(
        "return document.getElementById(arguments[0]).querySelectorAll('.legend .traces .legendtoggle')[0]", fid)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", toggle)
    toggle.click()
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(
        "return document.getElementById(arguments[0]).data[0].visible === 'legendonly'", fid))
    drawn = browser.execute_script(
        "return document.getElementById(arguments[0]).querySelectorAll('.scatterlayer .trace').length", fid)
    assert drawn == 1  # of the two points' traces, one is left on the chart
    marker = browser.execute_script(
        "return document.getElementById(arguments[0]).querySelectorAll('.scatterlayer .trace')[0]"
        ".querySelectorAll('.points path')[3]", fid)
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).move_to_element(marker).click().perform()
    WebDriverWait(browser, 10).until(lambda d: d.current_url.endswith("/runs/4.html"))  # c0003 is the 4th run
    assert "commit c0003" in browser.find_element("tag name", "body").text


def test_report_html_toggles_kernels(browser, tmp_path):
    csv = write_csv(tmp_path / "run.csv", [r for r in standard_rows(calibration=False)
                                           if r.batch_size == 1 and r.seq_len in (128, 256, 512) and r.mode == "forward"])
    assert main(["report", str(csv), "--html"]) == 0
    page = tmp_path / "run.html"
    assert _open(browser, page.as_uri()) == []
    fid = browser.execute_script("return FIGURES.find(f => f.id.includes('forward-B1')).id")
    names = browser.execute_script("return document.getElementById(arguments[0]).data.map(t => t.name)", fid)
    assert names == ["rnn_loop", "rnn_fused", "attention_naive", "sdpa"]
    toggle = browser.execute_script(
        "return document.getElementById(arguments[0]).querySelectorAll('.legend .traces .legendtoggle')[2]", fid)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", toggle)
    toggle.click()
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 10).until(lambda d: d.execute_script(
        "return document.getElementById(arguments[0]).data[2].visible === 'legendonly'", fid))
    assert browser.execute_script(
        "return document.getElementById(arguments[0]).querySelectorAll('.scatterlayer .trace').length", fid) == 3
    assert "Crossover" in browser.find_element("tag name", "body").text  # the report's text is on the page too
