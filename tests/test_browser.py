"""End-to-end: the real dashboard in a real browser.

Starts ``streamlit run app.py`` on 127.0.0.1 (a free port, usage statistics off)
against the shipped checkpoints (or, when there are none yet, the small ones the
``dashboard_checkpoints`` fixture trains), and drives Debian's Chromium with
Playwright (``executable_path=/usr/bin/chromium``; a browser is never downloaded).
Screenshots go to ``test-artifacts/``.

Chromium is required: without it these tests FAIL (install it with
``scripts/install-browser.sh``), they do not skip.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .dashboard_fixtures import REPO, dashboard_checkpoints  # noqa: F401 - fixture

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGES = {"home": "", "train": "train", "latent_explorer": "latent_explorer", "compare": "compare",
         "molecules": "molecules", "elbo_tables": "elbo_tables", "distributions": "distributions"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(dashboard_checkpoints, tmp_path_factory):  # noqa: F811
    port = _free_port()
    runs = tmp_path_factory.mktemp("browser-runs")
    env = {**os.environ, "CCVAE_CHECKPOINTS": str(dashboard_checkpoints), "CCVAE_RUNS": str(runs),
           "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path_factory.mktemp("server") / "streamlit.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--browser.serverAddress", "localhost",
         "--server.fileWatcherType", "none"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
        if proc.poll() is not None:
            break
    else:
        proc.terminate()
        log.seek(0)
        pytest.fail(f"streamlit did not start within 60 s:\n{log.read()[-3000:]}")
    if proc.poll() is not None:
        log.seek(0)
        pytest.fail(f"streamlit exited ({proc.returncode}):\n{log.read()[-3000:]}")
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing at /usr/bin/chromium: run scripts/install-browser.sh "
                    "(apt-get install chromium). The browser tests need it.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    yield pg
    ctx.close()


_IDLE_JS = """() => !!document.querySelector('[data-testid="stMainBlockContainer"] h1')
    && !document.querySelector('[data-testid="stStatusWidget"]')
    && !document.querySelector('[data-testid="stSkeleton"]')
    && !document.querySelector('[data-testid="stSpinner"]')"""


def _wait_ready(page, timeout: float = 90.0) -> None:
    """Wait until the script run has finished: the page has its title and no running
    indicator, skeleton or spinner, for 0.6 s in a row (a run starts soon after load)."""
    deadline = time.time() + timeout
    calm_since = None
    while time.time() < deadline:
        if page.evaluate(_IDLE_JS):
            calm_since = calm_since or time.time()
            if time.time() - calm_since >= 0.6:
                return
        else:
            calm_since = None
        page.wait_for_timeout(150)
    raise AssertionError(f"the page did not finish rendering within {timeout:.0f} s")


def _no_exceptions(page) -> None:
    exc = page.locator("[data-testid='stException']")
    assert exc.count() == 0, exc.first.inner_text()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("name", ["home", "train", "compare", "elbo_tables", "distributions"])
def test_page_loads(server, page, name):
    page.goto(f"{server}/{PAGES[name]}")
    _wait_ready(page)
    if name in ("compare", "distributions"):
        page.wait_for_selector("[data-testid='stPlotlyChart'] .js-plotly-plot", timeout=60_000)
    _no_exceptions(page)
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    _shot(page, f"page-{name}")


def test_latent_explorer_click_a_point_shows_its_reconstruction(server, page):
    page.goto(f"{server}/latent_explorer")
    _wait_ready(page)
    page.wait_for_selector("[data-testid='stPlotlyChart'] .js-plotly-plot", timeout=60_000)
    page.wait_for_timeout(1000)  # plotly's WebGL layer draws after the DOM
    _no_exceptions(page)
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    _shot(page, "page-latent_explorer")
    # The pixel position of test point 0, from plotly's own axes.
    xy = page.evaluate("""() => {
        const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
        const fl = gd._fullLayout, tr = gd._fullData[0];
        const box = gd.getBoundingClientRect();
        return {x: box.left + fl._size.l + fl.xaxis.l2p(tr.x[0]), y: box.top + fl._size.t + fl.yaxis.l2p(tr.y[0]),
                type: tr.type};
    }""")
    assert xy["type"] in ("scattergl", "scatter"), xy
    before = page.locator("[data-testid='stImage']").count()
    t0 = time.time()
    page.mouse.click(xy["x"], xy["y"])
    page.get_by_text("selected", exact=False).first.wait_for(timeout=30_000)
    page.get_by_text("reconstruction directly beneath").first.wait_for(timeout=30_000)
    elapsed = time.time() - t0
    _wait_ready(page)
    page.get_by_role("tab", name="Selection").click()
    assert page.locator("[data-testid='stImage']").count() >= before + 1  # the input/reconstruction mosaic
    _no_exceptions(page)
    _shot(page, "explorer-after-click")
    print(f"click to decoded image: {elapsed:.2f} s")


def test_molecules_page_has_a_3dmol_canvas(server, page):
    page.goto(f"{server}/molecules")
    _wait_ready(page)
    _no_exceptions(page)
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    if page.locator("iframe").count() == 0:
        _shot(page, "molecules-no-viewer")
        pytest.fail("no molecule viewer on the Molecules page: "
                    + page.locator("[data-testid='stMainBlockContainer']").inner_text()[:600])
    frame = page.frame_locator("iframe").first
    frame.locator("canvas").first.wait_for(timeout=60_000)
    assert frame.locator("canvas").count() >= 1
    page.wait_for_timeout(800)
    _shot(page, "page-molecules")
