"""The devnet's JSON-RPC client: the project's RpcClient (chunked batches, redacted URLs) with two differences.

- No retries: a local anvil either answers at once or is not running; retrying would only hide that.
- A node that does not answer is a user mistake here (no devnet started): DevnetError, which the CLI prints as
  one line, instead of NodeUnavailable.

Bulk paths (seeding, simulating, ground-truth reads) use raw batches rather than web3's contract layer: building
each call with web3 costs ~0.9 ms, while precomputed calldata in one batch costs microseconds per entry.
"""

from __future__ import annotations

from typing import Any

from ..chain.rpc import NodeUnavailable, Request, RpcClient, RpcError
from .errors import DevnetError

MAX_BATCH_ENTRIES = 2_000  # anvil takes large batches; under its 2 MB body limit with RpcClient's byte cap


class Rpc(RpcClient):
    def __init__(self, url: str, timeout: float = 120.0):
        super().__init__(url, timeout=timeout, retries=0, max_batch=MAX_BATCH_ENTRIES)

    def _post(self, body: bytes) -> Any:
        try:
            return super()._post(body)
        except NodeUnavailable:
            raise DevnetError(f"no node answers at {self.label}: start one with `liq devnet up`") from None


__all__ = ["MAX_BATCH_ENTRIES", "Request", "Rpc", "RpcError"]
