"""`liq watch`: the long-lived hot path. Follows every block, refreshes what it touched, re-evaluates, writes.

A Dagster run costs seconds before user code runs; a liquidation bot needs tens of milliseconds. The watcher keeps
everything in memory (the Tracker: positions, price windows), starts from the latest state in Redis (no rescan on
restart), catches up missed blocks in order, then follows the head:
- per block: the block's events (Pool, tokens, oracle, price feeds) -> re-read the touched users at that block ->
  reserve indices and prices at that block -> the engine over every user in every scenario -> candidates,
  positions, price windows and KPIs to Redis -> one record per block appended to the Redis Stream `blocks`
  (block, timestamp, seen, written, users, candidates per scenario), which Dagster reads for the latency KPI;
- reorgs: a new block whose parent hash is not the hash held at that height means the chain reorganized: the
  watcher walks back to the common ancestor, re-reads every user the orphaned blocks touched at the ancestor,
  forgets those blocks, and re-follows the new branch (its candidates replace the orphaned ones);
- faults: an unreachable node or Redis is logged once per outage, retried with backoff, never fatal; the block the
  fault interrupted is processed again once it clears, so no block is skipped. A hung Redis costs one block at
  most REDIS_HOT_PATH_TIMEOUT_MS once per outage (its writes then wait in memory, newest state only, and catch up
  when it answers again: cache/resilience.py); a node showing no new head for WATCH_HEAD_STALL_BLOCKS block times
  is warned about once per stall, by the head observer (heads.py), even while the loop waits on that node;
- latency: `latency_ms` is block seen by the loop -> candidates written; `available_to_written_ms` starts at the
  block's availability instead (the first time the head observer, polling in its own thread, or the loop saw it),
  so a loop held up by anything shows in it (heads.py says why this time and not the block's timestamp).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import redis

from ..cache.resilience import UNAVAILABLE
from ..chain.rpc import NodeUnavailable, RpcClient, RpcError
from ..evaluation.tracker import Polled, Tracker
from ..risk.evaluation import Evaluation
from ..risk.fused import warm
from ..risk.fused_projection import warm_projection
from ..risk.params import EngineParams
from .candidates import CandidateWriter
from .heads import HeadObserver, HeadPoller
from .process_memory import freeze_long_lived, keep_freed_buffers

log = logging.getLogger("liq_pipeline.watch")

POSITIONS_EVERY = 20  # blocks between snapshots of the whole positions frame in Redis (45 ms at 100k users); a
# restart resumes from the snapshot's block and re-follows the blocks after it, so nothing is lost
HASH_MEMORY = 256  # block hashes kept for reorg detection (Base reorgs are a few blocks deep at most)
CATCH_UP_EVALUATE_ALL = 200  # a gap up to this many blocks is evaluated block by block; longer: advanced at once
RECORDS_KEPT = 1_000  # block records kept for the stream `blocks` while Redis is away (~30 min of Base blocks)


@dataclass
class BlockRecord:
    block: int
    block_hash: str
    block_timestamp: int
    seen_at: float
    written_at: float
    users: int
    touched: int
    candidates: dict[str, int]
    exact_redecided: int
    reorg_depth: int = 0
    phases_ms: dict[str, float] = field(default_factory=dict)  # read, evaluate, write
    evaluated: int = 0  # users the engine evaluated (the rest were screened out as far from liquidation)
    carried: bool = False  # no price moved: users far from every decision kept the previous values
    writes: dict[str, int] = field(default_factory=dict)  # candidate members detailed, rescored, removed
    available_at: float = 0.0  # first time the block was seen by anyone (head observer or loop); 0: = seen_at
    # sequential JSON-RPC round trips from the poll that found the block to its candidates written (the loop is one
    # thread: its client's requests in that window, retries included, posts sent at once counted once; the
    # executor's too when it shares the client), and the HTTP requests themselves (what a relay counts)
    round_trips: int = 0
    requests: int = 0
    price_updates: int = 0
    liquidation_calls: int = 0

    @property
    def kind(self) -> str:
        """liquidation_wave (a LiquidationCall in the block), price_move (a feed published), or quiet."""
        if self.liquidation_calls:
            return "liquidation_wave"
        return "price_move" if self.price_updates else "quiet"

    @property
    def latency_ms(self) -> float:
        return (self.written_at - self.seen_at) * 1000.0

    @property
    def available_to_written_ms(self) -> float:
        """Block available (heads.py) -> its candidates written: includes any time the block waited to be seen."""
        return (self.written_at - (self.available_at or self.seen_at)) * 1000.0

    def to_fields(self) -> dict[str, str]:
        fields = {
            "block": str(self.block),
            "hash": self.block_hash,
            "timestamp": str(self.block_timestamp),
            "seen_at": f"{self.seen_at:.6f}",
            "written_at": f"{self.written_at:.6f}",
            "latency_ms": f"{self.latency_ms:.3f}",
            "available_at": f"{self.available_at or self.seen_at:.6f}",
            "available_to_written_ms": f"{self.available_to_written_ms:.3f}",
            "users": str(self.users),
            "touched": str(self.touched),
            "exact_redecided": str(self.exact_redecided),
            "reorg_depth": str(self.reorg_depth),
            "evaluated": str(self.evaluated),
            "carried": str(int(self.carried)),
        }
        fields.update({f"candidates_{k}": str(v) for k, v in self.candidates.items()})
        return fields


@dataclass
class WatchStats:
    records: list[BlockRecord] = field(default_factory=list)
    reorgs: int = 0
    node_outages: int = 0
    node_stalls: int = 0  # no new head for WATCH_HEAD_STALL_BLOCKS block times (the head observer's count)
    repolls: int = 0  # polls that found the head past a block the node did not return yet, asked again at once

    def latencies_ms(self) -> list[float]:
        return [r.latency_ms for r in self.records]

    def available_to_written_ms(self) -> list[float]:
        return [r.available_to_written_ms for r in self.records]


class Watcher:
    def __init__(
        self,
        rpc: RpcClient,
        tracker: Tracker,
        params: EngineParams,
        cache=None,  # a ResilientCache, or None (tests, benchmarks without Redis)
        poll_interval: float = 0.02,
        max_backoff: float = 5.0,
        on_block: Callable[[BlockRecord], None] | None = None,
        metrics=None,  # a liq_pipeline.metrics.BlockMetrics, or None
        on_evaluated: Callable[[int, Evaluation, float], None] | None = None,
        on_read: Callable[[int, float], None] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        head_stall_blocks: int = 3,
        observe_heads: bool = True,
        observer_poll_interval: float = 0.05,
        speculate_before: float | None = None,
    ):
        self.rpc = rpc
        self.tracker = tracker
        self.params = params
        self.cache = cache
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.on_block = on_block
        # (block, evaluation, seen_at) right after the evaluation, before the write: the executor's hot path
        self.on_evaluated = on_evaluated
        # (block, seen_at) once the block is read (positions, prices, indices), before the engine's evaluation: the
        # executor's fast lane for the users the previous evaluation expected to cross
        self.on_read = on_read
        self.metrics = metrics
        self.clock = clock
        self.sleep = sleep
        self.hashes: OrderedDict[int, str] = OrderedDict()
        self.touched_at: dict[int, list[str]] = {}  # per processed block, the users it touched (reorg rollback)
        self.stats = WatchStats()
        self.candidates = CandidateWriter(cache) if cache is not None else None
        self.last_result = None  # the engine's Evaluation of the last processed block
        self._flagged: dict[str, np.ndarray] = {}  # per book row, flagged by each scenario (confirmed crossings)
        self._liquidatable_before = np.zeros(0, bool)
        self._crossing_generation: int | None = None
        self._node_down = False
        self._stop = False
        # held while a block is processed: the executor's pre-confirmation lane (execution/pending_lane.py) acts
        # on the same tracker and executor from the pending stream's thread, between blocks
        self.lock = threading.RLock()
        self._frozen = False  # long-lived objects frozen out of the collector's reach (after the first block)
        # the head observer (heads.py), started by run() when the node has a URL: block available times and stalls
        self.head_stall_blocks = head_stall_blocks
        self.observe_heads = observe_heads
        self.observer_poll_interval = observer_poll_interval
        self.observer: HeadObserver | None = None
        # speculative polls (Tracker.poll: the next block's whole read in the poll) only from this many seconds before
        # the next block is due; before that, eth_blockNumber alone. None: every poll (a node of one's own)
        self.speculate_before = speculate_before
        self._last_block_at: float | None = None  # when the newest block was seen (the loop's clock)
        self._available: dict[int, float] = {}  # block -> when it was mined, told by a caller (note_available)
        self._unsent_records: deque[dict[str, str]] = deque(maxlen=RECORDS_KEPT)
        keep_freed_buffers()  # a long-lived process reallocating 100k-row arrays every block

    # --- chain access -----------------------------------------------------------------------------------------------
    def _header(self, number: int) -> dict | None:
        return self.rpc.call("eth_getBlockByNumber", hex(number), False)

    def head(self) -> int:
        return self.rpc.quantity("eth_blockNumber")

    def note_available(self, number: int, at: float) -> None:
        """Block `number` was available at `at` (wall time): a caller that mines the blocks itself knows (the
        devnet benchmark: the simulator's mining time). The earliest of this, the head observer's and the loop's
        own time is the block's available time."""
        self._available[number] = min(at, self._available.get(number, at))
        while len(self._available) > HASH_MEMORY:
            self._available.pop(next(iter(self._available)))

    def _available_at(self, number: int, seen: float) -> float:
        times = [seen]
        if (told := self._available.pop(number, None)) is not None:
            times.append(told)
        if self.observer is not None and (stamp := self.observer.first_seen(number)) is not None:
            times.append(stamp)
        return min(times)

    def remember(self, number: int, block_hash: str) -> None:
        self.hashes[number] = block_hash
        while len(self.hashes) > HASH_MEMORY:
            oldest = next(iter(self.hashes))
            self.hashes.pop(oldest)
            self.touched_at.pop(oldest, None)

    # --- reorgs -----------------------------------------------------------------------------------------------------
    def _common_ancestor(self, number: int) -> int:
        """Highest block <= number whose hash on the node equals the one we hold."""
        height = number
        while height in self.hashes:
            header = self._header(height)
            if header is not None and header["hash"] == self.hashes[height]:
                return height
            height -= 1
        if not self.hashes:
            return number
        raise RuntimeError(f"reorg deeper than the {HASH_MEMORY} blocks the watcher remembers (from {number})")

    def rollback(self, ancestor: int, also: list[str] = ()) -> int:
        """Forget blocks after `ancestor`: re-read every user they touched (and `also`: users read at a block of
        the new branch) AT the ancestor. Returns the depth."""
        orphaned = [n for n in self.hashes if n > ancestor]
        users = sorted({u for n in orphaned for u in self.touched_at.get(n, [])} | set(also))
        self.tracker.rewind(ancestor)  # values of orphaned blocks are not carried
        self.tracker.refresh_users(users)
        for number in orphaned:  # forgotten only once their users are re-read: a failed read is tried again
            self.hashes.pop(number, None)
            self.touched_at.pop(number, None)
        self.stats.reorgs += 1
        log.warning(
            "reorg: %d block(s) after %d orphaned; %d users re-read at the ancestor",
            len(orphaned),
            ancestor,
            len(users),
        )
        return len(orphaned)

    # --- one block ---------------------------------------------------------------------------------------------------
    def _node_counts(self) -> tuple[int, int]:
        """Sequential round trips and HTTP requests so far by the loop's node clients (the watcher's and the
        tracker's, once if shared)."""
        clients = {id(c): c for c in (self.rpc, getattr(self.tracker, "rpc", None))}.values()
        return sum(getattr(c, "round_trips", 0) for c in clients), sum(getattr(c, "requests", 0) for c in clients)

    def process(
        self,
        number: int,
        seen_at: float | None = None,
        reorg_depth: int = 0,
        polled: Polled | None = None,
        round_trips_from: tuple[int, int] | None = None,
    ) -> BlockRecord:
        """Advance to `number` (which must follow the tracker's block), evaluate, write, record. `reorg_depth`: the
        block completes the replay of a reorg that deep (its write is whole, the positions snapshotted). `polled`:
        the poll that found the block, already holding its logs and market; `round_trips_from`: the loop's round
        trips and requests before that poll (the block's counts include it)."""
        seen = self.clock() if seen_at is None else seen_at
        trips = self._node_counts() if round_trips_from is None else round_trips_from
        previous = self.tracker.block
        try:
            began = time.perf_counter()
            # the block's logs, header and market in one round trip (or none: the poll read them); the header's
            # parent hash is checked after
            delta = self.tracker.advance(number, polled) if polled is not None else self.tracker.advance(number)
            header = delta.header or self._header(number)
            if header is None:
                raise NodeUnavailable(f"block {number} is not on the node (yet)")
            parent = self.hashes.get(number - 1)
            reorged = parent is not None and header["parentHash"] != parent
            if not reorged:
                read_done = time.perf_counter()
                fast_ms = 0.0
                if self.on_read is not None:
                    self.on_read(number, seen)
                    fast_ms = (time.perf_counter() - read_done) * 1e3
                result, _record = self.tracker.evaluate(self.params, seen_at=seen)
                evaluated = time.perf_counter()
        except BaseException:
            # not processed: the next attempt re-reads (previous, number] from the start, so no block is lost
            self.tracker.rewind(previous)
            raise
        if reorged:
            # the block read is on another branch: back to the common ancestor (the users this block touched are
            # re-read there too), then the new branch block by block
            try:
                depth = self.rollback(self._common_ancestor(number - 1), also=delta.touched_users)
            except BaseException:
                # the node failed mid-search or mid-read: back to where this block started, the hashes held still
                # (rollback forgets them last), so the next attempt meets the same parent mismatch again
                self.tracker.rewind(previous)
                raise
            return self._replay_to(number, seen, depth)
        self.touched_at[number] = delta.touched_users
        self.last_result = result
        self.remember(number, header["hash"])
        record = BlockRecord(
            block=number,
            block_hash=header["hash"],
            block_timestamp=int(header["timestamp"], 16),
            seen_at=seen,
            written_at=0.0,
            users=self.tracker.users,
            touched=len(delta.touched_users),
            candidates=result.candidates_per_scenario(),
            exact_redecided=result.exact_redecided,
            reorg_depth=reorg_depth,
            phases_ms={"read": (read_done - began) * 1e3, "evaluate": (evaluated - read_done) * 1e3 - fast_ms},
            evaluated=result.evaluated,
            carried=result.carried,
            available_at=self._available_at(number, seen),
            price_updates=delta.price_updates,
            liquidation_calls=delta.liquidation_calls,
        )
        if fast_ms:
            record.phases_ms["fast"] = fast_ms
        if self.on_evaluated is not None:
            self.on_evaluated(number, result, seen)
            executed = time.perf_counter()
            record.phases_ms["execute"] = (executed - evaluated) * 1e3
            evaluated = executed
        now = self._node_counts()  # the write goes to Redis, not to the node
        record.round_trips, record.requests = now[0] - trips[0], now[1] - trips[1]
        self._write(number, result, record)
        record.phases_ms["write"] = (time.perf_counter() - evaluated) * 1e3
        return record

    def _replay_to(self, number: int, seen: float, depth: int) -> BlockRecord:
        record = None
        for height in range(self.tracker.block + 1, number + 1):
            record = self.process(height, seen, reorg_depth=depth if height == number else 0)
        return record

    def _write(self, number: int, result, record: BlockRecord) -> None:
        if self.cache is not None:
            if record.reorg_depth:
                self.candidates.reset()  # the orphaned blocks' candidates go with a full rewrite
            self.candidates.write(result)
            record.writes = dict(self.candidates.last_counts)
        record.written_at = self.clock()
        self.tracker.after_block()  # after the candidates are out: compaction, the next trends
        if self.cache is not None:
            self.cache.set_kpis(  # for dashboards: after the candidates, which bots wait for
                {
                    "watcher_last_block": number,
                    "watcher_users": record.users,
                    **{f"watcher_candidates_{k}": v for k, v in record.candidates.items()},
                }
            )
            # after the candidates are out: the snapshot is for a restart (~45 ms at 100k users), not for bots
            if number % POSITIONS_EVERY == 0 or record.reorg_depth:
                self.cache.put_positions(number, self.tracker.positions, self.hashes.get(number))
            self._append_record(record)
            if number % 50 == 0:  # price windows change slowly; a restart rebuilds them from the oracle anyway
                self.cache.put_price_windows(number, _observations(self.tracker))
        self.stats.records.append(record)
        self._last_block_at = record.seen_at
        if not self._frozen:  # the book and its index exist now: collections skip them from here on
            log.debug("%d long-lived objects frozen out of the garbage collector", freeze_long_lived())
            self._frozen = True
        if self.metrics is not None:
            self.metrics.observe_available(record.available_to_written_ms / 1000.0)
            self.metrics.observe(
                block=number,
                latency_s=record.latency_ms / 1000.0,
                users=record.users,
                batch_seconds=record.phases_ms.get("evaluate", 0.0) / 1000.0,
                candidates_per_scenario=record.candidates,
                crossings_confirmed_per_scenario=self._confirmed_crossings(number, result),
                hf_values=result.hf_current,
                behind=0,
            )
            if self.cache is not None:
                self.metrics.redis_up(self.cache.reachable)
                self.metrics.redis_deferred_writes(getattr(self.cache, "deferred_writes", 0))
        if self.on_block:
            self.on_block(record)

    def _confirmed_crossings(self, number: int, result) -> dict[str, int]:
        """Per scenario, users now liquidatable whom that scenario flagged in an earlier block (a predicted
        crossing that happened). Each user counts once, at the block it crosses. Kept as arrays row-aligned with
        the position book (a set of user names per block cost milliseconds at 100k users)."""
        book = result.book
        now = result.hf_current < 1.0
        if self._crossing_generation != book.generation:  # a new row layout: start over
            self._liquidatable_before = now
            self._flagged = {name: mask.copy() for name, mask in result.candidate_mask.items()}
            self._crossing_generation = book.generation
            return {name: 0 for name in result.candidate_mask}
        before = _grown(self._liquidatable_before, now.size)
        crossed = now & ~before
        self._liquidatable_before = now
        confirmed = {}
        for name, mask in result.candidate_mask.items():
            flagged = _grown(self._flagged.get(name, np.zeros(0, bool)), now.size)
            confirmed[name] = int((crossed & flagged).sum())
            self._flagged[name] = flagged | mask
        return confirmed

    def _append_record(self, record: BlockRecord) -> None:
        """The block's record to the stream `blocks`; while Redis is away the records wait (the last RECORDS_KEPT),
        so the latency KPI Dagster reads from the stream sees the blocks an outage delayed."""
        self._unsent_records.append(record.to_fields())
        if not self.cache.reachable:
            return
        try:
            key = self.cache.cache.keys.key("blocks")
            with self.cache.cache.client.pipeline(transaction=False) as pipe:
                for fields in self._unsent_records:
                    pipe.xadd(key, fields, maxlen=100_000, approximate=True)
                pipe.execute()
        except UNAVAILABLE as error:  # kept for later; the resilient cache logs the outage once
            self.cache.note_unavailable(error)
            return
        except redis.RedisError:  # not an outage: the record is only a measurement
            pass
        self._unsent_records.clear()

    # --- the loop ------------------------------------------------------------------------------------------------
    def step(self) -> int:
        """Process every block between the tracker's block and the head, in order (holding `lock`). Returns how many.

        One round trip looks for the next block and reads it at once (Tracker.poll: its header, logs and market,
        the held block's header, the head), so a block without touched users costs that round trip only and one
        with touched users one more (their positions); the minimum over HTTP, where a block must be asked for and
        its touched users are known only from its logs. Before (issue #16): eth_blockNumber, then the block's
        batch, then the positions: 2 and 3 round trips (4 when a touched user's new leg missed the guess)."""
        with self.lock:
            return self._step()

    def _step(self) -> int:
        trips = self._node_counts()
        if not self._speculating():
            head = self.head()  # a block not due yet: one cheap call (a same-height reorg waits for the next poll)
            return self._follow(head, None, trips) if head > self.tracker.block else 0
        polled = self.tracker.poll()
        head = polled.head
        if head is None:
            raise NodeUnavailable("the node did not answer eth_blockNumber with a block number")
        gap = head - self.tracker.block
        if polled.header is None and gap > 0:
            # mined between the poll's header and its eth_blockNumber (the head is asked last), or a node behind its
            # own head (load-balanced): asked again at once, then left to the next poll
            self.stats.repolls += 1
            polled = self.tracker.poll()
            head = polled.head if polled.head is not None else head
            gap = head - self.tracker.block
            if polled.header is None and gap > 0:
                return 0
        if polled.header is None:
            if gap < 0:
                return 0
            # no new block, but the block we hold may have been replaced at the same height (a reorg that did not
            # lengthen the chain): compare hashes (the poll read the header at our height)
            held = self.hashes.get(head)
            if held is None or polled.held is None or polled.held["hash"] == held:
                return 0
            depth = self.rollback(self._common_ancestor(head))
            self._replay_to(head, self.clock(), depth)
            return depth
        return self._follow(head, polled, trips)

    def _speculating(self) -> bool:
        """Whether this poll reads the next block speculatively. A speculative poll carries the market's whole read
        (a header, every reserve, the prices, the logs: ~20 entries on a 15-reserve market) and saves a block one
        round trip; polled every 20 ms all the time that is ~1,000 requests a second, past what hosted nodes allow
        (rate limits of tens to hundreds a second), so only near the block's due time (the head observer measures
        the block time); a node that is late keeps being polled speculatively until its block comes."""
        if self.speculate_before is None or self._last_block_at is None or self.observer is None:
            return True
        due = self._last_block_at + self.observer.block_time()
        return self.clock() >= due - self.speculate_before

    def _follow(self, head: int, polled: Polled | None, trips: tuple[int, int]) -> int:
        """Process the blocks after the tracker's up to `head` (the first from `polled`'s answers where it read it)."""
        gap = head - self.tracker.block
        if gap > CATCH_UP_EVALUATE_ALL:
            log.info("catching up %d blocks: advancing to %d, then following", gap, head - 1)
            self.tracker.advance(head - 1)
            header = self._header(head - 1)
            self.remember(head - 1, header["hash"])
            polled = None  # read for the block after the tracker's, which moved
        done, first = 0, self.tracker.block + 1
        for number in range(first, head + 1):
            if polled is not None and number == polled.number:
                self.process(number, polled=polled, round_trips_from=trips)
            elif polled is None and number == first:  # the head call that found it counts as the block's
                self.process(number, round_trips_from=trips)
            else:
                self.process(number)
            done += 1
        return done

    def stop(self) -> None:
        self._stop = True

    def checkpoint(self) -> None:
        """Snapshot the positions now (on shutdown): a restart then resumes from here."""
        if self.cache is not None and self.hashes:
            self.cache.put_positions(self.tracker.block, self.tracker.positions, self.hashes.get(self.tracker.block))

    def start_observer(self) -> HeadObserver | None:
        """The head observer on a client of its own (the loop's may be stuck in a call): short timeout, no retry,
        so a frozen node costs each poll at most a second and the stall check runs on time."""
        url = getattr(self.rpc, "url", None)
        if not self.observe_heads or self.observer is not None or not isinstance(url, str):
            return self.observer
        metrics = self.metrics

        def stalled(_quiet: float) -> None:
            self.stats.node_stalls += 1
            if metrics is not None:
                metrics.node_stall()

        self.observer = HeadObserver(
            HeadPoller(url, timeout=1.0),
            poll_interval=self.observer_poll_interval,
            stall_blocks=self.head_stall_blocks,
            on_stall=stalled,
        ).start()
        return self.observer

    def stop_observer(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer = None

    def _idle(self, spent: float = 0.0) -> None:
        """No new block: wait a poll interval, or less when the head observer sees one first. An observer already
        ahead of the loop's node (a load-balanced endpoint answering from another backend) is not waited on: the
        loop would spin on its own node's head until that backend caught up. `spent`: the empty poll's own time,
        taken off the wait, so polls start every poll_interval (a poll that takes the round trip, 5-50 ms to a
        remote node, is followed at once by the next: the node is asked every max(interval, RTT), not every
        interval + RTT, and a block waits half as long to be seen at 30 ms RTT)."""
        wait = max(0.0, self.poll_interval - spent)
        observed = self.observer.head if self.observer is not None else None
        if observed is not None and observed <= self.tracker.block and self.sleep is time.sleep:
            self.observer.wait_for_head(self.tracker.block, wait)
        elif wait > 0:
            self.sleep(wait)

    def warm_up(self) -> None:
        """What the first blocks would otherwise pay on their path, paid now: the engine's compiled pass loaded
        (risk/fused.py `warm`: 0.6 s in the middle of a block otherwise) and the projection's loop."""
        try:
            state = self.tracker.market_state()
            book = self.tracker.book(state)
            warm(book, state, self.params.fused_threads)
            warm_projection(book, state, self.params.fused_threads)
        except Exception as error:  # an optimisation only: the node away, its state of that block gone (a node
            # keeping few old states answers BlockOutOfRange for the block before its head): the first block pays
            log.debug("warm-up skipped (%s: %s): the first block pays it", type(error).__name__, error)

    def run(self, max_blocks: int | None = None, deadline: float | None = None) -> WatchStats:
        """Follow the chain until stopped, `max_blocks` processed, or `deadline` (monotonic) passed."""
        self.warm_up()
        self.start_observer()
        try:
            return self._run(max_blocks, deadline)
        finally:
            self.stop_observer()

    def _run(self, max_blocks: int | None, deadline: float | None) -> WatchStats:
        backoff = self.poll_interval
        processed = 0
        while not self._stop:
            if deadline is not None and time.monotonic() > deadline:
                break
            if max_blocks is not None and processed >= max_blocks:
                break
            try:
                polled_at = time.monotonic()
                done = self.step()
                if self._node_down:
                    log.warning("node reachable again: following from block %d", self.tracker.block)
                    self._node_down = False
                backoff = self.poll_interval
                processed += done
                if done == 0:
                    self._idle(time.monotonic() - polled_at)
            except (NodeUnavailable, RpcError, OSError) as error:
                if self.metrics is not None:
                    self.metrics.rpc_error("connection" if isinstance(error, NodeUnavailable | OSError) else "rpc")
                if not self._node_down:
                    log.warning("node unreachable (%s): retrying with backoff up to %.0fs", error, self.max_backoff)
                    self._node_down = True
                    self.stats.node_outages += 1
                self.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
        self.checkpoint()
        return self.stats


def _observations(tracker: Tracker) -> pl.DataFrame:
    rows = [(asset, ts, float(price)) for asset, window in tracker.prices.items() for ts, price in window]
    return pl.DataFrame(rows, schema={"asset": pl.String, "timestamp": pl.Int64, "price": pl.Float64}, orient="row")


def _grown(flags: np.ndarray, height: int) -> np.ndarray:
    """Row-aligned flags extended to the book's height (users appended since are not flagged)."""
    return flags if flags.size >= height else np.concatenate([flags, np.zeros(height - flags.size, bool)])
