"""Idempotency against a real redis-server: one attempt per opportunity, one nonce holder, and fail closed."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import multiprocessing
import os
import signal
import time

import pytest

from liq_pipeline.cache import connect
from liq_pipeline.cache.keys import MarketKeys
from liq_pipeline.execution.idempotency import (
    GRANTED,
    TAKEN,
    UNAVAILABLE,
    AttemptGuard,
    NonceLock,
    Opportunity,
    execution_client,
    nonce_lock_key,
)
from liq_pipeline_tests.execution import racer

pytestmark = pytest.mark.integration

_pools = itertools.count(0x1000)
DEBT, COLLATERAL, SENDER = racer.DEBT, racer.COLLATERAL, racer.SENDER


@pytest.fixture
def market() -> MarketKeys:
    return MarketKeys.for_market(31337, f"0x{next(_pools):040x}")


@pytest.fixture
def client(redis_server):
    client = execution_client(redis_server.url, timeout=1.0)
    yield client
    client.close()


def _opportunity(market: MarketKeys, user: int = 1) -> Opportunity:
    return Opportunity(market, f"0x{user:040X}", DEBT.upper().replace("0X", "0x"), COLLATERAL)


def test_key_follows_the_market_layout_and_ignores_address_casing(market):
    upper = Opportunity(market, "0x" + "AB" * 20, DEBT, COLLATERAL)
    lower = Opportunity(market, "0x" + "ab" * 20, DEBT, COLLATERAL)
    assert upper.key == lower.key
    assert upper.key == f"{market.namespace}:execution:attempt:0x{'ab' * 20}:{DEBT}:{COLLATERAL}"
    assert nonce_lock_key(8453, "0x" + "5E" * 20) == f"liq:{{8453:sender:0x{'5e' * 20}}}:execution:nonce-lock"
    with pytest.raises(ValueError, match="user must be"):
        Opportunity(market, "0x12", DEBT, COLLATERAL)


def test_one_claim_per_opportunity_with_ttl(client, market):
    a = AttemptGuard(client, ttl_sec=30, owner="a")
    b = AttemptGuard(client, ttl_sec=30, owner="b")
    first = a.claim(_opportunity(market), block=100)
    assert first.granted and first.reason == GRANTED
    again = b.claim(_opportunity(market), block=101)
    assert not again and again.reason == TAKEN
    assert not a.claim(_opportunity(market), block=100)  # the same process does not get it twice either
    assert 0 < client.ttl(first.key) <= 30
    assert client.get(first.key).decode() == first.token
    assert b.claim(_opportunity(market, user=2), block=101)  # another user: another opportunity


def test_claim_all_wins_each_free_opportunity_once_in_one_round_trip(client, market):
    a = AttemptGuard(client, ttl_sec=30, owner="a")
    b = AttemptGuard(client, ttl_sec=30, owner="b")
    assert a.claim(_opportunity(market, 2), block=1)
    before = client.info("stats")["total_commands_processed"]
    claims = b.claim_all([_opportunity(market, u) for u in (1, 2, 3)], block=2)
    # one pipeline of three SETs (and the INFO that reads the count)
    assert client.info("stats")["total_commands_processed"] - before == 4
    assert [c.reason for c in claims] == [GRANTED, TAKEN, GRANTED]
    assert [client.get(c.key).decode() for c in claims if c] == [claims[0].token, claims[2].token]
    assert len({c.token for c in claims if c}) == 2
    assert b.claim_all([], block=3) == []


def test_release_all_frees_only_the_owners_claims_in_one_round_trip(client, market):
    a = AttemptGuard(client, ttl_sec=30, owner="a")
    b = AttemptGuard(client, ttl_sec=30, owner="b")
    mine = a.claim_all([_opportunity(market, u) for u in (1, 2)], block=1)
    theirs = b.claim(_opportunity(market, 3), block=1)
    stale = dataclasses.replace(theirs, token="b:0:not-the-token")  # a claim someone else holds now
    a.release_all([*mine, stale, b.claim(_opportunity(market, 1), block=1)])  # the last one: not granted
    assert [client.exists(c.key) for c in mine] == [0, 0]
    assert client.get(theirs.key).decode() == theirs.token


def test_claim_expires_after_its_ttl(client, market):
    guard = AttemptGuard(client, ttl_sec=1, owner="a")
    assert guard.claim(_opportunity(market), block=1)
    assert not guard.claim(_opportunity(market), block=1)
    time.sleep(1.2)
    assert guard.claim(_opportunity(market), block=2)


def test_release_unsent_only_frees_the_owners_claim(client, market):
    a = AttemptGuard(client, ttl_sec=30, owner="a")
    b = AttemptGuard(client, ttl_sec=30, owner="b")
    claim = a.claim(_opportunity(market), block=1)
    forged = type(claim)(True, GRANTED, claim.key, "someone-else")
    assert not b.release_unsent(forged)
    assert client.exists(claim.key)
    assert a.release_unsent(claim)
    assert b.claim(_opportunity(market), block=2)
    assert not a.release_unsent(claim)  # already gone: b's claim stays
    assert client.exists(claim.key)


def test_nonce_lock_is_exclusive_and_released_only_by_its_holder(client):
    sender = f"0x{next(_pools):040x}"
    one = NonceLock(client, 31337, sender, ttl_ms=200)
    two = NonceLock(client, 31337, sender, ttl_ms=5_000)
    token = one.acquire()
    assert token is not None
    assert two.acquire() is None
    time.sleep(0.3)  # `one` stalled past its ttl: the lock expired
    token_two = two.acquire()
    assert token_two is not None
    assert not one.release(token)  # must not free the lock `two` now holds
    assert client.get(two.key).decode() == token_two
    with one.held() as ok:
        assert not ok
    assert two.release(token_two)
    with one.held() as ok:
        assert ok and client.exists(one.key)
    assert not client.exists(one.key)


def test_two_processes_race_with_exactly_one_winner_per_round(redis_server, market):
    rounds = 300
    context = multiprocessing.get_context("spawn")  # real, separate interpreters
    barrier, results = context.Barrier(2), context.Queue()
    processes = [
        context.Process(target=racer.race, args=(redis_server.url, market.pool, rounds, barrier, results, name))
        for name in ("p1", "p2")
    ]
    for process in processes:
        process.start()
    outcome = {}
    for _ in processes:
        name, wins, unavailable, nonces = results.get(timeout=120)
        outcome[name] = (wins, unavailable, nonces)
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    wins1, wins2 = set(outcome["p1"][0]), set(outcome["p2"][0])
    assert not wins1 & wins2, "a round with two winners"
    assert wins1 | wins2 == set(range(rounds)), "a round with no winner"
    assert outcome["p1"][1] == outcome["p2"][1] == 0
    check = connect(redis_server.url)
    sends = [int(check.get(racer.sends_key(market, round_)) or 0) for round_ in range(rounds)]
    assert sends == [1] * rounds, "double sends"
    # every nonce handed out once, none lost: the lock serialized 2 x rounds read-modify-writes
    assert sorted(outcome["p1"][2] + outcome["p2"][2]) == list(range(2 * rounds))
    assert int(check.get(racer.nonce_key(market))) == 2 * rounds
    # both really competed (a process that never wins means the race was not a race)
    assert min(len(wins1), len(wins2)) > 0
    check.close()


def test_redis_down_means_no_send(own_server, market, caplog):
    info = own_server.ensure_running()
    client = execution_client(info.url)
    guard = AttemptGuard(client, ttl_sec=30, owner="a")
    lock = NonceLock(client, 31337, SENDER)
    assert guard.claim(_opportunity(market, 1), block=1)
    own_server.stop()
    caplog.set_level(logging.WARNING, logger="liq_pipeline.execution.idempotency")
    for block in range(2, 6):
        claim = guard.claim(_opportunity(market, 2), block=block)
        assert not claim and claim.reason == UNAVAILABLE
    claims = guard.claim_all([_opportunity(market, 4), _opportunity(market, 5)], block=6)
    assert [c.reason for c in claims] == [UNAVAILABLE, UNAVAILABLE]
    assert lock.acquire() is None
    with lock.held() as ok:
        assert not ok
    unreachable = [r for r in caplog.records if "attempt claims" in r.getMessage()]
    assert len(unreachable) == 1  # said once per outage, not per claim
    own_server.ensure_running()
    client = execution_client(own_server.info().url)
    assert AttemptGuard(client, ttl_sec=30, owner="a").claim(_opportunity(market, 3), block=7)


def test_hung_redis_is_not_waited_for(own_server, market):
    info = own_server.ensure_running()
    client = execution_client(info.url)  # CLAIM_TIMEOUT_SEC
    guard = AttemptGuard(client, ttl_sec=30, owner="a")
    lock = NonceLock(client, 31337, SENDER)
    assert guard.claim(_opportunity(market, 1), block=1)  # connected
    os.kill(info.pid, signal.SIGSTOP)
    try:
        started = time.perf_counter()
        claim = guard.claim(_opportunity(market, 2), block=2)
        token = lock.acquire()
        elapsed = time.perf_counter() - started
    finally:
        os.kill(info.pid, signal.SIGCONT)
    assert not claim and claim.reason == UNAVAILABLE
    assert token is None
    assert elapsed < 0.5, f"waited {elapsed:.3f} s for a frozen Redis"
