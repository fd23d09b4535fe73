"""What a node shows before a block is sealed (issue #15): price updates seen in its pending stream.

Where a node has one, a price update is visible before the block that holds it is sealed:
- Base's preconfirmation endpoint (Flashblocks): `eth_subscribe("pendingLogs", filter)` streams the logs of each
  Flashblock (~200 ms) as it is built; a feed's `AnswerUpdated` there is final (a sent Flashblock's order is).
- a chain with a public mempool, and the devnet (anvil 1.7): `eth_subscribe("newPendingTransactions", true)` streams
  each transaction as it enters the pool; a feed update is decoded from its call data (the devnet's feeds take
  `setAnswer(int256)`).
A node with neither (most hosted HTTP nodes, a websocket endpoint without them): sealed blocks only.

`probe_pending` asks the node which it has (`liq node` prints it); `PendingPriceStream` follows one on a thread of
its own and hands each update to a callback: the executor's pre-confirmation lane (execution/pending_lane.py).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from eth_utils import keccak
from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from .rpc import RpcClient, RpcError, redact_url

log = logging.getLogger(__name__)

ANSWER_UPDATED = "0x" + keccak(text="AnswerUpdated(int256,uint256,uint256)").hex()
SET_ANSWER = keccak(text="setAnswer(int256)")[:4].hex()  # the devnet's mock feeds (devnet/actions.price_txs)
FLASHBLOCK_LOGS = "pendingLogs"
MEMPOOL = "newPendingTransactions"
PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class PriceUpdate:
    feed: str  # checksummed as the caller gave it
    answer: int  # the feed's new answer (8-decimal USD on Aave's markets)
    seen_at: float  # time.time() when this process read it
    source: str  # FLASHBLOCK_LOGS or MEMPOOL
    tx_hash: str | None = None
    max_priority_fee: int | None = None  # mempool only: the fees a transaction behind it must stay under
    max_fee: int | None = None
    sender: str | None = None  # mempool only: the update's call, to simulate ours behind it
    data: str | None = None


@dataclass(frozen=True)
class PendingCapabilities:
    ws_url: str | None  # redacted
    stream: str | None  # FLASHBLOCK_LOGS, MEMPOOL, or None
    pending_tag: bool  # eth_getBlockByNumber("pending") answers a block
    why_not: str | None = None  # when there is no stream: what the node said

    def line(self) -> str:
        """One line for the start-up log and `liq node`."""
        tag = "answers" if self.pending_tag else "does not answer"
        if self.stream is None:
            where = f" at {self.ws_url}" if self.ws_url else " (no websocket URL)"
            return f"no pending stream{where} ({self.why_not}); the `pending` tag: {tag}: sealed blocks only"
        return f"pending stream: eth_subscribe {self.stream} at {self.ws_url}; the `pending` tag: {tag}"


def ws_url_for(rpc_url: str, explicit: str | None = None) -> str | None:
    """RPC_WS_URL when given, else RPC_URL with a websocket scheme (anvil and most providers serve both on one
    address; a provider that does not needs RPC_WS_URL)."""
    if explicit:
        return explicit
    parts = urlsplit(rpc_url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    return urlunsplit((scheme, *parts[1:])) if scheme else None


class _Subscriber:
    """One websocket connection's JSON-RPC requests and subscription notifications."""

    def __init__(self, url: str, timeout: float):
        self.url, self.timeout = url, timeout
        # websockets 17 wants its connection entered as a context manager (a warning otherwise)
        self._connection = connect(url, open_timeout=timeout, close_timeout=timeout, max_size=2**24)
        self.ws: ClientConnection = self._connection.__enter__()
        self._ids = 0

    def request(self, method: str, params: list) -> object:
        self._ids += 1
        self.ws.send(json.dumps({"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while True:  # notifications of an earlier subscription may come first
            message = json.loads(self.ws.recv(timeout=max(0.0, deadline - time.monotonic())))
            if message.get("id") == self._ids:
                if "error" in message:
                    raise RpcError(method, message["error"])
                return message.get("result")

    def close(self) -> None:
        self._connection.__exit__(None, None, None)


def _subscription_params(kind: str, feeds: list[str]) -> list:
    if kind == FLASHBLOCK_LOGS:
        return [FLASHBLOCK_LOGS, {"address": feeds, "topics": [ANSWER_UPDATED]}]
    return [MEMPOOL, True]


def probe_pending(rpc: RpcClient, ws_url: str | None, timeout: float = PROBE_TIMEOUT_S) -> PendingCapabilities:
    """Which pending stream the node has (Flashblocks' logs first, then the mempool), and whether it answers the
    `pending` tag. Never raises for what the node lacks: that is the answer."""
    try:
        pending_tag = isinstance(rpc.call("eth_getBlockByNumber", "pending", False), dict)
    except Exception:
        pending_tag = False
    label = redact_url(ws_url) if ws_url else None
    if ws_url is None:
        return PendingCapabilities(None, None, pending_tag, "RPC_URL is not http(s) or ws(s)")
    try:
        subscriber = _Subscriber(ws_url, timeout)
    except (OSError, WebSocketException, TimeoutError) as error:
        return PendingCapabilities(label, None, pending_tag, f"no websocket: {type(error).__name__}")
    refused = []
    try:
        for kind in (FLASHBLOCK_LOGS, MEMPOOL):
            try:
                subscription = subscriber.request("eth_subscribe", _subscription_params(kind, []))
            except RpcError as error:
                refused.append(f"{kind}: {str(error).split(': ', 1)[-1][:80]}")
                continue
            subscriber.request("eth_unsubscribe", [subscription])
            return PendingCapabilities(label, kind, pending_tag)
    except (OSError, WebSocketException, TimeoutError, ValueError) as error:
        refused.append(f"{type(error).__name__}")
    finally:
        subscriber.close()
    return PendingCapabilities(label, None, pending_tag, "; ".join(refused) or "no answer")


def _quantity(value: object) -> int | None:
    return int(value, 16) if isinstance(value, str) and value.startswith("0x") else None


class PendingPriceStream:
    """Follows the node's pending stream on a thread and calls `on_update` with each feed update it shows:
    `feeds` maps a feed's address to anything the caller keys it by (its reserve). Reconnects after a drop (one
    warning, one line when it is back); `stop()` ends it."""

    def __init__(
        self,
        ws_url: str,
        kind: str,
        feeds: Mapping[str, object],
        on_update: Callable[[PriceUpdate], None],
        reconnect_s: float = 1.0,
    ):
        if kind not in (FLASHBLOCK_LOGS, MEMPOOL):
            raise ValueError(f"unknown pending stream {kind!r}: expected {FLASHBLOCK_LOGS} or {MEMPOOL}")
        self.ws_url, self.kind, self.on_update, self.reconnect_s = ws_url, kind, on_update, reconnect_s
        self.feeds = {address.lower(): address for address in feeds}
        self.seen = 0  # updates handed to on_update
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="liq-pending-prices", daemon=True)

    def start(self, wait_s: float = 5.0) -> bool:
        """Starts the thread; True once subscribed (within `wait_s`)."""
        self._thread.start()
        return self._ready.wait(wait_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        down = False
        while not self._stop.is_set():
            try:
                subscriber = _Subscriber(self.ws_url, PROBE_TIMEOUT_S)
            except (OSError, WebSocketException, TimeoutError) as error:
                if not down:
                    log.warning("pending stream %s: cannot connect (%s)", redact_url(self.ws_url), type(error).__name__)
                down = True
                self._stop.wait(self.reconnect_s)
                continue
            try:
                subscriber.request("eth_subscribe", _subscription_params(self.kind, list(self.feeds.values())))
                if down:
                    log.info("pending stream %s: back", redact_url(self.ws_url))
                down = False
                self._ready.set()
                while not self._stop.is_set():
                    try:
                        message = json.loads(subscriber.ws.recv(timeout=0.2))
                    except TimeoutError:
                        continue
                    self._handle(message.get("params", {}).get("result"))
            except (OSError, WebSocketException, RpcError, ValueError) as error:
                if not down:
                    log.warning("pending stream %s: lost (%s)", redact_url(self.ws_url), type(error).__name__)
                down = True
                self._stop.wait(self.reconnect_s)
            finally:
                subscriber.close()

    def _handle(self, item: object) -> None:
        now = time.time()
        update = None
        if self.kind == MEMPOOL and isinstance(item, dict):
            update = self._from_transaction(item, now)
        elif self.kind == FLASHBLOCK_LOGS and isinstance(item, dict):
            update = self._from_log(item, now)
        if update is not None:
            self.seen += 1
            self.on_update(update)

    def _from_transaction(self, tx: dict, now: float) -> PriceUpdate | None:
        feed = self.feeds.get(str(tx.get("to") or "").lower())
        data = str(tx.get("input") or tx.get("data") or "")
        if feed is None or data[2:10] != SET_ANSWER or len(data) < 74:
            return None
        answer = int.from_bytes(bytes.fromhex(data[10:74]), "big", signed=True)
        priority, max_fee = (_quantity(tx.get(k)) for k in ("maxPriorityFeePerGas", "maxFeePerGas"))
        if max_fee is None:  # a legacy transaction: one price for both
            priority = max_fee = _quantity(tx.get("gasPrice"))
        return PriceUpdate(feed, answer, now, MEMPOOL, tx.get("hash"), priority, max_fee, tx.get("from"), data)

    def _from_log(self, entry: dict, now: float) -> PriceUpdate | None:
        feed = self.feeds.get(str(entry.get("address") or "").lower())
        topics = entry.get("topics") or []
        if feed is None or len(topics) < 2 or str(topics[0]).lower() != ANSWER_UPDATED:
            return None
        answer = int.from_bytes(bytes.fromhex(topics[1][2:]), "big", signed=True)
        return PriceUpdate(feed, answer, now, FLASHBLOCK_LOGS, entry.get("transactionHash"))
