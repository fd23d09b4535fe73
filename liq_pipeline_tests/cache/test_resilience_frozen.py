"""The hot path's cache against a real redis-server frozen with SIGSTOP (a hung server: it accepts connections into
its backlog and never answers): one timeout, then no caller waits for Redis; one warning; the writes land after
SIGCONT, with one line saying how long and how many writes were deferred."""

from __future__ import annotations

import logging
import os
import signal
import time

import polars as pl
import pytest

from liq_pipeline.cache import CacheOptions, MarketCache, MarketKeys, get_kpis
from liq_pipeline.cache.candidates import candidates_block
from liq_pipeline.cache.client import hot_path_client
from liq_pipeline.cache.resilience import ResilientCache

pytestmark = pytest.mark.integration

KEYS = MarketKeys.for_market(31337, "0x" + "5e" * 20)
TIMEOUT = 0.1


def _candidates(block: int) -> pl.DataFrame:
    return pl.DataFrame({"user": [f"0x{block:040x}"], "scenario": ["baseline"], "eta_sec": [float(block)]})


def test_a_frozen_server_costs_one_timeout_then_nothing_and_catches_up_after_sigcont(own_server, caplog):
    info = own_server.ensure_running()
    cache = ResilientCache(
        MarketCache(hot_path_client(info.url, TIMEOUT), KEYS, CacheOptions()),
        retry_interval=0.1,
        probe_timeout=TIMEOUT,
        probe_in_background=True,
    )
    caplog.set_level(logging.WARNING, logger="liq_pipeline.cache")
    assert cache.write_candidates(1, _candidates(1)) == "written"
    os.kill(info.pid, signal.SIGSTOP)
    try:
        started = time.perf_counter()
        assert cache.write_candidates(2, _candidates(2)) == "deferred"
        detected = time.perf_counter() - started
        # one timeout, not retried (a retried timeout measured 2x; redis-py's default client waits 5 s, twice)
        assert TIMEOUT * 0.9 <= detected < TIMEOUT * 1.9, detected
        waits = []
        for block in range(3, 23):  # the outage's next blocks: no round trip, no probe on the caller's thread
            started = time.perf_counter()
            assert cache.write_candidates(block, _candidates(block)) == "deferred"
            assert cache.set_kpis({"watcher_last_block": block}) == "deferred"
            waits.append(time.perf_counter() - started)
            time.sleep(0.02)  # the background probe runs meanwhile (every 0.1 s), each PING timing out
        # a wait on Redis would be a whole TIMEOUT; half of it leaves room for a loaded machine (tests run two at once)
        assert max(waits) < TIMEOUT / 2, max(waits)
        assert sorted(cache.pending) == ["candidates", "kpis"]  # newest state only: one candidate set, merged KPIs
    finally:
        os.kill(info.pid, signal.SIGCONT)
    thawed = time.monotonic()
    while time.monotonic() - thawed < 3.0 and cache.write_candidates(23, _candidates(23)) == "deferred":
        time.sleep(0.02)
    assert cache.reachable and cache.pending == []
    assert candidates_block(cache.cache) == 23
    assert get_kpis(cache.cache)["watcher_last_block"].value == 22
    lines = [r.getMessage() for r in caplog.records if r.name == "liq_pipeline.cache.resilience"]
    assert len(lines) == 2, lines
    assert "is unreachable" in lines[0] and "TimeoutError" in lines[0]
    assert "reachable again after" in lines[1] and "write(s) deferred" in lines[1]
    deferred = int(lines[1].split("; ")[1].split(" ")[0])
    assert deferred >= 41  # 1 + 20 x (candidates, KPIs), plus the retries after SIGCONT
    assert cache.outages == 1
    cache.close()
