"""JSON-RPC over HTTP: single calls and chunked batches, retried with backoff on transient faults. A read-only
batch too large for one post goes out as several posts at once (one round trip, not one per post).

Batches work on every node (position reads go through Multicall3 where it exists: chain/multicall.py). A node's
answer that is an error for one entry of a batch is returned as an `RpcError` in that entry's place, so callers
can name the block and address.
The endpoint URL usually carries an API key: only its scheme and host ever appear in messages, and an answer quoted
in a message has the URL's secret pieces cut out (`scrub`).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)

Request = tuple[str, Sequence[Any]]

# Node limits: anvil refuses bodies over 2 MB by default; hosted nodes cap batch entries (often 100-1000).
MAX_BATCH_ENTRIES = 500
MAX_BATCH_BYTES = 1_500_000
# A batch over those limits goes out as several posts, at once when it only reads (READ_METHODS): sent one after
# the other, the 6,122 eth_calls of a 1,031-user liquidation wave (13 aggregate3 calls, ~2 MB) were a third
# sequential round trip (issue #16). Four: a node sees at most four of one client's posts at a time.
MAX_PARALLEL_POSTS = 4
# Methods that change nothing on the node: their posts may arrive in any order. Anything else (eth_sendTransaction
# with nonces a node assigns in arrival order, anvil_* state changes) keeps its posts in order, one after another.
READ_METHODS = frozenset(
    {
        "eth_blockNumber",
        "eth_call",
        "eth_chainId",
        "eth_estimateGas",
        "eth_feeHistory",
        "eth_gasPrice",
        "eth_getBalance",
        "eth_getBlockByHash",
        "eth_getBlockByNumber",
        "eth_getCode",
        "eth_getLogs",
        "eth_getStorageAt",
        "eth_getTransactionByHash",
        "eth_getTransactionCount",
        "eth_getTransactionReceipt",
        "eth_maxPriorityFeePerGas",
        "net_version",
    }
)
# The (began, answered) wall-clock spans of a client's last posts: the executor reads them within its block, where
# it makes ~10 posts (the watcher's read and the polls before it a few more); 256 outlive a block of any size.
ANSWER_SPANS_KEPT = 256
# JSON-RPC error codes that mean "try again later" rather than "your request is wrong".
TRANSIENT_CODES = {-32005, -32603, 429}
TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}


def redact_url(url: str) -> str:
    """scheme://host[:port] only: paths and query strings of hosted RPC URLs carry API keys."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a port that is not a number
        port = ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port}"


def url_secrets(url: str) -> list[str]:
    """The pieces of `url` that may carry a key, longest first, to be cut out of any text that could show them:
    the path with its query (what an HTTP request line shows), the path, the query, the fragment, the password,
    every query value and every key-like path segment (8+ characters with a digit, or 16+), each also
    percent-decoded."""
    parts = urlsplit(url)
    found: set[str] = set()
    if parts.path not in ("", "/"):
        found.add(parts.path)
        if parts.query:
            found.add(f"{parts.path}?{parts.query}")
    for piece in (parts.query, parts.fragment, parts.password):
        if piece:
            found.add(piece)
    for pair in parts.query.split("&"):
        value = pair.partition("=")[2]
        if len(value) >= 4:
            found.add(value)
    for segment in parts.path.split("/"):
        if len(segment) >= 16 or (len(segment) >= 8 and any(c.isdigit() for c in segment)):
            found.add(segment)
    found |= {unquote(piece) for piece in found}
    return sorted((piece for piece in found if len(piece) >= 3), key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """`text` with every secret piece of `url` replaced by ***."""
    for piece in url_secrets(url):
        text = text.replace(piece, "***")
    return text


class RpcError(RuntimeError):
    """The node answered with a JSON-RPC error (a revert, a bad parameter)."""

    def __init__(self, method: str, error: dict[str, Any]):
        self.method = method
        self.code = error.get("code")
        self.data = error.get("data")
        super().__init__(f"{method}: {error.get('message', error)}")


METHOD_NOT_FOUND = -32601  # JSON-RPC: the node has no such method


def answered_s(clients: Iterable[Any], since: float, until: float) -> float:
    """Seconds of [since, until] (wall clock) during which at least one of `clients` waited for an answer it got:
    the node's share of a latency (its work and the way there and back), posts sent at once counted once. Clients
    without spans (not an RpcClient) count nothing."""
    spans = sorted(
        (max(began, since), min(answered, until))
        for client in clients
        for began, answered in list(getattr(client, "answer_spans", ()))
        if answered > since and began < until
    )
    total, reached = 0.0, since
    for began, answered in spans:
        if answered > reached:
            total += answered - max(began, reached)
            reached = answered
    return total


def answers_method(rpc: RpcClient, method: str, *params: Any) -> bool:
    """Whether the node has `method`: asked with `params` (harmless ones: an empty transaction, an empty
    simulation), any answer but "method not found" says it does."""
    try:
        rpc.call(method, *params)
    except RpcError as error:
        return error.code != METHOD_NOT_FOUND
    return True


class NodeUnavailable(RuntimeError):
    """The node could not be reached or kept failing after every retry."""


class RpcClient:
    def __init__(
        self,
        url: str,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.25,
        max_batch: int = MAX_BATCH_ENTRIES,
        sleep: Callable[[float], None] = time.sleep,
        max_parallel_posts: int = MAX_PARALLEL_POSTS,
    ):
        self.url = url
        self.label = redact_url(url)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_batch = max_batch
        self._sleep = sleep
        self.max_parallel_posts = max(1, max_parallel_posts)
        # HTTP requests sent, retries included (what a relay in front of the node counts)
        self.requests = 0
        # Sequential round trips: one per post, but posts sent at once count once (their longest retry chain).
        # The watcher reads it around each block: the difference is the block's sequential round trips (liq
        # bench-watch reports them; issue #16: at 5-50 ms to the node they set the latency)
        self.round_trips = 0
        # when this client waited for the node (`answered_s`): how much of a latency is the node's own time
        self.answer_spans: deque[tuple[float, float]] = deque(maxlen=ANSWER_SPANS_KEPT)
        self._ids = itertools.count(1)
        self._count_lock = threading.Lock()
        self._local = threading.local()  # attempts of the post in progress on this thread
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._session = requests.Session()  # its connection pool hands each thread a connection of its own
        self._session.headers["Content-Type"] = "application/json"
        # a connection kept per post sent at once (requests keeps 10: past that, each wave opened and closed more)
        adapter = HTTPAdapter(pool_maxsize=max(10, self.max_parallel_posts))
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._session.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, body: bytes) -> Any:
        """POST with retries on connection errors, timeouts and transient HTTP statuses."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            problem = ""
            self._local.attempts = getattr(self._local, "attempts", 0) + 1
            with self._count_lock:
                self.requests += 1
            try:
                began = time.time()
                response = self._session.post(self.url, data=body, timeout=self.timeout)
                if response.status_code == 200:
                    self.answer_spans.append((began, time.time()))
                    return response.json()
                problem = f"HTTP {response.status_code}"
                if response.status_code not in TRANSIENT_HTTP:  # a gateway may echo the key: scrubbed, then cut
                    text = scrub(" ".join(response.text.split()), self.url)[:200]  # (cut first, a key's prefix stays)
                    raise NodeUnavailable(f"{self.label} answered {problem}: {text}")
            except (requests.ConnectionError, requests.Timeout) as error:
                problem = type(error).__name__  # never str(error): it holds the full URL
            except requests.JSONDecodeError:
                problem = "an answer that is not JSON"
            except requests.RequestException as error:  # not worth retrying (a bad URL, too many redirects)
                raise NodeUnavailable(f"cannot send a request to {self.label} ({type(error).__name__})") from None
            except ValueError:
                problem = "an answer that is not JSON"
            if attempt < self.retries:
                log.debug("rpc %s: %s, retrying in %.2fs", self.label, problem, delay)
                self._sleep(delay)
                delay *= 2
        raise NodeUnavailable(f"no usable answer from {self.label} after {self.retries + 1} attempts ({problem})")

    def call(self, method: str, *params: Any) -> Any:
        result = self.batch([(method, params)], raise_on_error=False)[0]
        if isinstance(result, RpcError):
            raise result
        return result

    def quantity(self, method: str, *params: Any) -> int:
        """A call whose answer is a hex quantity (eth_blockNumber, eth_chainId); anything else (null, a number, a
        word) is the node's error, raised as RpcError, not a TypeError deep in a caller."""
        answer = self.call(method, *params)
        try:
            return int(answer, 16)
        except (TypeError, ValueError):
            raise RpcError(method, {"message": f"expected a hex quantity, got {str(answer)[:40]!r}"}) from None

    def batch(
        self, requests_: Iterable[Request], *, raise_on_error: bool = True, retry_entries: bool = True
    ) -> list[Any]:
        """Results in request order, in chunks under the node's limits. Entries that fail transiently are retried
        (unless retry_entries=False: a speculative read, e.g. of a block that may not exist yet, takes its errors
        as they come); with raise_on_error=False a failed entry yields its RpcError instead of raising."""
        items = list(requests_)
        results: list[Any] = [None] * len(items)
        pending = list(range(len(items)))
        delay = self.backoff
        for attempt in range(self.retries + 1):
            retry: list[int] = []
            for index, outcome in self._send_all(items, list(self._chunks(items, pending))):
                transient = isinstance(outcome, RpcError) and outcome.code in TRANSIENT_CODES
                if transient and retry_entries and attempt < self.retries:
                    retry.append(index)
                results[index] = outcome
            if not retry:
                break
            self._sleep(delay)
            delay *= 2
            pending = retry
        if raise_on_error:
            for outcome in results:
                if isinstance(outcome, RpcError):
                    raise outcome
        return results

    def _chunks(self, items: list[Request], indices: list[int]) -> Iterable[list[int]]:
        """Chunks under the entry and byte limits; a batch that needs several is cut into as few as the limits
        allow, of about equal size (in entries and in bytes), so that posts sent at once finish together (sent as
        1.5 MB + 0.4 MB, a pair takes as long as its larger part)."""
        sizes = [len(json.dumps(items[index][1])) + len(items[index][0]) + 64 for index in indices]
        total_bytes, total_entries = sum(sizes) or 1, len(indices) or 1
        parts = max(math.ceil(total_entries / self.max_batch), math.ceil(total_bytes / MAX_BATCH_BYTES), 1)
        chunk: list[int] = []
        size = done_bytes = closed = 0
        for done_entries, (index, entry) in enumerate(zip(indices, sizes, strict=True), start=1):
            if chunk and (len(chunk) >= self.max_batch or size + entry > MAX_BATCH_BYTES):  # a limit: close first
                yield chunk
                chunk, size, closed = [], 0, closed + 1
            chunk.append(index)
            size += entry
            done_bytes += entry
            share = max(done_entries / total_entries, done_bytes / total_bytes)  # of the batch, by either measure
            if share * parts >= closed + 1 - 1e-9:  # this chunk's equal share reached: close after it
                yield chunk
                chunk, size, closed = [], 0, closed + 1
        if chunk:
            yield chunk

    def _send_all(self, items: list[Request], chunks: list[list[int]]) -> list[tuple[int, Any]]:
        """Every chunk's outcomes: posts sent at once when the batch only reads, else one after the other."""
        reads_only = all(items[index][0] in READ_METHODS for chunk in chunks for index in chunk)
        width = self.max_parallel_posts if reads_only else 1
        out: list[tuple[int, Any]] = []
        for start in range(0, len(chunks), width):
            wave = chunks[start : start + width]
            pool = self._post_pool() if len(wave) > 1 else None
            futures = [pool.submit(self._counted_send, items, chunk) for chunk in wave[1:]] if pool else []
            sent = [self._counted_send(items, wave[0])]  # on this thread: one post fewer to hand over
            sent += [future.result() for future in futures]
            self.round_trips += max(attempts for _outcome, attempts in sent)  # at once: the longest chain counts
            for outcome, _attempts in sent:
                if isinstance(outcome, BaseException):  # raised once every post of the wave is back
                    raise outcome
                out += outcome
        return out

    def _post_pool(self) -> ThreadPoolExecutor:
        """The threads that send a wave's other posts, made on first use (most clients never split a read)."""
        with self._count_lock:  # two threads sharing the client: one pool
            # a forked child inherits the pool without its threads: work handed to it would never run
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(self.max_parallel_posts - 1, thread_name_prefix="rpc-post")
                self._pool_pid = os.getpid()
            return self._pool

    def _counted_send(self, items: list[Request], chunk: list[int]) -> tuple[Any, int]:
        """The chunk's outcomes (or the error that ended its post) and the attempts its post took."""
        self._local.attempts = 0
        try:
            return self._send(items, chunk), self._local.attempts
        except Exception as error:
            return error, self._local.attempts

    def _send(self, items: list[Request], chunk: list[int]) -> list[tuple[int, Any]]:
        ids = {next(self._ids): index for index in chunk}
        payload = [
            {"jsonrpc": "2.0", "id": rid, "method": items[index][0], "params": list(items[index][1])}
            for rid, index in ids.items()
        ]
        answers = self._post(json.dumps(payload).encode())
        if isinstance(answers, dict):  # some nodes answer a whole failed batch with one error object
            error = answers.get("error", {"message": "malformed batch answer"})
            return [(index, RpcError(items[index][0], error)) for index in chunk]
        out = []
        seen = set()
        for answer in answers:
            index = ids.get(answer.get("id"))
            if index is None:
                continue
            seen.add(index)
            method = items[index][0]
            out.append((index, RpcError(method, answer["error"]) if "error" in answer else answer.get("result")))
        for index in chunk:
            if index not in seen:
                out.append((index, RpcError(items[index][0], {"code": -32603, "message": "no answer in batch"})))
        return out
