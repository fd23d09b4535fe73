"""In a browser: the backtest report's plots as the Dagster UI shows them.

One range of the session devnet (a price shock, a competitor liquidating) is backtested through Dagster into an
instance of the test's own (DAGSTER_HOME under tmp_path); a real `dagster-webserver` then serves that instance and
the code location, and headless Chromium (Selenium) opens the page of `backtest_report`: its metadata lists the
headline figures, and the plot's "[Show Markdown]" opens the lead-time histogram as an image (a decoded PNG, not a
broken one). The screenshot goes to the test's tmp dir and to /tmp/backtest_ui.png.
Needs Debian's `chromium` and `chromium-driver` (docs/testing.md); without them the test is SKIPPED, loudly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import requests

from liq_pipeline.defs.backtest.assets import BACKTEST_ASSETS
from liq_pipeline.defs.partitions import BLOCK_RANGES
from liq_pipeline.defs.resources import RESOURCES
from liq_pipeline_tests.defs.test_backtest_assets import RANGE_SIZE, _shocked_range
from liq_pipeline_tests.defs.test_browser_ui import CHROMEDRIVER, CHROMIUM, SELENIUM, _graphql, chrome  # noqa: F401
from liq_pipeline_tests.fixtures.net import free_port

if SELENIUM:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = Path("/tmp/backtest_ui.png")
PLOT = "plot_lead_time_histogram"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="CHROMIUM NOT INSTALLED: apt-get install -y chromium chromium-driver",
    ),
    pytest.mark.skipif(not SELENIUM, reason="SELENIUM NOT INSTALLED: pip install -c requirements.lock selenium"),
]

# the plot images on screen that the browser decoded (a broken data URI has naturalWidth 0)
PLOT_IMAGES = """
return [...document.querySelectorAll('img')]
  .filter((img) => img.src.startsWith('data:image/png;base64,') && img.complete && img.naturalWidth > 0)
  .map((img) => { const r = img.getBoundingClientRect(); return [img.naturalWidth, r.width, r.height]; });
"""


@pytest.fixture
def webserver(chain, platform_env, tmp_path, monkeypatch):
    """(url, partition key): a backtested range in the instance a real dagster-webserver serves."""
    monkeypatch.setenv("LAKE_RANGE_BLOCKS", str(RANGE_SIZE))
    monkeypatch.setenv("PREDICTIVE_HORIZON_SEC", "20")
    home = tmp_path / "dh"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    key = _shocked_range(chain)
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(BLOCK_RANGES, [key])
        result = dg.materialize(BACKTEST_ASSETS, partition_key=key, instance=instance, resources=RESOURCES)
        assert result.success
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)]
    log = open(tmp_path / "webserver.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [*command, "-w", str(ROOT / "workspace.yaml")],
        env=dict(os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/server_info", timeout=1).status_code == 200:
                    break
            assert server.poll() is None, (tmp_path / "webserver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "dagster-webserver did not answer in 90 s"
            time.sleep(0.5)
        yield url, key
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(5)
        log.close()


def test_the_report_plots_render_in_the_dagster_ui(webserver, chrome, tmp_path):  # noqa: F811
    url, key = webserver
    _graphql(url, "mutation { setNuxSeen }")  # no "Join the Dagster community" dialog over the page
    chrome.get(f"{url}/assets/backtest_report?view=events&partition={key}")
    # the latest materialization's metadata: the headline figures, and the plots behind "[Show Markdown]"
    WebDriverWait(chrome, 60).until(
        lambda d: PLOT in d.find_element(By.TAG_NAME, "body").text, message=f"no {PLOT} in the asset's metadata"
    )
    body = chrome.find_element(By.TAG_NAME, "body").text
    for name in ("recall_at_cross", "flagged_ahead_share", "precision_within_horizon", "lead_time_p50_s"):
        assert name in body, name
    row = chrome.find_element(By.XPATH, f"//tr[.//*[normalize-space(text())='{PLOT}']]")
    row.find_element(By.XPATH, ".//*[normalize-space(text())='[Show Markdown]']").click()
    shown = WebDriverWait(chrome, 30).until(
        lambda d: d.execute_script(PLOT_IMAGES), message="the plot did not render as an image"
    )
    width, on_screen_width, on_screen_height = shown[0]
    assert width == 800 and on_screen_width > 300 and on_screen_height > 150, shown
    time.sleep(0.5)  # the dialog's opening animation
    path = tmp_path / "backtest_ui.png"
    assert chrome.save_screenshot(str(path))
    shutil.copyfile(path, SCREENSHOT)
    print(f"\n[backtest-ui] screenshot: {path} (copied to {SCREENSHOT})")
    assert path.stat().st_size > 20_000
