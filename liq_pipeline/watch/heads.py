"""When each block became available, and whether the node stopped making them: a head poller in its own thread.

The watcher's latency used to start when its loop saw a block. A loop held up elsewhere (a hung Redis write: 12 s
measured with redis-server SIGSTOPed) sees the blocks late and reports each at a few ms, so a stall never showed.
This thread polls the node's head on a connection of its own and stamps the wall time it first saw each block
number; the watcher measures from `min(that stamp, its own seen time)` ("available") to the candidates written.

Why a poller and not another source of the block's time:
- the block timestamp is whole seconds, and on the devnet it is the simulator's chain time (it sets each block's
  timestamp `block_time` after the previous one, whatever the wall clock says), not when the block was mined;
- the simulator's mining wall time exists only in the simulator's process; handing it over through Redis would
  stall with Redis, and anvil keeps no sub-second time of its own (nothing in eth_getBlockByNumber);
- the node's answer to eth_blockNumber is what any watcher on any chain can observe: the block is available to us
  from the first answer that names it. The stamp's error is the poll interval (50 ms by default) plus one round
  trip; while the loop is idle it polls every 20 ms itself, and the earlier of the two times is used.

Stall detection rides on the same thread, so it works while the watcher's loop is stuck in a call to a frozen
node: no new head for `stall_blocks` x the block time (the median interval between new heads seen, 2 s until a
few were seen) -> one warning; the next new head -> one line with the stall's length.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import statistics
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

from ..chain.rpc import NodeUnavailable, RpcClient, RpcError, redact_url

log = logging.getLogger("liq_pipeline.watch")

STAMPS_KEPT = 1_024  # block numbers whose first-seen time is kept (a catch-up longer than this uses its own times)
DEFAULT_BLOCK_TIME = 2.0  # Base's, until the poller has measured the node's
INTERVALS_KEPT = 32


class HeadPoller:
    """`eth_blockNumber` on one kept-alive http.client connection: 0.13-0.21 ms of CPU a poll where RpcClient
    (requests) took 0.83-1.05 ms (anvil, 200 polls, 3 runs each), and a poll holds the GIL the watcher's loop needs.
    Errors are NodeUnavailable (the connection is reopened on the next poll); the URL's secrets never appear in them."""

    BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'

    def __init__(self, url: str, timeout: float = 1.0) -> None:
        parts = urlsplit(url)
        self.label = redact_url(url)
        self._https = parts.scheme.lower() == "https"
        self._host, self._port = parts.hostname or "localhost", parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/json"}
        if parts.username is not None:
            token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        self.timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    def quantity(self, method: str) -> int:
        if method != "eth_blockNumber":
            raise ValueError(f"HeadPoller asks eth_blockNumber only, not {method}")
        try:
            if self._connection is None:
                kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
                self._connection = kind(self._host, self._port, timeout=self.timeout)
            self._connection.request("POST", self._path, self.BODY, self._headers)
            response = self._connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise NodeUnavailable(f"{self.label} answered HTTP {response.status}")
            return int(json.loads(body)["result"], 16)
        except NodeUnavailable:
            self.close()
            raise
        except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as error:
            self.close()  # a timed-out or broken connection is never reused: its answer may still come
            raise NodeUnavailable(f"no head from {self.label} ({type(error).__name__})") from None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class HeadObserver:
    """Polls `eth_blockNumber` every `poll_interval` on its own client; `first_seen(n)` is the wall time the
    observer first saw block n (None: never seen, e.g. before it started); `wait_for_head(above, timeout)` returns
    as soon as the head passes `above`."""

    def __init__(
        self,
        rpc: HeadPoller | RpcClient,
        *,
        poll_interval: float = 0.05,
        stall_blocks: int = 3,
        block_time: float | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_stall: Callable[[float], None] | None = None,
    ) -> None:
        self.rpc = rpc
        self.poll_interval = poll_interval
        self.stall_blocks = stall_blocks
        self._fixed_block_time = block_time
        self.clock = clock
        self.monotonic = monotonic
        self.on_stall = on_stall  # called once per stall (the metrics' counter)
        self.head: int | None = None
        self.stalls = 0
        self.stalled = False
        self._stamps: OrderedDict[int, float] = OrderedDict()
        self._intervals: deque[float] = deque(maxlen=INTERVALS_KEPT)
        self._last_new: float | None = None  # monotonic time of the last new head
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the watcher's side ---------------------------------------------------------------------------------------
    def first_seen(self, number: int) -> float | None:
        with self._changed:
            return self._stamps.get(number)

    def block_time(self) -> float:
        """The node's block time: fixed when given, else the median interval between single new heads seen."""
        if self._fixed_block_time is not None:
            return self._fixed_block_time
        with self._changed:
            intervals = list(self._intervals)
        return statistics.median(intervals) if len(intervals) >= 3 else DEFAULT_BLOCK_TIME

    def wait_for_head(self, above: int, timeout: float) -> bool:
        """True once the observed head is above `above` (at once if it already is), False after `timeout`."""
        with self._changed:
            return self._changed.wait_for(lambda: self.head is not None and self.head > above, timeout)

    def start(self) -> HeadObserver:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="head-observer", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.rpc.close()

    # --- the thread -------------------------------------------------------------------------------------------------
    def poll_once(self) -> None:
        """One poll: stamp new heads, then check for a stall (the thread's body; tests call it directly)."""
        try:
            number = self.rpc.quantity("eth_blockNumber")
        except (NodeUnavailable, RpcError, OSError):
            number = None
        if number is not None:
            self._saw(number, self.clock(), self.monotonic())
        self._check_stall(self.monotonic())

    def _run(self) -> None:
        while not self._stop.is_set():
            began = self.monotonic()
            try:
                self.poll_once()
            except Exception as error:  # never let the observer die silently: the watcher's metric depends on it
                log.debug("head observer: %s", type(error).__name__)
            self._stop.wait(max(0.0, self.poll_interval - (self.monotonic() - began)))

    def _saw(self, number: int, now: float, mono: float) -> None:
        # the answer's arrival time: never earlier than the block existed on the node (a call sent to a frozen node
        # is answered after it resumes, with blocks mined after it resumed)
        with self._changed:
            previous = self.head
            if previous is not None and number <= previous:
                if number < previous:  # a shorter chain (a restarted devnet, a reorg to a lower height): the
                    self.head = number  # heights above it will be new blocks, stamped when they come
                    for block in [b for b in self._stamps if b > number]:
                        del self._stamps[block]
                return
            first = number if previous is None else previous + 1
            for block in range(max(first, number - STAMPS_KEPT + 1), number + 1):
                self._stamps.setdefault(block, now)
            while len(self._stamps) > STAMPS_KEPT:
                self._stamps.popitem(last=False)
            if previous is not None and self._last_new is not None and number == previous + 1 and not self.stalled:
                self._intervals.append(mono - self._last_new)
            self.head = number
            waited = None if self._last_new is None else mono - self._last_new
            self._last_new = mono
            was_stalled, self.stalled = self.stalled, False
            self._changed.notify_all()
        if was_stalled:
            log.warning("node makes blocks again: block %d after %.1fs without a new head", number, waited or 0.0)

    def _check_stall(self, mono: float) -> None:
        if self.stalled or self._last_new is None:
            return
        quiet = mono - self._last_new
        limit = self.stall_blocks * self.block_time()
        if quiet <= limit:
            return
        self.stalled = True
        self.stalls += 1
        log.warning(
            "node %s shows no new head for %.1fs (%d x the %.1fs block time; last block %s): it is stalled, frozen "
            "or unreachable; candidates are as of that block until it moves",
            self.rpc.label,
            quiet,
            self.stall_blocks,
            self.block_time(),
            self.head,
        )
        if self.on_stall is not None:
            self.on_stall(quiet)
