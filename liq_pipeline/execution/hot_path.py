"""The executor wired into the watcher's block, in three places:
1. fast lane, once the block is read and before the engine evaluates the whole book: the HF of the watchlist (the
   users the previous evaluation expected to cross soonest, those nearest HF 1, those still below 1, and those this
   block's events changed), decided by the engine's pass over their book rows; those below 1 are planned, verified
   and sent at once. The book's evaluation is most of a block's time at 100k users, and the
   predictive engine names the users who cross: this is what it is for;
2. slow lane, right after the evaluation and before the candidates are written to Redis: the users below 1 the
   watchlist missed (a move no scenario foresaw). The write (sorted sets, hashes, KPIs for other bots) costs the
   watcher milliseconds at 100k users (docs/performance.md); our own transactions do not wait for it;
3. once the candidates are out: the precomputed calldata of the top candidates refreshed for the next blocks.
`liq execute`, `liq bench-watch --execute` and `liq arena` all act through `ExecutionHook`, so they measure the same
path.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

import numpy as np
import redis

from ..chain.abi import checksum
from ..evaluation.tracker import Tracker
from ..risk.evaluation import Evaluation
from ..risk.health import evaluate_health
from ..risk.valuation import baseline_prices
from .executor import FastPathExecutor
from .idempotency import outage_of
from .precompute import PrecomputeCalldata, PrecomputeCandidate, RefreshReport
from .records import ExecutionAttempt

log = logging.getLogger(__name__)
# users the fast lane checks at each block: the soonest by ETA (and everyone below 1, and the users the block's
# events changed). Decided on their book rows, 2,048 cost ~1 ms, a small part of the ~40 ms the whole book's
# evaluation takes at 100k; at 256, a third of the 100k devnet's sends came from the slow lane (users crossing at a
# price move that were not among the 256 soonest)
WATCH_SIZE = 2048
# ... and the users nearest HF 1 now, whatever their ETA: the largest debts are planned first only among the users
# of one lane, so a large user reaching the executor in the slow lane meets what the fast lane's smaller ones left
WATCH_NEAR_HF = 1.02


def soonest_rows(
    result: Evaluation, count: int, skip: list[int] = (), weight: np.ndarray | None = None, below_first: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The book rows of the `count` candidates with the smallest ETA over every scenario (within the horizon), ties
    broken by the largest `weight`, and every row's smallest ETA (`skip`: rows left out; `below_first`: the users
    below HF 1 before every other, ETA -1: an ETA of 0 also means HF under 1 + the buffer)."""
    soonest = np.minimum.reduce(list(result.eta.values())) if result.eta else np.zeros(0)
    if below_first and soonest.size:
        with np.errstate(invalid="ignore"):
            soonest[result.hf_current < 1.0] = -1.0
    if len(skip):
        soonest[np.asarray(skip, np.int64)] = np.inf
    near = np.flatnonzero(soonest <= result.params.horizon_sec)
    if near.size > count:
        if weight is None:
            near = near[np.argpartition(soonest[near], count - 1)[:count]]
        else:
            near = near[np.lexsort((-np.nan_to_num(weight[near]), soonest[near]))[:count]]
    return near, soonest


class ExecutionHook:
    """The executor in the watcher's block: `fast` (on_read) on the watchlist, `hook(block, result, seen_at)`
    (on_evaluated) on the other users `result` found below HF 1, `after_write` (on_block) the precompute. A failure
    of the executor is logged once while it repeats and never reaches the watcher."""

    def __init__(
        self,
        executor: FastPathExecutor,
        tracker: Tracker,
        on_attempt: Callable[[ExecutionAttempt], None] | None = None,
        precompute: PrecomputeCalldata | None = None,
        watch_size: int = WATCH_SIZE,
    ) -> None:
        self.executor, self.tracker, self.on_attempt = executor, tracker, on_attempt
        self.precompute = precompute
        executor.precomputed = precompute
        self.refreshes: list[RefreshReport] = []  # the last few precompute refreshes (benchmarks read them)
        self._result: Evaluation | None = None
        self.watch_size = watch_size
        self.watchlist: list[str] = []  # checked by the fast lane at the next block
        self._fast_users: list[str] = []
        self._book_seen: tuple | None = None  # the book and its version the fast lane last saw
        self._fast_done: set[str] = set()
        self._followed = False
        self._block: int | None = None
        self._dormant: dict[str, tuple] = {}  # user below 1 without a profitable plan -> the prices it had none at
        self.attempts: list[ExecutionAttempt] = []  # this block's decisions (sent, dry-run, skipped)
        self.stages: list[dict[str, float]] = []  # per block that sent: the executor's stages, ms (benchmarks)
        self.sent_by_lane: Counter = Counter()  # transactions sent from the fast lane and from the slow one
        self._last_error: str | None = None
        self._precompute_error: str | None = None

    def fast(self, block: int, seen_at: float) -> None:
        """The fast lane (the watcher's on_read): once the block is read and before the engine evaluates the whole
        book, the exact HF of the users the previous evaluation expected to cross soonest (the watchlist); those
        below 1 go to the executor at once."""
        self._begin(block)
        if not self.watchlist:
            return
        self._act(block, seen_at, self._watched_below, "fast")
        self._fast_done = {user.lower() for user in self._fast_users}

    def __call__(self, block: int, result: Evaluation, seen_at: float) -> None:
        """The slow lane (the watcher's on_evaluated): the users the whole book's evaluation found below 1 that
        the fast lane did not already check; then the next block's watchlist."""
        if self._block != block:  # no fast lane ran for this block
            self._begin(block)
        self._result = result
        # hf_current is row-aligned with the book; rows the engine skipped this block were proven far from HF 1
        below = np.flatnonzero(result.hf_current < 1.0)
        users = result.book.positions["user"].gather(below).to_list() if below.size else []
        self._next_watchlist(result, users)
        # users the executor found no profitable plan for wait for a price move (their position and the pools are
        # checked by the executor when they come)
        prices = self._prices_key()
        users = [u for u in users if u.lower() not in self._fast_done and self._dormant.get(u.lower()) != prices]
        self._act(block, seen_at, lambda state: self._positions(state, users), "slow")
        for user in users:
            if self.executor.unplanned.get(user.lower()) == block:
                self._dormant[user.lower()] = prices
            else:
                self._dormant.pop(user.lower(), None)

    def _prices_key(self) -> tuple:
        return tuple(r.price for r in self.tracker.market_state().reserves)

    def _begin(self, block: int) -> None:
        self._block, self.attempts, self._fast_done, self._followed = block, [], set(), False

    def _act(self, block: int, seen_at: float, positions_of, lane: str) -> None:
        """The executor on `positions_of(state)` (what is in flight followed once per block)."""
        try:
            state = self.tracker.market_state()
            began = time.perf_counter()
            positions = positions_of(state)
            select_ms = (time.perf_counter() - began) * 1e3  # the fast lane's screen, the slow lane's lookup
            follow = not self._followed
            if not positions and not (follow and self.executor.in_flight):
                return
            attempts = self.executor.on_block(state, positions, seen_at, follow=follow)
            self._followed = True
        except Exception as error:  # the executor must never stop the watcher
            text = f"{type(error).__name__}: {error}"
            if text != self._last_error:
                log.warning("executor failed at block %d (%s); the watcher goes on", block, text)
            self._last_error = text
            return
        self._last_error = None
        self.attempts = [*self.attempts, *attempts]
        self.sent_by_lane[lane] += sum(a.tx_hash is not None for a in attempts)
        if any(a.tx_hash is not None for a in attempts):
            self.stages.append({"select": select_ms, **self.executor.stages_ms})
        if self.on_attempt is not None:
            for attempt in attempts:
                self.on_attempt(attempt)

    def _positions(self, state, users: list[str]) -> list:
        if not users:
            return []
        book = self.tracker.book(state)
        return book.exact_positions(np.asarray([row for row in book.rows_of(users) if row is not None], np.int64))

    def _watched_below(self, state) -> list:
        """The positions below HF 1 at this block among the watchlist and the users this block's events changed,
        decided by the engine's own pass over their book rows (float HF, exact where the float is near 1):
        ~1 ms for 2,000 rows, where Python integers cost ~8 us a user."""
        book = self.tracker.book(state)
        rows = {row for row in book.rows_of(self.watchlist) if row is not None}
        last = self._book_seen
        changed = book.rows_changed_since(last[1]) if last is not None and last[0] is book else None
        self._book_seen = (book, book.version)
        if changed is not None:
            rows.update(changed.tolist())
        picked = np.fromiter(sorted(rows), np.int64, len(rows))
        self._fast_users = book.users_at(picked)
        if not picked.size:
            return []
        now = evaluate_health(book, state, [baseline_prices(state)], picked)
        return book.exact_positions(picked[now.hf[:, 0] < 1.0])

    def _next_watchlist(self, result: Evaluation, below: list[str]) -> None:
        """The users to check first at the next block: those below 1 now (not liquidated yet), the `watch_size`
        soonest by ETA over every scenario, and the `watch_size` closest to HF 1 under WATCH_NEAR_HF whatever their
        ETA (`liq arena`: a $4.5M borrower at HF 1.0045, its ETA beyond the horizon, crossed at a price move and
        reached the executor only in the slow lane, after the fast lane's smaller users had taken the block's cap,
        the debt asset's inventory and the pair's depth: no plan, and the competitor took $1.9M of its debt)."""
        near, _soonest = soonest_rows(result, self.watch_size)
        with np.errstate(invalid="ignore"):
            close = np.flatnonzero(result.hf_current < WATCH_NEAR_HF)
        if close.size > self.watch_size:
            close = close[np.argpartition(result.hf_current[close], self.watch_size - 1)[: self.watch_size]]
        near = np.concatenate([near, close])
        # users below 1 without a profitable plan stay on it: the executor remembers the state they had none in and
        # skips them at ~10 us each until it changes (a price moving makes many of them worth it at once)
        self.watchlist = list(dict.fromkeys([*below, *result.book.users_at(near)]))

    def after_write(self, _record=None) -> None:
        """PrecomputeCalldata for the next blocks, once the block's candidates are out (the watcher's on_block):
        the top PRECOMPUTE_TOP_K candidates by ETA (the soonest of their scenarios), each planned again only when
        its position or a price of its plan changed. Off the hot path; a failure is logged and forgotten."""
        result, precompute = self._result, self.precompute
        if precompute is None or result is None or not precompute.top_k:
            return
        outage = outage_of(precompute.client)
        if outage.closed:  # Redis away (logged once by the claims): no timeout to wait here every block
            return
        try:
            book = result.book
            # users in flight and users below 1 without a profitable plan at these prices take no place in the top
            # (the executor's no_plan memo: users it planned below 1 without a profitable plan, until their state
            # changes; on the 100k devnet those dust and bad-debt users filled the whole top K: 0 hits in 506 sends)
            executor = self.executor
            idle = [*self._dormant, *executor.no_plan, *(f.attempt.user for f in executor.in_flight.values())]
            lowered = [u.lower() for u in idle]  # the book keeps each user as first read: either casing
            skip_rows = [r for r in book.rows_of([*lowered, *map(checksum, lowered)]) if r is not None]
            # the users below 1 first, then the soonest to cross, and among equal ETAs the largest debts first (the
            # executor's own order): at 100k users hundreds wait below 1 for their turn, and a top K of the largest
            # users with an ETA of 0 (HF under 1 + the buffer) missed the ones the executor took (1 hit in 506 sends)
            debt = next(iter(result.sums.values()))[1] if result.sums else None
            near, soonest = soonest_rows(result, precompute.top_k, skip_rows, debt, below_first=True)
            soonest[near] = np.maximum(soonest[near], 0.0)
            state = self.tracker.market_state()
            positions = book.exact_positions(near)
            pools, costs = executor.venue_state(state, positions)
            weights = np.nan_to_num(debt[near]).tolist() if debt is not None else [0.0] * near.size
            candidates = [
                PrecomputeCandidate(p, eta, profit_estimate=w)  # the debt: the bonus grows with it
                for p, eta, w in zip(positions, soonest[near].tolist(), weights, strict=True)
            ]
            report = precompute.refresh(state.block, state, candidates, pools, costs)
        except (redis.RedisError, OSError) as error:  # an outage: one line for it, shared with the claims
            outage.failed("precomputed calldata", error)
            return
        except Exception as error:  # precomputing is an optimisation: the executor plans afresh without it
            why = f"{type(error).__name__}: {error}"
            if why != self._precompute_error:  # once while it repeats, not every block
                log.warning("precomputing calldata failed at block %d (%s)", self.tracker.block, why)
            self._precompute_error = why
            return
        self._precompute_error = None
        outage.answered()
        self.refreshes = [*self.refreshes[-99:], report]
