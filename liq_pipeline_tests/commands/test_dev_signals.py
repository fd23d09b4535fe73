"""`make dev` stopped the way systemd, `docker stop`, a CI runner or `kill` stop it: a signal to its process group.

`make dev` runs as a script runs it: a session and process group of its own, output to a file, a fresh DATA_DIR,
free ports. Once it is up, every process of its tree is read, with the embedded redis-server (a daemon, outside
the tree); then the group gets the signal(s), and every one of those processes must be gone soon after.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import redis

from liq_pipeline.cache.keys import MarketKeys
from liq_pipeline.config import settings_fields
from liq_pipeline.devnet import anvil, state_cache
from liq_pipeline.devnet.accounts import OPERATOR_KEY
from liq_pipeline.devnet.liquidator import compile_liquidator
from liq_pipeline_tests.defs.test_browser_ui import CHROMEDRIVER, CHROMIUM, SELENIUM, _graphql, chrome  # noqa: F401
from liq_pipeline_tests.fixtures.devnet_v36 import share_builds
from liq_pipeline_tests.fixtures.net import free_port

if SELENIUM:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "browser-ui"

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
BORROWERS = 2_000  # what `make dev` seeds (`liq dev`'s default)
UP_TIMEOUT = 300  # s; ~25 s measured on 2 cores
STOP_BOUND = 40  # s; the supervisor's grace is 10 s, measured ~3-5 s
TWO_MARKETS = ("3.6", "3.0")
TWO_MARKET_BORROWERS = 200
# `make dev` without its `setup` prerequisite re-checking the venv and node_modules stamps: a test must not reinstall
# packages (the test run's own setup already did); the command run and the process tree are those of `make dev`
MAKE_DEV = ["make", "--no-print-directory", "-o", ".venv/.installed", "-o", "node_modules/.installed", "dev"]


@pytest.fixture(scope="module")
def seeded_devnet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, v36_build) -> Path:
    """The devnet state `make dev` loads (the default market, V3.6), built once (~35 s) and copied into each
    test's DATA_DIR."""
    cache = getattr(request.config, "cache", None)
    data = Path(cache.mkdir("liq-dev-devnet")) if cache is not None else tmp_path_factory.mktemp("liq-dev-devnet")
    share_builds(v36_build, data)
    state_cache.ensure(data, BORROWERS, 0)
    for protocol in TWO_MARKETS:  # the two-market run's smaller markets (~2-3 s each)
        state_cache.ensure(data, TWO_MARKET_BORROWERS, 0, protocol=protocol)
    compile_liquidator(data)  # the executor's contract, which `make dev` deploys: compiled once, copied with the rest
    return data / "devnet"


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _describe(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} {' '.join(proc.cmdline())[:120]}"
    except psutil.Error:
        return str(proc.pid)


def _start(data: Path, seeded_devnet: Path, dev_args: str = "") -> tuple[subprocess.Popen, Path]:
    shutil.copytree(seeded_devnet, data / "devnet")
    env = {k: v for k, v in os.environ.items() if k not in settings_fields()}
    env.update(
        DATA_DIR=str(data),
        DAGSTER_PORT=str(free_port()),
        METRICS_PORT=str(free_port()),
        EXPORTER_PORT=str(free_port()),
    )
    output = data.parent / "make-dev.out"
    with open(output, "wb") as out:
        make = subprocess.Popen(
            [*MAKE_DEV, f"DEV_ARGS={dev_args}"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # as a script, a service manager or a CI runner starts it: its own group
        )
    deadline = time.monotonic() + UP_TIMEOUT
    while "Ctrl-C stops everything." not in output.read_text(errors="replace"):
        assert make.poll() is None, f"make dev exited with {make.returncode}:\n{output.read_text()}"
        assert time.monotonic() < deadline, f"make dev not up after {UP_TIMEOUT} s:\n{output.read_text()}"
        time.sleep(0.2)
    return make, output


def _everything(make: subprocess.Popen, data: Path) -> list[psutil.Process]:
    """make, its whole tree, and the embedded redis-server (daemonized: not a descendant)."""
    root = psutil.Process(make.pid)
    redis = psutil.Process(int((data / "redis" / "redis.pid").read_text()))
    return [root, *root.children(recursive=True), redis]


def _stop(make: subprocess.Popen, output: Path, procs: list[psutil.Process], signals: tuple, data: Path) -> None:
    """Signal make's group (a second signal once the stop is under way): every process must be gone soon after, the
    cleanup not cut short, and the operator key in no output."""
    signalled = time.monotonic()
    os.killpg(make.pid, signals[0])
    for again in signals[1:]:  # a second signal while the stop is under way
        while "stopping" not in output.read_text(errors="replace") and time.monotonic() - signalled < 30:
            time.sleep(0.01)
        os.killpg(make.pid, again)
    left = procs
    while left and time.monotonic() - signalled < STOP_BOUND:
        make.poll()  # reaps make, our child
        left = [p for p in left if _alive(p)]
        time.sleep(0.02)
    stopped_in = time.monotonic() - signalled
    text = output.read_text(errors="replace")
    assert not left, f"still running {STOP_BOUND} s after {signals}: {[_describe(p) for p in left]}\n{text}"
    print(f"make dev: {len(procs)} processes stopped {stopped_in:.1f} s after {'+'.join(s.name for s in signals)}")
    assert f"stopping ({signals[0].name})" in text and "Traceback" not in text, text
    for again in signals[1:]:  # handled (acknowledged), not the default action that would kill `liq dev`
        assert f"{again.name}: already stopping" in text, text
    assert "the executor is off" not in text, text
    key = OPERATOR_KEY.removeprefix("0x").lower()  # in the executor's environment only, never in an output
    for log in [output, *(data / "logs").glob("*.log")]:
        assert key not in log.read_text(errors="replace").lower(), log


def _cleanup(make: subprocess.Popen, procs: list[psutil.Process]) -> None:
    for proc in procs:
        if _alive(proc):
            proc.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(make.pid, signal.SIGKILL)
    make.wait(timeout=30)


# Two starts of `make dev` (~15-25 s each) cover the three stop signals and a second signal during the stop: Ctrl-C
# (SIGINT, which make does not forward) then the terminal closing (SIGHUP) on the one market of plain `make dev`;
# SIGTERM (which make also forwards to `liq dev`) then SIGTERM again on two markets side by side. `liq dev`
# installs one handler for all three (STOP_SIGNALS), so a signal seen only second still proves its handler is there,
# and that it does not cut the cleanup short.
def test_ctrl_c_then_sighup_stops_every_process_of_make_dev(tmp_path, seeded_devnet):
    data = tmp_path / "d"  # short: the embedded Redis listens on a unix socket in it
    make, output = _start(data, seeded_devnet)
    procs: list[psutil.Process] = []
    try:
        procs = _everything(make, data)
        running = " | ".join(_describe(p) for p in procs)
        expected = ("anvil", "redis-server", "liq devnet simulate", "liq execute --live", "liq exporter", "dagster dev")
        for part in expected:
            assert part in running, f"{part} is not running: {running}"
        assert len(procs) >= 10, running
        assert (data / "devnet" / "liquidator.json").is_file()
        _stop(make, output, procs, (signal.SIGINT, signal.SIGHUP), data)
    finally:
        _cleanup(make, procs)


def _markets_in_dagster(url: str) -> dict[str, dict]:
    """Per code location: its load status, asset keys, sensors (status) and successful evaluation runs."""
    locations = _graphql(
        url,
        "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError {"
        " ... on RepositoryLocation { repositories { sensors { name sensorState { status"
        " ticks(limit: 5, statuses: [SUCCESS, SKIPPED]) { timestamp status } } } } } } } } } }",
    )["workspaceOrError"]["locationEntries"]
    assets = _graphql(url, "{ assetNodes { assetKey { path } repository { location { name } } } }")["assetNodes"]
    runs = _graphql(
        url,
        '{ runsOrError(filter: {statuses: [SUCCESS], pipelineName: "predictive_evaluation"}) { ... on Runs {'
        " results { repositoryOrigin { repositoryLocationName } } } } }",
    )["runsOrError"]["results"]
    seen = {}
    for entry in locations:
        repos = (entry["locationOrLoadError"] or {}).get("repositories", [])
        sensors = {s["name"]: s["sensorState"]["status"] for repo in repos for s in repo["sensors"]}
        ticks = [  # the new-block sensor's evaluations that ended: (when, SUCCESS = a run requested, or SKIPPED)
            (tick["timestamp"], tick["status"])
            for repo in repos
            for s in repo["sensors"]
            if s["name"] == "new_block_sensor"
            for tick in s["sensorState"]["ticks"]
        ]
        seen[entry["name"]] = {
            "status": entry["loadStatus"],
            "assets": sorted(
                "/".join(a["assetKey"]["path"]) for a in assets if a["repository"]["location"]["name"] == entry["name"]
            ),
            "sensors": sensors,
            "evaluations": sum(r["repositoryOrigin"]["repositoryLocationName"] == entry["name"] for r in runs),
            "last_tick": max((when for when, _status in ticks), default=0.0),
        }
    return seen


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None or not SELENIUM, reason="CHROMIUM NOT INSTALLED")
def test_two_markets_side_by_side_in_dagster_then_sigterm_twice_stops_them_all(tmp_path, seeded_devnet, chrome):  # noqa: F811
    """`make dev DEV_ARGS="--protocols 3.6,3.0"`: one devnet, simulator, watcher (executor live) and exporter per
    market, one Dagster code location per market. The UI shows each market's assets (keys v36/..., v30/...) and
    sensors apart, each market's sensor launches its own evaluations, each market's candidates are in its own Redis
    namespace; then SIGTERM twice stops every process."""
    data = tmp_path / "d"
    args = f"--protocols {','.join(TWO_MARKETS)} --borrowers {TWO_MARKET_BORROWERS}"
    make, output = _start(data, seeded_devnet, args)
    procs: list[psutil.Process] = []
    names = ["v" + p.replace(".", "") for p in TWO_MARKETS]
    try:
        procs = _everything(make, data)
        running = [_describe(p) for p in procs]
        for part in ("anvil", "liq devnet simulate", "liq execute --live", "liq exporter"):
            assert sum(part in line for line in running) == 2, f"not one {part} per market: {running}"
        url = re.search(r"Dagster UI\s+(http://\S+)", output.read_text()).group(1)

        deadline = time.monotonic() + 120  # the sensors tick every ~5 s; each run starts a process (~5-10 s)
        while True:
            seen = _markets_in_dagster(url)
            if all(seen.get(name, {}).get("evaluations", 0) >= 1 for name in names) or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert sorted(seen) == sorted(names), seen
        for name in names:
            market = seen[name]
            assert market["status"] == "LOADED", seen
            assert len(market["assets"]) >= 11 and all(key.startswith(f"{name}/") for key in market["assets"]), seen
            assert market["sensors"].get("new_block_sensor") == "RUNNING", seen
            assert market["evaluations"] >= 1, f"no successful evaluation run in {name} within 120 s: {seen}"

        # each market's candidates in its own namespace: liq:{<chain id>:<its pool>}:predictive:eta:zset
        pools = {
            json.loads((data / "markets" / name / "devnet" / "market.json").read_text())["pool"].lower()
            for name in names
        }
        assert len(pools) == 2, pools
        client = redis.Redis(unix_socket_path=str(data / "redis" / "redis.sock"))
        try:
            for pool in pools:
                zset = MarketKeys.for_market(31337, pool).candidates_zset
                assert client.exists(zset), (
                    f"no candidates in {zset}: {sorted(k.decode() for k in client.keys('*eta*'))}"
                )
        finally:
            client.close()

        # one market's node hung (SIGSTOP: no answer, no reset; its sensor's reads wait out a 60 s timeout): the
        # other market's sensor goes on being evaluated (sensors are evaluated on threads: dagster.yaml). A tick
        # ending more than 5 s after the freeze proves it (one under way at the freeze may end just after; one loop
        # for all sensors would wait on the hung node for 60 s), whether it requested a run or skipped, its last run
        # still in flight (on a loaded 2-core machine an evaluation run outlasted the wait once in CI)
        hung = anvil.running_node(data / "markets" / names[1])
        os.kill(hung.pid, signal.SIGSTOP)
        frozen_at = time.time()
        try:
            deadline = time.monotonic() + 45
            while _markets_in_dagster(url)[names[0]]["last_tick"] <= frozen_at + 5:
                assert time.monotonic() < deadline, f"{names[0]}'s sensor did not tick while {names[1]}'s node hung"
                time.sleep(1)
        finally:
            os.kill(hung.pid, signal.SIGCONT)

        # the browser: the Deployment page lists both locations loaded, the catalog both markets' assets
        _graphql(url, "mutation { setNuxSeen }")
        OUTPUT.mkdir(parents=True, exist_ok=True)
        chrome.get(f"{url}/locations")
        WebDriverWait(chrome, 60).until(lambda d: "2 code locations" in d.find_element(By.TAG_NAME, "body").text)
        body = chrome.find_element(By.TAG_NAME, "body").text
        assert all(name in body for name in names) and body.count("Loaded") >= 2, body[:2000]
        chrome.save_screenshot(str(OUTPUT / "two-markets-locations.png"))
        chrome.get(f"{url}/assets")
        WebDriverWait(chrome, 60).until(
            lambda d: all(
                f"{name} / liquidation_candidates" in d.find_element(By.TAG_NAME, "body").text for name in names
            )
        )
        chrome.save_screenshot(str(OUTPUT / "two-markets-catalog.png"))
        chrome.get(f"{url}/automation")  # each location's sensors and schedules, under its name, once drawn

        def automation_drawn(d) -> bool:
            text = d.find_element(By.TAG_NAME, "body").text
            return text.count("Standard sensor") == 2 and text.count("Run status sensor") == 4

        WebDriverWait(chrome, 60).until(automation_drawn, message="the two locations' sensors were not drawn")
        chrome.save_screenshot(str(OUTPUT / "two-markets-automation.png"))
        print(f"\n[browser-ui] screenshots: {OUTPUT}/two-markets-*.png")

        _stop(make, output, procs, (signal.SIGTERM, signal.SIGTERM), data)
    finally:
        _cleanup(make, procs)
