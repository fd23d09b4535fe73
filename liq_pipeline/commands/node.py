"""`liq node [--json]`: what the node offers the bot beyond plain JSON-RPC, asked once (issue #15).

- `pending_stream`: what it shows before a block is sealed: `pendingLogs` (Base's Flashblocks), the mempool
  (`newPendingTransactions`), or none (sealed blocks only), over RPC_WS_URL (default: RPC_URL as ws(s)://);
- `pending_tag`: whether it answers the `pending` block tag;
- `send_sync`: `eth_sendRawTransactionSync` (EXECUTION_CHANNEL=auto uses it);
- `simulate_v1`: `eth_simulateV1` (the executor's pending verification; without it, eth_createAccessList one by
  one).
Exit code 0 whatever the node lacks: the answer is the point; a node that does not answer is one line, exit 3.
"""

from __future__ import annotations

import json

from ..chain.pending import probe_pending, ws_url_for
from ..chain.rpc import answers_method
from ..execution.channels import node_has_sync_send
from . import runtime


def main(as_json: bool = False) -> int:
    settings = runtime.node_settings(runtime.settings())
    rpc = runtime.connect(settings, retries=1)
    try:
        explicit = settings.rpc_ws_url.get_secret_value() if settings.rpc_ws_url else None
        pending = probe_pending(rpc, ws_url_for(rpc.url, explicit))
        report = {
            "node": rpc.label,
            "pending_stream": pending.stream,
            "pending_stream_why_not": pending.why_not,
            "ws_url": pending.ws_url,
            "pending_tag": pending.pending_tag,
            "send_sync": node_has_sync_send(rpc),
            # an empty simulation: a node with the method answers a list of blocks
            "simulate_v1": answers_method(rpc, "eth_simulateV1", {"blockStateCalls": [{"calls": []}]}, "latest"),
        }
    finally:
        rpc.close()
    if as_json:
        print(json.dumps(report))
        return 0
    print(f"node {report['node']}")
    print(pending.line())
    print(f"eth_sendRawTransactionSync: {'yes' if report['send_sync'] else 'no'} (EXECUTION_CHANNEL=auto uses it)")
    print(f"eth_simulateV1: {'yes' if report['simulate_v1'] else 'no (eth_createAccessList one by one)'}")
    return 0
