"""`liq redis start|status|stop|url`: the embedded Redis of DATA_DIR by hand (it replaced `python -m
liq_pipeline.cache`)."""

from __future__ import annotations

import pytest

from liq_pipeline.cache import EmbeddedRedis, connect
from liq_pipeline_tests.commands.clirun import at_once, liq

pytestmark = pytest.mark.integration  # a real redis-server


def test_start_status_url_stop(cli_env, clean_env):
    """`start` and `stop` change the server and keep their order; what only reads (`status`, `url` of a running
    server, a second `stop`) runs beside the command it does not depend on."""

    def run(*args: str, data_dir: str = "d"):  # short: unix socket paths are limited to ~100 bytes
        return liq("redis", *args, env={**cli_env, "DATA_DIR": str(clean_env / data_dir)}, cwd=clean_env)

    try:
        # `status` of a DATA_DIR where no server ever ran ("e", as "d" before `start`): beside the start
        never, started = at_once(lambda: run("status", data_dir="e"), lambda: run("start"))
        assert never.returncode == 1 and never.stdout.strip() == "not running", never.stdout + never.stderr
        assert started.returncode == 0 and started.stdout.startswith("running: pid "), started.stderr
        status, url = at_once(lambda: run("status"), lambda: run("url"))
        assert status.returncode == 0 and status.stdout == started.stdout
        client = connect(url.stdout.strip())
        assert client.ping()
        client.close()
        assert run("stop").stdout.strip() == "stopped"
        again, after = at_once(lambda: run("stop"), lambda: run("status"))
        assert again.stdout.strip() == "was not running"
        assert after.returncode == 1
    finally:
        EmbeddedRedis(clean_env / "d" / "redis").stop()
        EmbeddedRedis(clean_env / "e" / "redis").stop()
