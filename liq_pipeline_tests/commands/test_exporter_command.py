"""`liq exporter` (it replaced `python -m liq_pipeline.metrics.exporter`): serves the KPIs of Redis, stops cleanly
on SIGTERM; `--market CHAIN_ID:POOL` limits it to one market."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from liq_pipeline.cache import CacheOptions, EmbeddedRedis, MarketCache, MarketKeys, connect, set_kpis
from liq_pipeline.cache.server import ServerInfo
from liq_pipeline_tests.commands.clirun import LIQ
from liq_pipeline_tests.fixtures.prometheus import sample_value, scrape

POOL = "0x" + "ab" * 20
OTHER = "0x" + "cd" * 20


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("r") / "redis")  # short path: unix sockets allow ~100 bytes
    try:
        yield server.ensure_running()
    finally:
        server.stop()


def test_a_bad_market_is_one_line_before_anything_starts(cli_env, clean_env) -> None:
    result = subprocess.run(
        [LIQ, "exporter", "--market", "8453:0x12"], env=cli_env, cwd=clean_env, capture_output=True, text=True
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: --market: expected CHAIN_ID:POOL_ADDRESS, got '8453:0x12'")


@pytest.mark.integration  # a real redis-server
def test_serves_the_markets_asked_for_and_stops_on_sigterm(redis_server, cli_env, clean_env) -> None:
    info = redis_server
    client = connect(info.url)
    for pool, block in ((POOL, 4242), (OTHER, 7)):
        set_kpis(
            MarketCache(client, MarketKeys.for_market(31337, pool), CacheOptions()), {"last_evaluated_block": block}
        )
    process = subprocess.Popen(
        [LIQ, "exporter", "--port", "0", "--market", f"31337:{POOL}"],
        env={**cli_env, "REDIS_URL": info.url},
        stderr=subprocess.PIPE,
        text=True,
        cwd=clean_env,
    )
    try:
        url, lines = None, []
        deadline = time.monotonic() + 20
        while url is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            match = re.search(r"KPI exporter serving on (http://\S+)", line)
            url = match[1] if match else None
        assert url, "exporter did not start:\n" + "".join(lines)
        families = scrape(url)
        assert sample_value(families, "liq_last_evaluated_block", pool=POOL) == 4242
        assert sample_value(families, "liq_last_evaluated_block", pool=OTHER) is None  # not asked for
        process.terminate()
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        client.close()
