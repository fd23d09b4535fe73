"""`liq redis start|status|stop|url`: the embedded Redis of DATA_DIR by hand (it replaced `python -m
liq_pipeline.cache`)."""

from __future__ import annotations

import pytest

from liq_pipeline.cache import EmbeddedRedis, connect
from liq_pipeline_tests.commands.clirun import liq

pytestmark = pytest.mark.integration  # a real redis-server


def test_start_status_url_stop(cli_env, clean_env):
    env = {**cli_env, "DATA_DIR": str(clean_env / "d")}  # short: unix socket paths are limited to ~100 bytes

    def run(*args: str):
        return liq("redis", *args, env=env, cwd=clean_env)

    try:
        assert run("status").returncode == 1
        started = run("start")
        assert started.returncode == 0 and started.stdout.startswith("running: pid ")
        status = run("status")
        assert status.returncode == 0 and status.stdout == started.stdout
        url = run("url").stdout.strip()
        client = connect(url)
        assert client.ping()
        client.close()
        assert run("stop").stdout.strip() == "stopped"
        assert run("stop").stdout.strip() == "was not running"
        assert run("status").returncode == 1
    finally:
        EmbeddedRedis(clean_env / "d" / "redis").stop()
