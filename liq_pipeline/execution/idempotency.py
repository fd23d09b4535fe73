"""One attempt per opportunity, one sender per nonce: claims in Redis shared by every executor process.

Both fail closed. A claim that Redis did not confirm (down, hung past the client's timeout, an error) is a "no":
the caller must not send. Sending twice costs gas and can lose money; not sending costs one opportunity.

An outage is one state per client (`outage_of(client)`), shared by the guard, the nonce lock and the precompute on
that client: the first failure costs one timeout and logs one line; from then on every claim is refused at once,
without a round trip, while a background thread PINGs Redis; the first claim after Redis answered again goes to
Redis, and one line says the outage ended (how long, how many claims were refused). Before, each block of an
outage waited the client's timeout again (0.5 s in `liq execute`) for its claims, and again for the precompute.

Keys (under the project's layout, cache/keys.py):
- `liq:{<chain>:<pool>}:execution:attempt:<user>:<debt>:<collateral>`: SET NX EX EXECUTION_ATTEMPT_TTL_SEC, value
  `<owner>:<block>:<random>`. The window is the TTL, not a block bucket in the key: with buckets, two processes a
  block apart on either side of a bucket boundary would both win.
- `liq:{<chain>:sender:<address>}:execution:nonce-lock`: SET NX PX with a random token, deleted only by the
  holder (a Lua compare-and-delete), so a lock that expired and was taken by another process is never released
  by the first.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from ..cache.client import connect
from ..cache.keys import PREFIX, MarketKeys

log = logging.getLogger(__name__)

_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
# A claim slower than this has lost the race anyway (the block -> sent budget is tens of ms); a hung Redis must
# not hold the executor (a frozen Redis once stalled the watcher for 12 s).
CLAIM_TIMEOUT_SEC = 0.05

# Delete KEYS[1] only if it still holds ARGV[1] (the caller's token): atomic on the server.
_RELEASE_IF_OWNER = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

_REDIS_ERRORS = (redis.RedisError, OSError)

GRANTED = "granted"
TAKEN = "taken"  # another attempt (this process or another) holds it
UNAVAILABLE = "redis-unavailable"


def execution_client(url: str, timeout: float = CLAIM_TIMEOUT_SEC) -> redis.Redis:
    """A client for claims: short timeouts, no retry (a retried SET NX could report our own claim as taken)."""
    return connect(url, connect_timeout=timeout, timeout=timeout, retries=0)


def _address(value: str, what: str) -> str:
    if not isinstance(value, str) or not _ADDRESS_RE.match(value):
        raise ValueError(f"{what} must be a 0x-prefixed 20-byte hex address, got {value!r}")
    return value.lower()  # one opportunity, one key, whatever the checksum casing


@dataclass(frozen=True)
class Opportunity:
    """A liquidation that may be attempted: one market, one user, one (debt, collateral) pair."""

    market: MarketKeys
    user: str
    debt_asset: str
    collateral_asset: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "user", _address(self.user, "user"))
        object.__setattr__(self, "debt_asset", _address(self.debt_asset, "debt_asset"))
        object.__setattr__(self, "collateral_asset", _address(self.collateral_asset, "collateral_asset"))

    @property
    def key(self) -> str:
        return self.market.key(f"execution:attempt:{self.user}:{self.debt_asset}:{self.collateral_asset}")


def nonce_lock_key(chain_id: int, sender: str) -> str:
    # "sender:" keeps the tag apart from any market's `{chain:pool}`; one key per sending address and chain.
    return f"{PREFIX}:{{{chain_id}:sender:{_address(sender, 'sender')}}}:execution:nonce-lock"


@dataclass(frozen=True)
class Claim:
    granted: bool
    reason: str  # GRANTED, TAKEN or UNAVAILABLE
    key: str
    token: str | None = None

    def __bool__(self) -> bool:
        return self.granted


PROBE_INTERVAL_SEC = 0.25  # between the background PINGs of an outage (each bounded by the client's timeout)


class RedisOutage:
    """A client's Redis outage: logged once when it starts and once when it ends, not on every refused claim; while
    it lasts `closed` is True (do not touch Redis: refuse) until a background PING hears Redis again."""

    def __init__(self, client: redis.Redis, probe_interval: float = PROBE_INTERVAL_SEC) -> None:
        self.client = client
        self.probe_interval = probe_interval
        self.down = False
        self.outages = 0
        self.refused = 0  # claims and locks refused without a round trip during the current outage
        self._since = 0.0
        self._lock = threading.Lock()
        self._heard = threading.Event()  # the probe heard Redis: the next caller tries it for real
        self._wanted = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def closed(self) -> bool:
        """True while Redis is known to be away and the probe has not heard it since: answer "no" at once."""
        return self.down and not self._heard.is_set()

    def refuse(self, count: int = 1) -> None:
        self.refused += count

    def failed(self, what: str, error: BaseException) -> None:
        with self._lock:
            self._heard.clear()
            self._wanted.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._probe, name="execution-redis-probe", daemon=True)
                self._thread.start()
            if self.down:
                return
            self.down, self._since, self.refused = True, time.monotonic(), 0
            self.outages += 1
        log.warning(
            "Redis unreachable for %s (%s): nothing is sent until it answers again (no claim waits for it meanwhile)",
            what,
            type(error).__name__,
        )

    def answered(self) -> None:
        if not self.down:
            return
        with self._lock:
            if not self.down:
                return
            self.down = False
            took, refused = time.monotonic() - self._since, self.refused
        log.warning(
            "Redis answers again after %.1fs: claims resume (%d refused meanwhile, nothing sent)", took, refused
        )

    def _probe(self) -> None:
        # `_wanted` cleared before a round, never after its PING: a failure reported meanwhile is never lost
        while True:
            self._wanted.wait()
            self._wanted.clear()
            while True:
                time.sleep(self.probe_interval)
                try:
                    self.client.ping()
                except _REDIS_ERRORS:
                    continue
                self._heard.set()
                break


def outage_of(client: redis.Redis) -> RedisOutage:
    """The one outage state of `client` (created on first use; every user of the client shares it)."""
    outage = getattr(client, "_liq_outage", None)
    if outage is None:
        outage = RedisOutage(client)
        client._liq_outage = outage
    return outage


class AttemptGuard:
    """`claim(opportunity, block)`: True for exactly one caller per opportunity per `ttl_sec`, over all processes
    (`claim_all`: many at once)."""

    def __init__(self, client: redis.Redis, ttl_sec: int, owner: str) -> None:
        if ttl_sec < 1:
            raise ValueError(f"ttl_sec must be >= 1, got {ttl_sec}")
        self.client = client
        self.ttl_sec = ttl_sec
        self.owner = owner
        self._release = client.register_script(_RELEASE_IF_OWNER)
        self._outage = outage_of(client)
        self._unconfirmed: dict[str, tuple[str, float]] = {}  # key -> (token, when) of a claim Redis did not answer

    def claim(self, opportunity: Opportunity, block: int) -> Claim:
        return self.claim_all([opportunity], block)[0]

    def claim_all(self, opportunities: list[Opportunity], block: int) -> list[Claim]:
        """`claim` of each, in ONE round trip (a pipeline of SET NX, not a transaction: each key is won or lost on
        its own). Redis silent: every one UNAVAILABLE. One claim per user took ~1 ms each, 16 ms for a block's 16
        transactions on the 100k devnet: most of the budget of block seen -> sent."""
        if not opportunities:
            return []
        keys = [o.key for o in opportunities]
        if self._outage.closed:  # Redis away and not heard since: no, at once (nothing was sent to Redis)
            self._outage.refuse(len(keys))
            return [Claim(False, UNAVAILABLE, key) for key in keys]
        if self._unconfirmed:  # past their TTL they hold nothing any more
            now = time.monotonic()
            self._unconfirmed = {k: v for k, v in self._unconfirmed.items() if now - v[1] < self.ttl_sec}
        # a claim whose answer was lost keeps its token: if Redis applied it after all (a hung server resumes the
        # commands it had read), it is ours, and nothing was sent for it
        fresh = f"{self.owner}:{block}:"
        tokens = [self._unconfirmed.get(key, ("",))[0] or fresh + secrets.token_hex(8) for key in keys]
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for key, token in zip(keys, tokens, strict=True):
                    pipe.set(key, token, nx=True, ex=self.ttl_sec)
                    if key in self._unconfirmed:
                        pipe.get(key)
                replies = iter(pipe.execute())
        except _REDIS_ERRORS as error:
            # some SETs may have been applied: remembered, so that the next claim recognises them as ours
            self._outage.failed("attempt claims", error)
            self._unconfirmed.update((key, (token, time.monotonic())) for key, token in zip(keys, tokens, strict=True))
            return [Claim(False, UNAVAILABLE, key) for key in keys]
        self._outage.answered()
        claims = []
        for key, token in zip(keys, tokens, strict=True):
            won = bool(next(replies))
            if key in self._unconfirmed:
                held = next(replies)
                won = won or (held.decode() if isinstance(held, bytes) else held) == token
                del self._unconfirmed[key]
            claims.append(Claim(True, GRANTED, key, token) if won else Claim(False, TAKEN, key))
        return claims

    def release_all(self, claims: list[Claim]) -> None:
        """`release_unsent` of each granted claim, in one round trip (a block's settled transactions: one
        compare-and-delete each took ~0.5 ms, ~8 ms of the block's path for 16)."""
        held = [claim for claim in claims if claim.granted and claim.token is not None]
        if not held or self._outage.closed:  # they expire by themselves
            return
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for claim in held:
                    self._release(keys=[claim.key], args=[claim.token], client=pipe)
                pipe.execute()
        except _REDIS_ERRORS:
            pass  # they expire by themselves: those users wait ttl_sec, nothing is sent twice

    def release_unsent(self, claim: Claim) -> bool:
        """Give a claim back when nothing was sent (verification failed first). Never after a send."""
        if not claim.granted or claim.token is None or self._outage.closed:
            return False
        try:
            return bool(self._release(keys=[claim.key], args=[claim.token]))
        except _REDIS_ERRORS:
            return False  # it expires by itself: the opportunity waits ttl_sec, nothing is sent twice


class NonceLock:
    """One sender of transactions per (chain, address) at a time, so two processes never pick the same nonce."""

    def __init__(self, client: redis.Redis, chain_id: int, sender: str, ttl_ms: int = 5_000) -> None:
        if ttl_ms < 1:
            raise ValueError(f"ttl_ms must be >= 1, got {ttl_ms}")
        self.client = client
        self.key = nonce_lock_key(chain_id, sender)
        self.ttl_ms = ttl_ms  # a holder that dies frees the nonce after this long
        self._release = client.register_script(_RELEASE_IF_OWNER)
        self._outage = outage_of(client)

    def acquire(self) -> str | None:
        """The lock's token, or None: held by another process, or Redis did not answer (fail closed)."""
        if self._outage.closed:
            self._outage.refuse()
            return None
        token = secrets.token_hex(16)
        try:
            won = self.client.set(self.key, token, nx=True, px=self.ttl_ms)
        except _REDIS_ERRORS as error:
            self._outage.failed("the nonce lock", error)
            return None
        self._outage.answered()
        return token if won else None

    def release(self, token: str) -> bool:
        """Free the lock if `token` still holds it; False if it expired meanwhile (or Redis is down)."""
        if self._outage.closed:
            return False  # it expires by itself after ttl_ms
        try:
            return bool(self._release(keys=[self.key], args=[token]))
        except _REDIS_ERRORS:
            return False

    @contextmanager
    def held(self) -> Iterator[bool]:
        """`with lock.held() as ok:` send only if ok; released on leaving, whatever happened inside."""
        token = self.acquire()
        try:
            yield token is not None
        finally:
            if token is not None:
                self.release(token)
