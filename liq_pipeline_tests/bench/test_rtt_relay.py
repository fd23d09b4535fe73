"""The bench's RTT relay: each request held RTT/2 each way, a batch counted as one round trip, counts served."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from liq_pipeline.bench.rtt_relay import RttRelay, spawn_relay
from liq_pipeline.chain.rpc import RpcClient


@pytest.fixture
def node():
    """A JSON-RPC node answering every call with its id, recording when each request arrived."""
    arrivals: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args) -> None:
            pass

        def do_POST(self) -> None:
            arrivals.append(time.monotonic())
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answer = [{"jsonrpc": "2.0", "id": e["id"], "result": hex(e["id"])} for e in body]
            payload = json.dumps(answer if isinstance(body, list) else answer[0]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", arrivals
    server.shutdown()
    server.server_close()


def test_each_request_waits_half_the_rtt_each_way_and_a_batch_is_one_round_trip(node):
    url, arrivals = node
    with RttRelay(url, rtt_ms=60) as relay, RpcClient(relay.url) as rpc:
        rpc.call("eth_blockNumber")  # the connection opened
        sent = time.monotonic()
        answers = rpc.batch([("eth_blockNumber", []), ("eth_chainId", []), ("eth_gasPrice", [])])
        took = time.monotonic() - sent
        assert len(answers) == 3
        assert arrivals[-1] - sent >= 0.030  # the node sees it half an RTT later, as a remote node would
        # back a whole RTT later and before a second one: three requests, one round trip (slack: a busy machine)
        assert 0.060 <= took < 2 * 0.060
        # RpcClient sends batches only, one after the other here
        assert relay.stats() == {"requests": 2, "batches": 2, "most_in_flight": 1, "rtt_ms": 60}
        assert rpc.round_trips == 2  # the client's own count agrees


def test_the_relay_in_its_own_process_answers_and_counts(node):
    url, arrivals = node
    with spawn_relay(url, 20) as relay, RpcClient(relay.url) as rpc:
        for _ in range(3):
            rpc.call("eth_blockNumber")
        assert relay.stats()["requests"] == 3 == len(arrivals)
    assert relay.process.poll() is not None  # stopped with the block
