"""The executor wired into the watcher's block, in three places:
1. fast lane, once the block is read and before the engine evaluates the whole book: the exact HF of the watchlist
   (the users the previous evaluation expected to cross soonest, and those still below 1); those below 1 are
   planned, verified and sent at once. The book's evaluation is most of a block's time at 100k users, and the
   predictive engine names the users who cross: this is what it is for;
2. slow lane, right after the evaluation and before the candidates are written to Redis: the users below 1 the
   watchlist missed (a move no scenario foresaw). The write (sorted sets, hashes, KPIs for other bots) costs the
   watcher milliseconds at 100k users (docs/performance.md); our own transactions do not wait for it;
3. once the candidates are out: the precomputed calldata of the top candidates refreshed for the next blocks.
`liq execute`, `liq bench-watch
--execute` and `liq arena` all act through `ExecutionHook`, so they measure the same path.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

import numpy as np
import polars as pl

from ..evaluation.tracker import Tracker
from ..risk.evaluation import Evaluation
from ..risk.exact import account_data
from ..risk.market import user_positions
from ..risk.wadray import WAD
from .executor import FastPathExecutor
from .precompute import PrecomputeCalldata, PrecomputeCandidate, RefreshReport
from .records import ExecutionAttempt

log = logging.getLogger(__name__)
# users the fast lane checks at each block: the soonest by ETA (and everyone below 1). Their exact HFs cost ~8 us
# each (python integers), so 256 cost ~2 ms, a small part of the ~40 ms the whole book's evaluation takes at 100k
WATCH_SIZE = 256


def soonest_rows(result: Evaluation, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The book rows of the `count` candidates with the smallest ETA over every scenario (within the horizon), and
    every row's smallest ETA."""
    soonest = np.minimum.reduce(list(result.eta.values())) if result.eta else np.zeros(0)
    near = np.flatnonzero(soonest <= result.params.horizon_sec)
    if near.size > count:
        near = near[np.argpartition(soonest[near], count - 1)[:count]]
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
        self._fast_done: set[str] = set()
        self._followed = False
        self._block: int | None = None
        self._dormant: dict[str, tuple] = {}  # user below 1 without a profitable plan -> the prices it had none at
        self.attempts: list[ExecutionAttempt] = []  # this block's decisions (sent, dry-run, skipped)
        self.stages: list[dict[str, float]] = []  # per block that sent: the executor's stages, ms (benchmarks)
        self.sent_by_lane: Counter = Counter()  # transactions sent from the fast lane and from the slow one
        self._last_error: str | None = None

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
            positions = positions_of(state)
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
            self.stages.append(dict(self.executor.stages_ms))
        if self.on_attempt is not None:
            for attempt in attempts:
                self.on_attempt(attempt)

    def _positions(self, state, users: list[str]) -> list:
        if not users:
            return []
        frame = self.tracker.positions.filter(pl.col("user").is_in(users))
        return user_positions(frame, state.reserve_ids)

    def _watched_below(self, state) -> list:
        """The watchlist's positions at this block whose exact HF is below 1."""
        positions = self._positions(state, self.watchlist)
        self._fast_users = [p.user for p in positions]
        return [p for p in positions if account_data(p, state).health_factor < WAD]

    def _next_watchlist(self, result: Evaluation, below: list[str]) -> None:
        """The users to check first at the next block: those below 1 now (not liquidated yet) and the
        `watch_size` soonest by ETA over every scenario."""
        near, _soonest = soonest_rows(result, self.watch_size)
        # users below 1 without a profitable plan stay on it: the executor remembers the state they had none in and
        # skips them at ~10 us each until it changes (a price moving makes many of them worth it at once)
        self.watchlist = list(dict.fromkeys([*below, *result.book.positions["user"].gather(near).to_list()]))

    def after_write(self, _record=None) -> None:
        """PrecomputeCalldata for the next blocks, once the block's candidates are out (the watcher's on_block):
        the top PRECOMPUTE_TOP_K candidates by ETA (the soonest of their scenarios), each planned again only when
        its position or a price of its plan changed. Off the hot path; a failure is logged and forgotten."""
        result, precompute = self._result, self.precompute
        if precompute is None or result is None or not precompute.top_k:
            return
        try:
            near, soonest = soonest_rows(result, precompute.top_k)
            users = result.book.positions["user"].gather(near).to_list()
            eta = dict(zip(users, soonest[near].tolist(), strict=True))
            state = self.tracker.market_state()
            frame = self.tracker.positions.filter(pl.col("user").is_in(users))
            positions = user_positions(frame, state.reserve_ids)
            pools, costs = self.executor.venue_state(state, positions)
            candidates = [PrecomputeCandidate(p, eta.get(p.user, 0.0)) for p in positions]
            report = precompute.refresh(state.block, state, candidates, pools, costs)
        except Exception as error:  # precomputing is an optimisation: the executor plans afresh without it
            why = f"{type(error).__name__}: {error}"
            log.warning("precomputing calldata failed at block %d (%s)", self.tracker.block, why)
            return
        self.refreshes = [*self.refreshes[-99:], report]
