"""Keep a market's positions current block by block, and evaluate them: the engine's chain-facing driver.

Shared by the Dagster evaluation job and the long-lived watcher. `bootstrap` reads every borrower the events name
since a starting block; `advance` reads the events of the new blocks, re-reads only the users they touched (the
dirty users) at the new block, and merges them; `evaluate` reads the reserves and prices at the block, extends
the price window, and runs the engine over every user in every scenario.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import polars as pl

from ..chain.discovery import (
    Market,
    ReaderError,
    discover_market,
    market_state_from_answers,
    market_state_requests,
    read_market_state,
)
from ..chain.events import EVENT_SCHEMA, borrowers_from_events, decode_logs, fetch_events
from ..chain.log_scan import LogScanner
from ..chain.multicall import MULTICALL3
from ..chain.positions import read_positions
from ..chain.rpc import NodeUnavailable, RpcClient, RpcError
from ..risk.book import PositionBook, book_config_key, build_book
from ..risk.engine import evaluate
from ..risk.evaluation import Evaluation
from ..risk.market import MarketState
from ..risk.params import AssetTrend, EngineParams
from ..risk.price_window import price_window_stats
from ..risk.screen import Screen
from ..risk.versions import ProtocolRules

log = logging.getLogger(__name__)

TREND_EVERY = 10  # blocks between recomputations of drift and volatility, at a block where a price moved
TREND_MAX_AGE = 30  # blocks after which they are recomputed even if no price moved
FAST_PATH_BLOCKS = 20  # up to this many new blocks: logs and market state in a single JSON-RPC batch


@dataclass
class BlockDelta:
    """What happened on chain in (from_block, to_block]."""

    from_block: int
    to_block: int
    touched_users: list[str]
    price_updates: int
    deferred_users: int = 0  # touched users left for the next block by PREDICTIVE_MAX_USERS_PER_TICK
    header: dict | None = None  # to_block's header, when the one-round-trip path read it with the logs
    # The events: a frame, or (few-block path) the raw logs the scan kept, decoded on first use (nobody on the hot
    # path reads them; `args` stays null there)
    decoded: pl.DataFrame | None = None
    logs: list[dict] | None = None
    market: Market | None = None
    liquidation_calls: int = 0  # LiquidationCall events in the blocks (a liquidation wave's mark)

    @cached_property
    def events(self) -> pl.DataFrame:
        if self.decoded is not None:
            return self.decoded
        if not self.logs:
            return pl.DataFrame(schema=EVENT_SCHEMA)
        return decode_logs(self.market, self.logs, self.market.price_sources.values(), with_args=False)

    @cached_property
    def liquidations(self) -> pl.DataFrame:
        return self.events.filter(pl.col("event") == "LiquidationCall")


@dataclass
class Polled:
    """Tracker.poll's answers: the next block's header (None: not mined yet), the node's head, the header at the
    tracker's block as the node has it now, and the answers advance() reads the block from."""

    number: int
    head: int | None
    header: dict | None
    held: dict | None
    answers: list


@dataclass
class EvaluationRecord:
    """One evaluated block, for the latency KPI and the lake."""

    block: int
    block_timestamp: int
    seen_at: float  # wall clock when the block was first observed
    written_at: float  # wall clock when candidates were ready
    users: int
    candidates: dict[str, int]
    exact_redecided: int

    @property
    def latency_ms(self) -> float:
        return (self.written_at - self.seen_at) * 1000.0


@dataclass
class Tracker:
    rpc: RpcClient
    market: Market
    rules: ProtocolRules
    positions: pl.DataFrame
    block: int
    stable_symbols: tuple[str, ...] = ()
    price_window: int = 60
    ema_span: int = 20
    prices: dict[str, deque] = field(default_factory=dict)
    # PREDICTIVE_MAX_USERS_PER_TICK: users re-read per block at most (0 = no cap). The rest wait for the next
    # block, first in line; they are counted, never dropped.
    max_users_per_tick: int = 0
    deferred: list[str] = field(default_factory=list)
    _book: PositionBook | None = None
    _book_state: MarketState | None = None  # the market whose configuration the book was built with
    _screen: Screen | None = None
    _previous: Evaluation | None = None  # the last evaluation: a block without price moves carries from it
    _state: MarketState | None = None
    _trends: dict[int, AssetTrend] | None = None
    _trends_block: int = -1
    _trend_prices: dict[int, int] | None = None  # the prices of the last block trends() was asked at
    _ahead: dict[int, AssetTrend] | None = None  # the next trends, computed off the hot path (after_block)

    @classmethod
    def bootstrap(
        cls,
        rpc: RpcClient,
        addresses_provider: str,
        rules: ProtocolRules,
        from_block: int,
        at_block: int,
        stable_symbols: Iterable[str] = (),
        known_users: Iterable[str] = (),
        price_window: int = 60,
        ema_span: int = 20,
        multicall: str | None = MULTICALL3,
    ) -> Tracker:
        market = discover_market(rpc, addresses_provider, at_block, rules, multicall=multicall)
        events = fetch_events(rpc, market, from_block, at_block)
        users = sorted(set(borrowers_from_events(events)) | set(known_users))
        positions = read_positions(rpc, market, users, at_block, rules)
        return cls(rpc, market, rules, positions, at_block, tuple(stable_symbols), price_window, ema_span)

    @classmethod
    def resume(
        cls,
        rpc: RpcClient,
        market: Market,
        rules: ProtocolRules,
        positions: pl.DataFrame,
        block: int,
        windows: pl.DataFrame | None,
        stable_symbols: Iterable[str] = (),
        price_window: int = 60,
        ema_span: int = 20,
    ) -> Tracker:
        """A tracker at `block` from saved positions and price windows (asset, timestamp, price), e.g. Redis'."""
        tracker = cls(rpc, market, rules, positions, block, tuple(stable_symbols), price_window, ema_span)
        if windows is not None:
            ordered = windows.sort("asset", "timestamp").select("asset", "timestamp", "price")
            for asset, timestamp, price in ordered.iter_rows():
                tracker.prices.setdefault(asset, deque(maxlen=price_window + 1)).append((int(timestamp), float(price)))
        return tracker

    @property
    def users(self) -> int:
        return self.positions.height

    def poll(self) -> Polled:
        """One round trip that both looks for the next block and reads it: its header, the market at it (reserves,
        prices), its logs, the header at the tracker's block (a replaced block at the same height shows there) and
        the node's head. The header comes first in the batch: once it exists, the entries after it see the block
        (a block mined between two entries cannot leave its logs out). While the block is not there the entries
        after the header are the node's errors, not retried (a poll every few ms must not back off), and unused.

        Before (issue #16): the loop asked eth_blockNumber, then this batch, so every block cost one round trip
        more before its read (at 30 ms to the node: 30 ms on every block)."""
        number = self.block + 1
        requests = [
            *market_state_requests(self.market, number),
            self.scanner.request(number, number),
            ("eth_getBlockByNumber", [hex(self.block), False]),
            ("eth_blockNumber", []),
        ]
        answers = self.rpc.batch(requests, raise_on_error=False, retry_entries=False)
        head = answers[-1]
        try:
            head = int(head, 16)
        except (TypeError, ValueError):
            head = None  # the node's error: the caller treats the poll as "nothing new"
        header = answers[0] if isinstance(answers[0], dict) else None
        held = answers[-2] if isinstance(answers[-2], dict) else None
        return Polled(number, head, header, held, answers[:-2])

    def advance(self, to_block: int, polled: Polled | None = None) -> BlockDelta:
        """Bring positions to `to_block`: only users named by the new blocks' events are re-read. `polled`: the
        answers of poll() for `to_block` (the next block), read already: no round trip for the logs and market."""
        if to_block <= self.block:
            return BlockDelta(self.block, self.block, [], 0)
        named_reserves: dict[str, set[int]] = {}
        if to_block - self.block <= FAST_PATH_BLOCKS:
            if polled is not None and polled.number == to_block == self.block + 1 and polled.header is not None:
                answers = polled.answers
            else:  # one round trip: the market at `to_block` (header first, reserves, prices), the new blocks' logs
                logs = self.scanner.request(self.block + 1, to_block)
                requests = [*market_state_requests(self.market, to_block), logs]
                answers = self.rpc.batch(requests, raise_on_error=False)
            if answers[0] is None:  # a node behind its own head, or a reorg that shortened the chain: retried
                raise NodeUnavailable(f"block {to_block} is not on the node (yet)")
            if isinstance(answers[-1], RpcError):
                raise ReaderError(f"eth_getLogs {self.block + 1}-{to_block} failed: {answers[-1]}")
            scanned = self.scanner.scan(answers[-1])
            state = market_state_from_answers(self.market, to_block, self.rules, answers[:-1], self.stable_symbols)
            named, price_updates, events, header = scanned.owners, scanned.price_updates, None, answers[0]
            named_reserves, liquidation_calls = self._reserves_named(scanned.logs)
        else:
            events = fetch_events(self.rpc, self.market, self.block + 1, to_block)
            state = scanned = header = None
            named = borrowers_from_events(events)
            price_updates = int((events["event"] == "AnswerUpdated").sum())
            liquidation_calls = int((events["event"] == "LiquidationCall").sum())
        touched = list(dict.fromkeys([*self.deferred, *named]))
        self.deferred = []
        if self.max_users_per_tick and len(touched) > self.max_users_per_tick:
            touched, self.deferred = touched[: self.max_users_per_tick], touched[self.max_users_per_tick :]
            log.warning("%d touched users over PREDICTIVE_MAX_USERS_PER_TICK: re-read next block", len(self.deferred))
        previous = self.block
        self.block = to_block
        self._state = None
        if state is not None:
            self._state = state
            self._observe_prices(state)
        self.refresh_users(touched, named_reserves)
        return BlockDelta(
            previous,
            to_block,
            touched,
            price_updates,
            len(self.deferred),
            decoded=events,
            logs=scanned.logs if scanned is not None else None,
            market=self.market,
            header=header,
            liquidation_calls=liquidation_calls,
        )

    def _reserves_named(self, logs: list[dict]) -> tuple[dict[str, set[int]], int]:
        """Per owner the logs name, the reserves those logs name (a token's own reserve, or a Pool event's reserve
        topics: Supply, Borrow, Repay, Withdraw, LiquidationCall, collateral toggles), and the LiquidationCall count.
        The position read speculates these legs with the book's: a leg the block opened is then read in the
        configuration's round trip, not in a second one (a newcomer's Supply and Borrow name both of its legs)."""
        by_token, by_topic = self._reserve_lookups
        shapes = self.scanner.shapes
        named: dict[str, set[int]] = {}
        liquidations = 0
        for entry in logs:
            topics = entry["topics"]
            shape = shapes[topics[0]]
            if shape.name == "LiquidationCall":
                liquidations += 1
            if not shape.owners:
                continue
            reserve = by_token.get(entry["address"].lower())
            reserves = {reserve} if reserve is not None else {by_topic[t] for t in topics[1:] if t.lower() in by_topic}
            if not reserves:
                continue
            for at in shape.owners:
                owner = "0x" + topics[at][-40:].lower()
                named.setdefault(owner, set()).update(reserves)
        return named, liquidations

    @cached_property
    def _reserve_lookups(self) -> tuple[dict[str, int], dict[str, int]]:
        """token address -> reserve id, and an asset's address as an event topic -> reserve id."""
        by_token, by_topic = {}, {}
        for r in self.market.reserves:
            for token in (r.a_token, r.variable_debt_token, r.stable_debt_token):
                by_token[token.lower()] = r.reserve_id
            by_topic["0x" + "0" * 24 + r.asset.lower()[2:]] = r.reserve_id
        return by_token, by_topic

    @cached_property
    def scanner(self) -> LogScanner:
        return LogScanner(self.market)

    def refresh_users(self, users: list[str], named: dict[str, set[int]] | None = None) -> None:
        """Re-read `users` at the current block (dirty users a crashed run left unacknowledged). `named`: per
        lower-case address, reserves the block's logs name for it, read speculatively with its book legs."""
        if not users:
            return
        hints = self._book.legs_of(users) if self._book is not None else None  # their legs: one round trip
        if named:
            hints = dict(hints or {})
            for user in users:
                extra = named.get(user.lower())
                if extra:
                    hints[user] = sorted(set(hints.get(user, ())) | extra)
        self._replace_users(users, read_positions(self.rpc, self.market, users, self.block, self.rules, hints=hints))

    def _replace_users(self, users: list[str], fresh: pl.DataFrame) -> None:
        """The rows of `users` replaced by `fresh` (their positions as read now; a user without one: no row)."""
        if self._book is not None and self._book_state is not None:
            # rows of the re-read users replaced in place: a few rows, not a rebuild of every user's floats
            self._book.update(fresh, self._book_state, reread=users)
            self.positions = self._book.positions
            return
        kept = self.positions.filter(~pl.col("user").is_in(users))
        self.positions = pl.concat([kept, fresh.select(kept.columns)]).sort("user")

    def rewind(self, block: int) -> None:
        """Back to `block` (a block not processed after all, or a reorg's common ancestor): the market is read
        again and the next evaluation starts afresh (nothing is carried across it). Users the later blocks touched
        must be re-read by the caller."""
        self.block = block
        self._state = None
        self._previous = None

    def after_block(self) -> None:
        """Housekeeping off the hot path (the watcher calls it once a block's candidates are written): compact the
        position book's exact frame if updates sliced it up, and compute the trends ahead of the block that
        will take them (a polars pass of ~10 ms, no longer on that block's path)."""
        if self._book is not None:
            self._book.compact()
            self.positions = self._book.positions
        if self._ahead is None and self._trends is not None and self.block - self._trends_block >= TREND_EVERY - 1:
            self._ahead = self._compute_trends()

    def market_state(self) -> MarketState:
        if self._state is None or self._state.block != self.block:
            self._state = read_market_state(self.rpc, self.market, self.block, self.rules, self.stable_symbols)
            self._observe_prices(self._state)
        return self._state

    def _observe_prices(self, state: MarketState) -> None:
        for reserve in state.reserves:
            window = self.prices.setdefault(reserve.symbol, deque(maxlen=self.price_window + 1))
            if not window or window[-1][0] < state.timestamp:
                window.append((state.timestamp, reserve.price))

    def trends(self, force: bool = False) -> dict[int, AssetTrend]:
        """Drift and volatility per reserve from the price windows. They move slowly: recomputed at most every
        TREND_EVERY blocks (a polars pass costs ~10 ms, most of a watcher's per-block budget), at a block where a
        price moved (that block is evaluated in full anyway; a block without price moves then carries the
        previous values, risk/carry.py), and at least every TREND_MAX_AGE blocks."""
        age = self.block - self._trends_block
        prices = self._state.prices if self._state is not None else None
        moved = prices != self._trend_prices
        if not force and self._trends is not None and (age < TREND_EVERY or (not moved and age < TREND_MAX_AGE)):
            self._trend_prices = prices
            return self._trends
        # computed ahead by after_block once the trends were TREND_EVERY - 1 blocks old, so from windows up to
        # TREND_MAX_AGE - TREND_EVERY + 1 (21) blocks before the block that takes them (42 s of a 60-block window:
        # trends move slowly; test_trend_refresh pins it), or now
        self._trends = self._ahead if self._ahead is not None and not force else self._compute_trends()
        self._ahead = None
        self._trends_block = self.block
        self._trend_prices = prices
        return self._trends

    def _compute_trends(self) -> dict[int, AssetTrend]:
        rows = [(symbol, ts, float(price)) for symbol, window in self.prices.items() for ts, price in window]
        if not rows:
            return {}
        observations = pl.DataFrame(
            rows, schema={"asset": pl.String, "timestamp": pl.Int64, "price": pl.Float64}, orient="row"
        )
        stats = price_window_stats(observations, self.price_window, self.ema_span)
        ids = {r.symbol: r.reserve_id for r in self.market.reserves}
        out = {}
        for row in stats.iter_rows(named=True):
            if row["asset"] in ids:
                out[ids[row["asset"]]] = AssetTrend(row["drift_per_sec"] or 0.0, row["volatility_per_sqrt_sec"])
        return out

    def book(self, state: MarketState) -> PositionBook:
        """The position book, built once and updated row by row; rebuilt when positions were replaced wholesale
        or the market's thresholds or e-mode configuration changed."""
        book = self._book
        if book is None or book.positions is not self.positions or book.config != book_config_key(state):
            self._book = build_book(self.positions, state)
            self.positions = self._book.positions
        self._book_state = state
        return self._book

    def evaluate(self, params: EngineParams, seen_at: float | None = None) -> tuple[Evaluation, EvaluationRecord]:
        seen = time.time() if seen_at is None else seen_at
        state = self.market_state()
        # the previous block's screen: users it proved far from liquidation are skipped while prices stay close
        try:
            result = evaluate(
                self.book(state),
                state,
                params,
                self.trends(),
                screen=self._screen,
                previous=self._previous,
                reuse_previous=True,  # the previous evaluation is not read again: its arrays are taken over
            )
        except BaseException:
            self._previous = None  # its arrays may be half taken over: the next evaluation starts afresh
            raise
        self._screen, self._previous = result.screen, result
        record = EvaluationRecord(
            block=self.block,
            block_timestamp=state.timestamp,
            seen_at=seen,
            written_at=time.time(),
            users=self.users,
            candidates=result.candidates_per_scenario(),
            exact_redecided=result.exact_redecided,
        )
        return result, record
