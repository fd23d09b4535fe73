"""Outages: the real server is killed mid-way; writers keep going, log once, and catch up when it is back."""

from __future__ import annotations

import logging
import os
import signal
import time

import polars as pl
import pytest
import redis
from polars.testing import assert_frame_equal

from liq_pipeline.cache import (
    Alert,
    CacheOptions,
    EmbeddedRedis,
    MarketCache,
    MarketKeys,
    ResilientCache,
    connect,
    get_kpis,
    get_positions,
    read_alerts,
    read_borrowers,
    read_candidates,
)
from liq_pipeline.cache.server import _alive
from liq_pipeline.risk.synthetic import sample
from liq_pipeline_tests.cache.factories import candidate_frame, sorted_by_eta

KEYS = MarketKeys.for_market(31337, "0x" + "ab" * 20)


def _kill(server: EmbeddedRedis) -> None:
    info = server.info()
    os.kill(info.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _alive(info.pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def _messages(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_writes_survive_a_killed_server_and_catch_up_after_restart(tmp_path, caplog, transport):
    server = EmbeddedRedis(tmp_path / "redis", transport=transport)
    first = server.ensure_running()
    try:
        cache = ResilientCache(MarketCache(connect(first.url), KEYS, CacheOptions(max_pipeline=7)), retry_interval=0)
        positions = sample(300).positions
        assert cache.write_candidates(100, candidate_frame(100, [1, 2, 3])) == "written"
        assert cache.put_positions(100, positions) == "written"
        assert cache.set_kpis({"candidates": 6}) == "written"
        assert cache.pending == [] and cache.reachable

        _kill(server)
        caplog.set_level(logging.DEBUG, logger="liq_pipeline.cache")
        for block in range(101, 106):  # the watcher keeps evaluating blocks
            assert cache.write_candidates(block, candidate_frame(block, [block, block + 1])) == "deferred"
            assert cache.set_kpis({"candidates": 4, "block": block}) == "deferred"
        assert cache.put_positions(105, positions.head(50)) == "deferred"
        assert cache.publish_dirty(104, ["0xa"]) == "deferred"
        assert cache.publish_dirty(105, ["0xa", "0xb"]) == "deferred"
        assert cache.update_borrower_index(pl.DataFrame({"user": ["0xa"], "hf": [0.99]})) == "deferred"
        assert cache.append_alert(Alert("redis", "cache down")) == "deferred"
        # Reads return nothing and say so through `reachable`.
        assert cache.read_candidates() is None and cache.get_positions() is None and cache.get_kpis() is None
        assert cache.consume("engine", "w1") == []
        assert not cache.reachable and "ConnectionError" in cache.last_error
        assert len(_messages(caplog, "is unreachable (")) == 1  # logged once, not per call
        assert [r.levelname for r in caplog.records if "is unreachable (" in r.getMessage()] == ["WARNING"]
        assert cache.pending == ["kpis", "candidates", "positions", "dirty", "index_updates", "alerts"]

        caplog.clear()
        second = server.ensure_running()  # same data dir, same socket or port
        assert second.pid != first.pid and (second.socket, second.port) == (first.socket, first.port)
        assert cache.flush() is True
        assert cache.reachable and cache.pending == []
        recovered = _messages(caplog, "reachable again")
        assert len(recovered) == 1 and "candidates (block 105, 4 rows)" in recovered[0]

        plain = MarketCache(connect(second.url), KEYS)
        assert_frame_equal(read_candidates(plain), sorted_by_eta(candidate_frame(105, [105, 106])))
        assert_frame_equal(get_positions(plain).frame, positions.head(50))
        assert {k: v.value for k, v in get_kpis(plain).items()} == {"candidates": 4, "block": 105}
        assert read_borrowers(plain).rows() == [("0xa", 0.99)]
        assert [a.message for a in read_alerts(plain)] == ["cache down"]
        assert [(e.block, e.users) for e in cache.consume("engine", "w1")] == [(105, ["0xa", "0xb"])]

        caplog.clear()
        assert cache.write_candidates(106, candidate_frame(106, [1])) == "written"
        assert caplog.records == []  # back to normal: nothing more to say
    finally:
        server.stop()


def test_probes_wait_for_the_retry_interval(tmp_path, caplog):
    now = [0.0]
    server = EmbeddedRedis(tmp_path / "redis")
    info = server.ensure_running()
    try:
        client = connect(info.url)
        cache = ResilientCache(MarketCache(client, KEYS), retry_interval=5.0, monotonic=lambda: now[0])
        _kill(server)
        assert cache.set_kpis({"a": 1}) == "deferred"
        server.ensure_running()
        now[0] = 4.0
        assert cache.set_kpis({"a": 2}) == "deferred"  # no probe yet: no round trip per call during an outage
        assert cache.read_candidates() is None
        now[0] = 5.5
        assert cache.set_kpis({"b": 3}) == "written"
        assert {k: v.value for k, v in get_kpis(cache.cache).items()} == {"a": 2, "b": 3}
    finally:
        server.stop()


def test_redis_down_from_the_start(tmp_path, caplog):
    client = connect(f"unix://{tmp_path}/nothing.sock")
    cache = ResilientCache(MarketCache(client, KEYS), retry_interval=0)
    caplog.set_level(logging.WARNING, logger="liq_pipeline.cache")
    for block in range(3):
        assert cache.put_positions(block, pl.DataFrame({"user": ["0xa"]})) == "deferred"
        assert cache.read_borrowers() is None
    assert len(_messages(caplog, "is unreachable")) == 1
    assert f"unix://{tmp_path}/nothing.sock" in caplog.text


def test_an_older_block_is_reported_as_skipped(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis")
    try:
        cache = ResilientCache(MarketCache(connect(server.url()), KEYS))
        assert cache.write_candidates(10, candidate_frame(10, [1])) == "written"
        assert cache.write_candidates(9, candidate_frame(9, [1])) == "skipped_older"
    finally:
        server.stop()


def test_a_command_error_is_raised_not_taken_for_an_outage(redis_server, client):
    keys = MarketKeys.for_market(31337, "0x" + "cd" * 20)
    client.set(keys.borrowers_index, "not a zset")
    cache = ResilientCache(MarketCache(client, keys))
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        cache.update_borrower_index(pl.DataFrame({"user": ["0xa"], "hf": [1.0]}))
    assert cache.reachable and cache.pending == []  # not kept to fail again on every later write
    client.delete(keys.borrowers_index)


def test_a_server_that_hangs_costs_one_timeout_then_only_short_probes(caplog):
    """A listener that accepts and never answers (a hung server, a half-open network path)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        url = f"redis://127.0.0.1:{hung.getsockname()[1]}/0"
        cache = ResilientCache(
            MarketCache(connect(url, timeout=0.3, retries=0), KEYS), retry_interval=0, probe_timeout=0.02
        )
        start = time.monotonic()
        assert cache.set_kpis({"a": 0}) == "deferred"  # detection: one client timeout
        detected = time.monotonic() - start
        start = time.monotonic()
        for i in range(10):  # a probe on every call (retry_interval=0), each bounded by probe_timeout
            assert cache.set_kpis({"a": i}) == "deferred"
        # ten client timeouts would be 3 s: half of it proves the probes (20 ms each) and leaves room for a busy machine
        assert 0.25 <= detected < 1.0 and time.monotonic() - start < 10 * 0.3 / 2
        assert "TimeoutError" in cache.last_error
