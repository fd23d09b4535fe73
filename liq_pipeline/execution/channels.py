"""How a signed transaction reaches the sequencer: one interface, a method of the node behind each (issue #15).

- `RawChannel`: `eth_sendRawTransaction`, on every node; a block's transactions in one batch request.
- `SyncChannel`: `eth_sendRawTransactionSync` (EIP-7966), which answers with the transaction's receipt once it is
  included (on Base within its Flashblock, ~200 ms; anvil 1.7 answers when the block is mined, after 30 s at most).
  The executor cannot wait for inclusion on its hot path, so each transaction goes out on a thread of the channel's;
  `send_many` waits at most `accept_wait_s` for a refusal (the node validates a transaction before it waits:
  measured 1.2 ms median, 3.3 ms max, on anvil for "already known"), then counts the rest as accepted. They are
  followed by hash as on the raw channel; a receipt that came back with its answer is kept for the executor's next
  `follow()`, which then asks the node for no receipt of it.
- An auction channel (Chainlink SVR via Atlas) cannot be tested here end to end: not built (docs/operations.md).

`EXECUTION_CHANNEL`: `raw` (the default), `sync`, or `auto` (sync where the node has the method, `channel_kind`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ALL_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Protocol

from eth_utils import keccak

from ..chain.rpc import NodeUnavailable, RpcClient, RpcError, answers_method

log = logging.getLogger(__name__)

SYNC_METHOD = "eth_sendRawTransactionSync"
SYNC_TIMEOUT_S = 60.0  # a sync send's HTTP wait: the node's own inclusion timeout (anvil: 30 s) and some
SYNC_THREADS = 16  # sends waiting for inclusion at once (EXECUTION_MAX_PER_BLOCK is 16 by default)
RECEIPTS_KEPT = 4_096  # receipts nobody asked for (a transaction followed no more) are dropped past this


class SubmissionChannel(Protocol):
    name: str

    def send_many(self, raws: Sequence[bytes]) -> list[RpcError | None]:
        """Per transaction, in order: None (the node took it) or the node's refusal. Raises when the node did not
        answer at all (the caller follows every one by hash: it may have them)."""
        ...

    def send(self, raw: bytes) -> None:
        """One transaction; raises RpcError when refused, another exception when there was no answer."""
        ...

    def take_receipts(self, hashes: Sequence[str]) -> dict[str, dict]:
        """The receipts among `hashes` that came back with their send (removed from the channel)."""
        ...

    def close(self) -> None: ...


def tx_hash(raw: bytes) -> str:
    """The hash of a signed (typed) transaction: keccak of its bytes."""
    return "0x" + keccak(raw).hex()


class RawChannel:
    """`eth_sendRawTransaction` through `client` (a client that never retries a send: a retry after an answer lost
    on the way back is refused, "already known", though the first one is in the pool)."""

    name = "raw"

    def __init__(self, client: RpcClient):
        self.client = client

    def send_many(self, raws: Sequence[bytes]) -> list[RpcError | None]:
        requests = [("eth_sendRawTransaction", ["0x" + raw.hex()]) for raw in raws]
        answers = self.client.batch(requests, raise_on_error=False)
        return [answer if isinstance(answer, RpcError) else None for answer in answers]

    def send(self, raw: bytes) -> None:
        self.client.call("eth_sendRawTransaction", "0x" + raw.hex())

    def take_receipts(self, hashes: Sequence[str]) -> dict[str, dict]:
        return {}

    def close(self) -> None:
        return


class SyncChannel:
    """`eth_sendRawTransactionSync` on threads of its own (module docstring): `send_many` returns after the node
    refused each transaction or `accept_wait_s` passed, whichever is first."""

    name = "sync"

    def __init__(self, url: str, accept_wait_s: float = 0.05, timeout_s: float = SYNC_TIMEOUT_S):
        self.url, self.accept_wait_s, self.timeout_s = url, accept_wait_s, timeout_s
        self._pool = ThreadPoolExecutor(max_workers=SYNC_THREADS, thread_name_prefix="liq-send-sync")
        self._local = threading.local()  # one HTTP client per thread: a requests session is not shared
        self._lock = threading.Lock()
        self._receipts: dict[str, dict] = {}
        self._clients: list[RpcClient] = []
        self.pushed = 0  # receipts that came back with their send

    def _client(self) -> RpcClient:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = RpcClient(self.url, timeout=self.timeout_s, retries=0)
            with self._lock:
                self._clients.append(client)
        return client

    def _send_one(self, raw: bytes) -> dict | None:
        receipt = self._client().call(SYNC_METHOD, "0x" + raw.hex())
        if isinstance(receipt, dict):
            with self._lock:
                self._receipts[tx_hash(raw)] = receipt
                self.pushed += 1
                while len(self._receipts) > RECEIPTS_KEPT:
                    self._receipts.pop(next(iter(self._receipts)))
        return receipt

    def _late(self, future: Future) -> None:
        error = future.exception()
        if error is not None:  # a refusal after the wait, the node's inclusion timeout, the connection lost
            log.debug("a sync send answered with an error after the accept wait: %s", error)

    def send_many(self, raws: Sequence[bytes]) -> list[RpcError | None]:
        futures = [self._pool.submit(self._send_one, raw) for raw in raws]
        wait(futures, timeout=self.accept_wait_s, return_when=ALL_COMPLETED)  # accepted ones: the whole wait
        out: list[RpcError | None] = []
        unanswered = 0
        for future in futures:
            if not future.done():
                future.add_done_callback(self._late)
                out.append(None)
                continue
            error = future.exception()
            if isinstance(error, RpcError):
                out.append(error)
            elif error is not None:  # no answer (connection refused, reset): the node may have it
                unanswered += 1
                out.append(None)
            else:
                out.append(None)
        if unanswered == len(futures) and futures:
            raise NodeUnavailable(f"{SYNC_METHOD}: no answer from the node")
        return out

    def send(self, raw: bytes) -> None:
        answer = self.send_many([raw])[0]
        if answer is not None:
            raise answer

    def take_receipts(self, hashes: Sequence[str]) -> dict[str, dict]:
        with self._lock:
            return {h: self._receipts.pop(h) for h in hashes if h in self._receipts}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()


def node_has_sync_send(rpc: RpcClient) -> bool:
    """Whether the node answers `eth_sendRawTransactionSync`: asked with an empty transaction, which a node with the
    method refuses as bad data (anvil: -32602 "Empty transaction data") and one without as an unknown method."""
    return answers_method(rpc, SYNC_METHOD, "0x")


def channel_kind(setting: str, rpc: RpcClient) -> str:
    """`raw` or `sync`: what EXECUTION_CHANNEL asks of this node (`auto`: sync where the node has the method; said
    once). ValueError, naming the setting and the node, for `sync` on a node without it."""
    if setting == "raw":
        return "raw"
    has_sync = node_has_sync_send(rpc)
    if setting == "sync" and not has_sync:
        raise ValueError(f"EXECUTION_CHANNEL=sync: the node at {rpc.label} has no {SYNC_METHOD}; use raw or auto")
    if has_sync:
        log.info("sending with %s (receipts come back with the send)", SYNC_METHOD)
        return "sync"
    log.info("the node has no %s: sending with eth_sendRawTransaction", SYNC_METHOD)
    return "raw"
