"""JSON-RPC over HTTP: single calls and chunked batches, retried with backoff on transient faults.

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
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

log = logging.getLogger(__name__)

Request = tuple[str, Sequence[Any]]

# Node limits: anvil refuses bodies over 2 MB by default; hosted nodes cap batch entries (often 100-1000).
MAX_BATCH_ENTRIES = 500
MAX_BATCH_BYTES = 1_500_000
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
    ):
        self.url = url
        self.label = redact_url(url)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_batch = max_batch
        self._sleep = sleep
        # HTTP requests sent, retries included: each is one round trip to the node (a batch is one). The watcher
        # reads it around each block: its loop is one thread, so the difference is the block's sequential round
        # trips (liq bench-watch reports them; issue #16: at 5-50 ms to the node they set the latency)
        self.round_trips = 0
        self._ids = itertools.count(1)
        self._session = requests.Session()
        self._session.headers["Content-Type"] = "application/json"

    def close(self) -> None:
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
            self.round_trips += 1
            try:
                response = self._session.post(self.url, data=body, timeout=self.timeout)
                if response.status_code == 200:
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
            for chunk in self._chunks(items, pending):
                for index, outcome in self._send(items, chunk):
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
        chunk: list[int] = []
        size = 0
        for index in indices:
            method, params = items[index]
            entry = len(json.dumps(params)) + len(method) + 64
            if chunk and (len(chunk) >= self.max_batch or size + entry > MAX_BATCH_BYTES):
                yield chunk
                chunk, size = [], 0
            chunk.append(index)
            size += entry
        if chunk:
            yield chunk

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
