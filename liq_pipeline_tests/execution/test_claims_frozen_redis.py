"""Claims and the nonce lock against a real redis-server frozen with SIGSTOP: fail closed (no claim, no lock: nothing
may be sent), one timeout for the first refusal and none after (the outage is shared by every user of the client),
one line when it starts and one when it ends, and claims granted again soon after SIGCONT."""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest

from liq_pipeline.cache.keys import MarketKeys
from liq_pipeline.execution.idempotency import (
    GRANTED,
    UNAVAILABLE,
    AttemptGuard,
    NonceLock,
    Opportunity,
    execution_client,
    outage_of,
)

pytestmark = pytest.mark.integration

TIMEOUT = 0.2
MARKET = MarketKeys.for_market(31337, "0x" + "c1" * 20)
SENDER = "0x" + "ab" * 20


def _opportunities(count: int) -> list[Opportunity]:
    return [Opportunity(MARKET, f"0x{i + 1:040x}", "0x" + "11" * 20, "0x" + "22" * 20) for i in range(count)]


def test_a_frozen_redis_refuses_every_claim_waits_once_and_logs_once(own_server, caplog):
    info = own_server.ensure_running()
    client = execution_client(info.url, timeout=TIMEOUT)
    guard, lock = AttemptGuard(client, 30, owner="frozen"), NonceLock(client, 31337, SENDER)
    assert client.ping()
    caplog.set_level(logging.INFO, logger="liq_pipeline.execution")
    os.kill(info.pid, signal.SIGSTOP)
    try:
        started = time.perf_counter()
        first = guard.claim_all(_opportunities(3), block=1)
        assert [c.reason for c in first] == [UNAVAILABLE] * 3 and not any(first)
        assert TIMEOUT * 0.9 <= time.perf_counter() - started < TIMEOUT * 1.9
        waits = []
        for block in range(2, 12):  # the outage's next blocks: refused without a round trip
            started = time.perf_counter()
            claims = guard.claim_all(_opportunities(3), block=block)
            assert lock.acquire() is None  # no nonce either: nothing could be signed and sent
            waits.append(time.perf_counter() - started)
            assert [c.reason for c in claims] == [UNAVAILABLE] * 3
            time.sleep(0.05)
        # a round trip to the frozen server would be a whole TIMEOUT; a quarter leaves room for a loaded machine
        assert max(waits) < TIMEOUT / 4, max(waits)
        assert outage_of(client).refused >= 40  # 10 blocks x (3 claims + 1 lock)
    finally:
        os.kill(info.pid, signal.SIGCONT)
    thawed, claims = time.monotonic(), []
    while time.monotonic() - thawed < 3.0:  # the background PING hears Redis within a probe interval or two
        claims = guard.claim_all(_opportunities(3)[1:], block=20)
        if claims[0].reason != UNAVAILABLE:
            break
        time.sleep(0.05)
    assert [c.reason for c in claims] == [GRANTED, GRANTED], "claims resume after SIGCONT"
    token = lock.acquire()
    assert token is not None and lock.release(token)
    lines = [r.getMessage() for r in caplog.records if r.name == "liq_pipeline.execution.idempotency"]
    assert len(lines) == 2, lines
    assert "Redis unreachable" in lines[0] and "TimeoutError" in lines[0]
    assert "Redis answers again after" in lines[1] and "nothing sent" in lines[1]
    # the first claim of the outage was sent before Redis froze; it was applied at SIGCONT and is recognised as
    # ours (its token was kept), never handed to someone else
    again = guard.claim_all(_opportunities(1), block=21)
    assert again[0].reason == GRANTED
