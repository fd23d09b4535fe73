"""The watcher on the real devnet with a real redis-server or the real anvil frozen by SIGSTOP (a hung server or a
network partition without resets), and a loop held up: issue #16's "latency must count the time a block waited".

- Redis frozen: blocks keep being evaluated (the watcher's own records, not Redis), the first costs one hot-path
  timeout, one warning, and after SIGCONT the candidates, KPIs and block records land with one line saying how
  long and how many writes were deferred;
- node frozen: one warning after WATCH_HEAD_STALL_BLOCKS block times without a new head, one line when it moves;
- a loop held up: the blocks that waited show it in available_to_written_ms, not in latency_ms.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import pytest

from liq_pipeline.cache.candidates import candidates_block
from liq_pipeline.config import load_settings
from liq_pipeline.devnet import actions
from liq_pipeline.metrics import BlockMetrics
from liq_pipeline.watch.startup import hot_path_cache
from liq_pipeline_tests.cache.conftest import own_server  # noqa: F401 (a fixture)
from liq_pipeline_tests.fixtures.watcher import make_watcher

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Miner:
    """Mines a block every `every` seconds (a small WETH move each, so candidates change) in a thread of its own,
    as the devnet's simulator does; a mining call to a frozen anvil simply waits for it."""

    def __init__(self, chain, every: float) -> None:
        self.chain, self.every = chain, every
        self.mined: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        weth = actions.oracle_prices(self.chain.rpc, self.chain.market)["WETH"]
        step = 0
        while not self._stop.is_set():
            step += 1
            began = time.monotonic()
            done = actions.set_prices(self.chain.rpc, self.chain.market, {"WETH": weth * (1000 - step % 9) // 1000})
            self.mined[done.block] = time.time()
            self._stop.wait(max(0.0, self.every - (time.monotonic() - began)))

    def __enter__(self) -> Miner:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _run(watcher) -> threading.Thread:
    thread = threading.Thread(target=watcher.run, kwargs={"deadline": time.monotonic() + 60}, daemon=True)
    thread.start()
    return thread


def _stop(watcher, thread) -> None:
    watcher.stop()
    thread.join(timeout=15)
    watcher.rpc.close()


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_a_frozen_redis_does_not_stop_the_blocks_and_its_writes_land_after(chain, own_server, monkeypatch, caplog):  # noqa: F811
    info = own_server.ensure_running()
    monkeypatch.setenv("REDIS_URL", info.url)
    monkeypatch.setenv("REDIS_HOT_PATH_TIMEOUT_MS", "100")
    cache = hot_path_cache(load_settings(), 31337, chain.market.pool)
    watcher = make_watcher(chain.node.url, chain.market.addresses_provider, cache=cache, metrics=BlockMetrics())
    caplog.set_level(logging.WARNING, logger="liq_pipeline")
    thread = _run(watcher)
    try:
        with Miner(chain, every=0.3):
            assert _wait_for(lambda: len(watcher.stats.records) >= 3, 20), "the watcher did not start"
            os.kill(info.pid, signal.SIGSTOP)
            frozen_at = time.time()
            try:
                time.sleep(3.0)
            finally:
                os.kill(info.pid, signal.SIGCONT)
            thawed_at = time.time()
            assert _wait_for(lambda: cache.reachable and not cache.pending, 5), cache.pending
            time.sleep(0.5)  # a block or two after the catch-up
    finally:
        _stop(watcher, thread)
        cache.close()
    during = [r for r in watcher.stats.records if frozen_at < r.written_at < thawed_at]
    assert len(during) >= 5, f"{len(during)} blocks evaluated during the 3 s freeze (a block every 0.3 s)"
    # the block that met the freeze paid one 100 ms timeout (not retried), not the freeze
    assert max(r.latency_ms for r in during) < 1000, [round(r.latency_ms) for r in during]
    histogram = watcher.metrics.opportunity_latency.collect()[0]
    count = next(s.value for s in histogram.samples if s.name.endswith("_count"))
    assert count == len(watcher.stats.records)  # the watcher's own metric counted every block, Redis or not
    lines = [r.getMessage() for r in caplog.records if r.name == "liq_pipeline.cache.resilience"]
    assert len(lines) == 2, lines
    assert "is unreachable" in lines[0] and "reachable again after" in lines[1] and "write(s) deferred" in lines[1]
    # what was written during the freeze landed: the candidate set of the last block, the block records
    assert candidates_block(cache.cache) == watcher.stats.records[-1].block
    stream = cache.cache.client.xrange(cache.cache.keys.key("blocks"))
    recorded = {int(fields[b"block"]) for _id, fields in stream}
    assert {r.block for r in during} <= recorded


def test_a_frozen_node_is_warned_about_once_and_its_return_once(chain, caplog):
    watcher = make_watcher(chain.node.url, chain.market.addresses_provider, head_stall_blocks=3)
    caplog.set_level(logging.WARNING, logger="liq_pipeline.watch")
    thread = _run(watcher)
    try:
        with Miner(chain, every=0.3):
            # the observer measures the block time from the heads it sees (3 intervals at least)
            assert _wait_for(lambda: watcher.observer is not None and len(watcher.observer._intervals) >= 4, 20)
            os.kill(chain.node.pid, signal.SIGSTOP)
            try:
                time.sleep(3.5)  # 3 x ~0.3 s without a head, detected within the observer's 1 s call timeout
            finally:
                os.kill(chain.node.pid, signal.SIGCONT)
            last = watcher.stats.records[-1].block
            # the loop goes on, and the observer (a poll in flight may first time out: 1 s) sees the node move
            assert _wait_for(lambda: watcher.stats.records[-1].block > last and not watcher.observer.stalled, 10)
    finally:
        _stop(watcher, thread)
    stalls = [r.getMessage() for r in caplog.records if "no new head" in r.getMessage()]
    back = [r.getMessage() for r in caplog.records if "makes blocks again" in r.getMessage()]
    assert len(stalls) == 1 and len(back) == 1, (stalls, back)
    assert watcher.stats.node_stalls == 1


def test_a_block_that_waited_for_a_held_up_loop_shows_in_available_to_written(chain):
    held = {"done": False}

    def hold_once(record) -> None:  # the loop held up 1.5 s after one block (a hung call, a long pause)
        if not held["done"] and len(watcher.stats.records) >= 3:
            held["done"] = True
            time.sleep(1.5)

    watcher = make_watcher(chain.node.url, chain.market.addresses_provider, on_block=hold_once)
    thread = _run(watcher)
    try:
        with Miner(chain, every=0.3):
            assert _wait_for(lambda: held["done"] and len(watcher.stats.records) >= 10, 20)
    finally:
        _stop(watcher, thread)
    waited = [r for r in watcher.stats.records if r.available_to_written_ms - r.latency_ms > 500]
    # the blocks mined while the loop slept: their wait counted (the first of them ~1.2-1.5 s), their seen ->
    # written latency not
    assert waited, [(r.block, round(r.latency_ms), round(r.available_to_written_ms)) for r in watcher.stats.records]
    assert max(r.available_to_written_ms for r in waited) > 1000
    assert all(r.latency_ms < 500 for r in waited)
