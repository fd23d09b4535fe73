"""The pre-confirmation lane (issue #15): act on a price update seen before its block is sealed.

A node's pending stream (chain/pending.py: Flashblocks' `pendingLogs` on Base, a mempool's transactions, the
devnet's pool) shows a feed's new answer before the block that holds it is sealed. The lane takes the latest sealed
state, puts the pending answers in place of the prices of the reserves those feeds price (the AaveOracle's source
per asset), decides the HF of the users of those reserves at those prices (the engine's pass, exact near 1), and
hands the users below 1 to the executor with an `Ahead`: simulated behind the updates, and where the update waits
in a mempool (ordered by fee with ours), fees under the update's. Their transactions land in the update's own
block, right behind it: a bot that reacts to sealed blocks can only land a block later.

Threads: the stream calls `submit` on its own thread; the lane's worker thread takes every update queued at that
moment and acts on them together, under `lock` (the watcher's: the tracker and the executor belong to the block
loop, never to two threads at once). The updates of one coming block accumulate (a block often moves several
feeds, seen one by one): each act prices every update seen since the last sealed block.

Not priced here (left to the sealed path): a feed behind an adapter (CAPO, a proxy whose underlying aggregator
emits the event) that is not itself the AaveOracle's source, and V3.0-3.1 e-mode price sources.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from ..chain.pending import FLASHBLOCK_LOGS, PriceUpdate
from ..evaluation.tracker import Tracker
from ..risk.health import evaluate_health
from ..risk.market import MarketState
from ..risk.valuation import baseline_prices
from .executor import Ahead, FastPathExecutor
from .gas_ladder import Fees
from .records import ExecutionAttempt

log = logging.getLogger(__name__)
KEPT = 10_000  # acts whose figures LaneStats keeps
# How long an update waits for the rest of its block's updates before the lane acts: a block's feed updates come
# one after the other (the devnet's in one batch, ~1 ms apart); acting on each alone made the later ones wait for
# the whole act on the first
GATHER_S = 0.003


def feeds_of(tracker: Tracker) -> dict[str, list[int]]:
    """Feed address (lower case) -> the reserve ids it prices: the AaveOracle's source of each reserve's asset."""
    ids = {r.asset.lower(): r.reserve_id for r in tracker.market.reserves}
    out: dict[str, list[int]] = {}
    for asset, source in tracker.market.price_sources.items():
        if asset.lower() in ids:
            out.setdefault(source.lower(), []).append(ids[asset.lower()])
    return out


def with_prices(state: MarketState, prices: dict[int, int]) -> MarketState:
    """`state` with the reserves of `prices` (reserve id -> AaveOracle price) at those prices."""
    reserves = tuple(
        dataclasses.replace(r, price=prices[r.reserve_id]) if r.reserve_id in prices else r for r in state.reserves
    )
    return dataclasses.replace(state, reserves=reserves)


@dataclasses.dataclass
class LaneStats:
    updates: int = 0  # price updates handed to the lane
    acts: int = 0  # evaluations at pending prices
    users_below: int = 0  # users found below 1 at pending prices, over every act
    # the last KEPT acts (a long-lived `liq execute` acts every block): update seen -> users decided, and the
    # executor's stages of those that sent
    evaluate_ms: deque[float] = dataclasses.field(default_factory=lambda: deque(maxlen=KEPT))
    # the first update seen -> the lane holds the lock (the watcher's block loop holds it while it handles a block)
    waited_ms: deque[float] = dataclasses.field(default_factory=lambda: deque(maxlen=KEPT))
    # per act that sent: the executor's stages (ms) and how many transactions it sent
    sends: deque[tuple[dict[str, float], int]] = dataclasses.field(default_factory=lambda: deque(maxlen=KEPT))

    def summary(self) -> dict:
        stages = [stage for stage, _count in self.sends]
        names = sorted({name for stage in stages for name in stage})
        per_stage = {n: sorted(stage.get(n, 0.0) for stage in stages) for n in names}
        # a wave's cost per transaction: the verification simulates every one of them, the send adds every one
        costly = [n for n in ("verify", "send") if n in names]
        per_tx = {n: sorted(stage.get(n, 0.0) / count for stage, count in self.sends) for n in costly}
        decided, waited = sorted(self.evaluate_ms), sorted(self.waited_ms)
        sizes = sorted(count for _stage, count in self.sends)
        return {
            "stages_p50_ms": {n: _p50(v) for n, v in per_stage.items()},
            "stages_max_ms": {n: _top(v) for n, v in per_stage.items()},
            "stages_per_sent_p50_ms": {n: _p50(v) for n, v in per_tx.items()},
            "sent_per_act_p50": _p50(sizes, None),
            "sent_per_act_max": _top(sizes, None),
            "updates": self.updates,
            "acts": self.acts,
            "users_below": self.users_below,
            "seen_to_decided_p50_ms": _p50(decided),
            "seen_to_decided_max_ms": _top(decided),
            "seen_to_lock_p50_ms": _p50(waited),
            "seen_to_lock_max_ms": _top(waited),
        }


def _p50(ordered: list, digits: int | None = 2):
    """The middle of sorted values (rounded to `digits`; None: as they are), None when there are none."""
    return _at(ordered, len(ordered) // 2, digits)


def _top(ordered: list, digits: int | None = 2):
    """The largest of sorted values, as _p50."""
    return _at(ordered, -1, digits)


def _at(ordered: list, index: int, digits: int | None):
    if not ordered:
        return None
    return ordered[index] if digits is None else round(ordered[index], digits)


class PendingLane:
    """`submit(update)` from the stream's thread; the lane acts on its own thread (`start`/`stop`), or in the
    caller's with `act_now` (tests, benchmarks driving it step by step)."""

    def __init__(
        self,
        executor: FastPathExecutor,
        tracker: Tracker,
        lock: threading.RLock | threading.Lock,
        on_attempt: Callable[[ExecutionAttempt], None] | None = None,
        pending_state: bool = False,
    ) -> None:
        self.executor, self.tracker, self.lock, self.on_attempt = executor, tracker, lock, on_attempt
        # the node's pending state is the coming block as the sequencer ordered it so far, updates first (a
        # Flashblock's order is final; the devnet's paced simulator tips its updates at the top): simulated on it.
        # Else (a mempool) behind the updates' own calls. Flashblocks' updates are always simulated on it.
        self.pending_state = pending_state
        self.feeds = feeds_of(tracker)
        self.stats = LaneStats()
        self._queue: queue.SimpleQueue[PriceUpdate | None] = queue.SimpleQueue()
        self._block: int | None = None  # the sealed block the pending answers below are on top of
        self._answers: dict[int, int] = {}  # reserve id -> pending price
        self._calls: dict[str, dict] = {}  # feed -> its update's call (mempool updates)
        self._caps: list[Fees] = []  # the mempool updates' fees
        self._flashblock = False  # an update came from Flashblocks: the node's pending state holds it
        self._thread: threading.Thread | None = None
        self._last_error: str | None = None
        self.acted = threading.Condition()  # notified after each act (benchmarks wait on it)
        self.handled = 0  # updates acted on (or failed on) by the worker thread

    # --- threads -----------------------------------------------------------------------------------------------
    def submit(self, update: PriceUpdate) -> None:
        self._queue.put(update)

    def start(self) -> PendingLane:
        self._thread = threading.Thread(target=self._run, name="liq-pending-lane", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            updates = [first]
            until = time.monotonic() + GATHER_S
            while True:  # the block's other updates, if they come within GATHER_S, go with it
                try:
                    more = self._queue.get(timeout=max(0.0, until - time.monotonic()))
                except queue.Empty:
                    break
                if more is None:
                    self._act_safely(updates)
                    return
                updates.append(more)
            self._act_safely(updates)

    def _act_safely(self, updates: list[PriceUpdate]) -> None:
        try:
            with self.lock:
                self.stats.waited_ms.append((time.time() - min(u.seen_at for u in updates)) * 1e3)
                self.act_now(updates)
        except Exception as error:  # the lane must never stop the stream or the watcher
            text = f"{type(error).__name__}: {error}"
            if text != self._last_error:
                log.warning("pending lane failed (%s); the sealed path goes on", text)
            self._last_error = text
        else:
            self._last_error = None
        with self.acted:
            self.handled += len(updates)
            self.acted.notify_all()

    def wait_handled(self, count: int, timeout: float) -> bool:
        """Wait until the worker has acted on `count` updates in all (at most `timeout` s): a benchmark that paces
        blocks lets the lane finish within the block's window, as a sequencer's clock would not wait."""
        with self.acted:
            return self.acted.wait_for(lambda: self.handled >= count, timeout)

    # --- acting ------------------------------------------------------------------------------------------------
    def act_now(self, updates: list[PriceUpdate]) -> list[ExecutionAttempt]:
        """Price `updates` (with the others seen since the last sealed block) and send for the users they make
        liquidatable. The caller holds the lock."""
        state = self.tracker.market_state()
        if self._block != state.block:  # a new sealed block holds (or dropped) what was pending
            self._block, self._answers, self._calls, self._caps, self._flashblock = state.block, {}, {}, [], False
        touched = False
        for update in updates:
            ids = self.feeds.get(update.feed.lower())
            self.stats.updates += 1
            if not ids or update.answer <= 0:  # not a source of this market, or the oracle's fallback would price it
                continue
            touched = True
            for reserve_id in ids:
                self._answers[reserve_id] = update.answer
            if update.source == FLASHBLOCK_LOGS:
                self._flashblock = True
            elif update.sender and update.data:
                self._calls[update.feed.lower()] = {"from": update.sender, "to": update.feed, "data": update.data}
                if update.max_fee is not None and update.max_priority_fee is not None:
                    self._caps.append(Fees(update.max_fee, update.max_priority_fee))
        if not touched:
            return []
        seen_at = min(u.seen_at for u in updates)
        pending = with_prices(state, self._answers)
        book = self.tracker.book(state)
        columns = [book.reserve_ids.index(r) for r in self._answers if r in book.reserve_ids]
        # the users of the repriced reserves, as collateral or as debt (a debt asset going up crosses them too)
        uses = (book.holds[:, columns] > 0).any(axis=1) | (book.owes[:, columns] > 0).any(axis=1)
        rows = np.flatnonzero(uses & (book.owes > 0).any(axis=1))
        if rows.size:
            health = evaluate_health(book, pending, [baseline_prices(pending)], rows)
            rows = rows[health.hf[:, 0] < 1.0]
        self.stats.acts += 1
        self.stats.users_below += int(rows.size)
        self.stats.evaluate_ms.append((time.time() - seen_at) * 1e3)
        if not rows.size:
            return []
        # our fees under a mempool update's wherever it may still be ordered with ours (a Flashblock's is final)
        caps = [] if self._flashblock else self._caps
        cap = (
            Fees(min(c.max_fee_per_gas for c in caps), min(c.max_priority_fee_per_gas for c in caps)) if caps else None
        )
        if self._flashblock or self.pending_state:
            ahead = Ahead(block_tag="pending", fee_cap=cap)
        else:
            ahead = Ahead(calls=tuple(self._calls.values()), fee_cap=cap)
        attempts = self.executor.on_block(pending, book.exact_positions(rows), seen_at, follow=False, ahead=ahead)
        sent = sum(1 for a in attempts if a.tx_hash)
        if sent:
            self.stats.sends.append((dict(self.executor.stages_ms), sent))
        if self.on_attempt is not None:
            for attempt in attempts:
                self.on_attempt(attempt)
        return attempts
