"""One executor process of the race test (spawned twice): claims and nonce-locked sends, round by round."""

from __future__ import annotations

import random
import time

from liq_pipeline.cache.keys import MarketKeys
from liq_pipeline.execution.idempotency import UNAVAILABLE, AttemptGuard, NonceLock, Opportunity, execution_client

DEBT = "0x" + "d0" * 20
COLLATERAL = "0x" + "c0" * 20
SENDER = "0x" + "5e" * 20


def user(round_: int) -> str:
    return f"0x{round_ + 1:040x}"


def sends_key(market: MarketKeys, round_: int) -> str:
    return market.key(f"test:sends:{round_}")


def nonce_key(market: MarketKeys) -> str:
    return market.key("test:nonce")


def race(url: str, pool: str, rounds: int, barrier, results, name: str) -> None:
    client = execution_client(url, timeout=2.0)  # generous: the machine is shared, an unavailable claim would skew it
    market = MarketKeys.for_market(31337, pool)
    guard = AttemptGuard(client, ttl_sec=120, owner=name)
    lock = NonceLock(client, 31337, SENDER, ttl_ms=10_000)
    wins, unavailable, nonces = [], 0, []
    jitter = random.Random(name)
    for round_ in range(rounds):
        opportunity = Opportunity(market, user(round_), DEBT, COLLATERAL)
        barrier.wait(timeout=60)  # both processes claim the same opportunity at the same moment
        # The last to reach a barrier leaves it first, and the winner (one more write) is the last to reach the
        # next one: without a random head start the same process won all 300 rounds on CI. Up to 1 ms keeps the
        # claims within the same moment on this machine, each process first in about half the rounds.
        time.sleep(jitter.uniform(0.0, 0.001))
        claim = guard.claim(opportunity, block=round_)
        unavailable += claim.reason == UNAVAILABLE
        if claim:
            client.incr(sends_key(market, round_))  # stands for the send: counted by Redis, not by us
            wins.append(round_)
        # A read-modify-write of a shared "next nonce" under the lock: lost updates would show a broken lock.
        while True:
            with lock.held() as ok:
                if ok:
                    nonce = int(client.get(nonce_key(market)) or 0)
                    client.set(nonce_key(market), nonce + 1)
                    nonces.append(nonce)
                    break
    results.put((name, wins, unavailable, nonces))
