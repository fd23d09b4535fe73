"""`make dev` stopped the way systemd, `docker stop`, a CI runner or `kill` stop it: a signal to its process group.

`make dev` runs as a script runs it: a session and process group of its own, output to a file, a fresh DATA_DIR,
free ports. Once it is up, every process of its tree is read, with the embedded redis-server (a daemon, outside
the tree); then the group gets the signal(s), and every one of those processes must be gone soon after.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from liq_pipeline.config import settings_fields
from liq_pipeline.devnet import state_cache
from liq_pipeline.devnet.accounts import OPERATOR_KEY
from liq_pipeline.devnet.liquidator import compile_liquidator
from liq_pipeline_tests.fixtures.devnet_v36 import share_builds
from liq_pipeline_tests.fixtures.net import free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
BORROWERS = 2_000  # what `make dev` seeds (`liq dev`'s default)
UP_TIMEOUT = 300  # s; ~25 s measured on 2 cores
STOP_BOUND = 40  # s; the supervisor's grace is 10 s, measured ~3-5 s
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


def _start(data: Path, seeded_devnet: Path) -> tuple[subprocess.Popen, Path]:
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
            MAKE_DEV,
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


# Two starts of `make dev` (~15-25 s each) cover the three stop signals and a second signal during the stop: Ctrl-C
# (SIGINT, which make does not forward) then the terminal closing (SIGHUP); SIGTERM (which make also forwards to
# `liq dev`) then SIGTERM again. `liq dev` installs one handler for all three (STOP_SIGNALS), so a signal seen only
# second still proves its handler is there, and that it does not cut the cleanup short.
@pytest.mark.parametrize(
    "signals",
    [(signal.SIGINT, signal.SIGHUP), (signal.SIGTERM, signal.SIGTERM)],
    ids=["SIGINT-then-SIGHUP", "SIGTERM-twice"],
)
def test_a_signal_to_make_dev_stops_every_process(tmp_path, seeded_devnet, signals):
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
    finally:
        for proc in procs:
            if _alive(proc):
                proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(make.pid, signal.SIGKILL)
        make.wait(timeout=30)
