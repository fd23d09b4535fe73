"""A small raw JSON-RPC client: single calls and chunked batches over one keep-alive HTTP session.

Bulk paths (seeding, simulating, ground-truth reads) go through here rather than web3's contract layer: building
each call with web3 costs ~0.9 ms, while precomputed calldata in one batch costs microseconds per entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import requests

from .errors import DevnetError

# anvil refuses request bodies over 2 MB unless started with --no-request-size-limit; other nodes have limits
# too. Chunks stay under both bounds.
MAX_BATCH_ENTRIES = 2_000
MAX_BATCH_BYTES = 1_800_000

Request = tuple[str, Sequence[Any]]


class RpcError(RuntimeError):
    """The node answered with a JSON-RPC error (a revert, a bad parameter)."""

    def __init__(self, method: str, error: dict[str, Any]):
        self.method = method
        self.code = error.get("code")
        self.data = error.get("data")
        super().__init__(f"{method}: {error.get('message', error)}")


class Rpc:
    def __init__(self, url: str, timeout: float = 120.0):
        self.url = url
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers["Content-Type"] = "application/json"
        self._id = 0

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Rpc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, body: bytes) -> Any:
        try:
            response = self._session.post(self.url, data=body, timeout=self.timeout)
        except requests.ConnectionError:
            raise DevnetError(f"no node answers at {self.url}: start one with `liq devnet up`") from None
        if response.status_code != 200:
            raise DevnetError(f"{self.url} answered HTTP {response.status_code}: {response.text[:200]}")
        return response.json()

    def call(self, method: str, *params: Any) -> Any:
        self._id += 1
        payload = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}
        answer = self._post(json.dumps(payload).encode())
        if "error" in answer:
            raise RpcError(method, answer["error"])
        return answer["result"]

    def batch(self, requests_: Iterable[Request], *, raise_on_error: bool = True) -> list[Any]:
        """Results in request order. With raise_on_error=False a failed entry yields its RpcError instead.

        anvil runs the entries of one batch concurrently: never put two transactions that depend on each other
        in one batch unless they come from the same sender with explicit consecutive nonces.
        """
        items = list(requests_)
        results: list[Any] = []
        chunk: list[bytes] = []
        keys: list[tuple[int, str]] = []
        size = 0
        for method, params in items:
            self._id += 1
            entry = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)})
            encoded = entry.encode()
            if chunk and (len(chunk) >= MAX_BATCH_ENTRIES or size + len(encoded) > MAX_BATCH_BYTES):
                results.extend(self._send_chunk(chunk, keys, raise_on_error))
                chunk, keys, size = [], [], 0
            chunk.append(encoded)
            keys.append((self._id, method))
            size += len(encoded) + 1
        if chunk:
            results.extend(self._send_chunk(chunk, keys, raise_on_error))
        return results

    def _send_chunk(self, chunk: list[bytes], keys: list[tuple[int, str]], raise_on_error: bool) -> list[Any]:
        answers = self._post(b"[" + b",".join(chunk) + b"]")
        if isinstance(answers, dict):  # the whole batch was refused (too large, malformed)
            raise RpcError("batch", answers.get("error", answers))
        by_id = {answer["id"]: answer for answer in answers}
        out: list[Any] = []
        for request_id, method in keys:
            answer = by_id[request_id]
            if "error" in answer:
                error = RpcError(method, answer["error"])
                if raise_on_error:
                    raise error
                out.append(error)
            else:
                out.append(answer["result"])
        return out
