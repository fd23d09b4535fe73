"""The JSON-RPC client against a real local HTTP server that misbehaves on purpose."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from liq_pipeline.chain.rpc import NodeUnavailable, RpcClient, RpcError, answered_s, redact_url


class FlakyNode:
    """Fails the first `fail_http` POSTs with HTTP 503 and answers the first `fail_entries` batch entries with a
    transient -32005 error; then echoes each request's method as its result."""

    def __init__(self, fail_http: int = 0, fail_entries: int = 0, garbage: bool = False, hold_s: float = 0.0):
        self.fail_http = fail_http
        self.fail_entries = fail_entries
        self.garbage = garbage
        self.hold_s = hold_s  # each POST held this long before its answer: posts sent at once overlap
        self.posts = 0
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = 0
        node = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with node.lock:
                    node.posts += 1
                    node.in_flight += 1
                    node.most_in_flight = max(node.most_in_flight, node.in_flight)
                time.sleep(node.hold_s)
                with node.lock:
                    node.in_flight -= 1
                if node.fail_http > 0:
                    node.fail_http -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                answers = []
                for entry in body if isinstance(body, list) else [body]:
                    if entry["method"] == "revert":
                        answers.append({"jsonrpc": "2.0", "id": entry["id"], "error": {"code": 3, "message": "no"}})
                    elif node.fail_entries > 0:
                        node.fail_entries -= 1
                        answers.append(
                            {"jsonrpc": "2.0", "id": entry["id"], "error": {"code": -32005, "message": "limit"}}
                        )
                    else:
                        answers.append({"jsonrpc": "2.0", "id": entry["id"], "result": entry["method"]})
                payload = b"<html>oops" if node.garbage else json.dumps(answers).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2/SECRETKEY"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def node_factory():
    nodes = []

    def make(**kwargs):
        node = FlakyNode(**kwargs)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.close()


def _client(url: str, **kwargs) -> RpcClient:
    return RpcClient(url, backoff=0.001, **kwargs)


def test_batches_keep_request_order_across_chunks(node_factory):
    node = node_factory()
    with _client(node.url, max_batch=7) as rpc:
        methods = [f"m{i}" for i in range(50)]
        assert rpc.batch([(m, []) for m in methods]) == methods
    assert node.posts == 8  # ceil(50 / 7)


def test_a_read_batch_over_the_limits_goes_out_as_posts_sent_at_once_one_round_trip(node_factory):
    """Issue #16: a liquidation wave's ~2 MB read went out as two posts one after the other, a third round trip.
    Posts of a batch that only reads are in flight together (the node sees them overlap); the client counts one
    round trip and every request."""
    node = node_factory(hold_s=0.3)  # long enough that posts sent at once cannot miss each other
    methods = ["eth_call", "eth_getLogs", "eth_getBlockByNumber"] * 4
    with _client(node.url, max_batch=3) as rpc:
        assert rpc.batch([(m, []) for m in methods]) == methods  # in request order
        assert (rpc.round_trips, rpc.requests) == (1, 4)
        assert node.most_in_flight == 4
        rpc.batch([("eth_call", [])] * 15)  # five posts: four at once, then one
        assert (rpc.round_trips, rpc.requests, node.posts) == (3, 9, 9)


def test_the_time_waited_for_the_node_counts_posts_sent_at_once_once(node_factory):
    """The executor's node wait (`answered_s`): the posts a client made between two instants, clipped to them,
    overlapping posts counted once, over several clients; the client's own time between posts is not counted."""
    node = node_factory(hold_s=0.2)
    with _client(node.url, max_batch=3) as rpc, _client(node.url) as other:
        began = time.time()
        rpc.batch([("eth_call", [])] * 12)  # four posts at once: one wait of >= 0.2 s
        time.sleep(0.3)  # the client's own work: not the node's
        other.call("eth_blockNumber")
        ended = time.time()
        assert len(rpc.answer_spans) == 4 and len(other.answer_spans) == 1
        waited = answered_s([rpc, other], began, ended)
        assert 0.4 <= waited <= ended - began - 0.3
        assert answered_s([rpc], began, ended) < 0.2 * 4  # the four posts overlapped
        assert answered_s([other], ended, ended + 1) == 0.0
        assert answered_s([object()], began, ended) == 0.0  # a client without spans (a test double) adds nothing


class _Spans:
    def __init__(self, *spans):
        self.answer_spans = list(spans)


@pytest.mark.parametrize(
    ("spans", "since", "until", "expected"),
    [
        ([(0, 2), (1, 3)], 0, 10, 3),  # overlapping: the union
        ([(0, 2), (5, 6)], 0, 10, 3),  # apart: the sum
        ([(0, 2), (5, 6)], 1, 5.5, 1.5),  # clipped at both ends
        ([(0, 10), (2, 3)], 0, 10, 10),  # one inside another
        ([(0, 1)], 1, 2, 0),  # touching the window is not inside it
    ],
)
def test_answered_s_is_the_union_of_the_spans_in_the_window(spans, since, until, expected):
    assert answered_s([_Spans(*spans[:1]), _Spans(*spans[1:])], since, until) == pytest.approx(expected)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork: POSIX only")
def test_a_forked_child_sends_its_posts_at_once_too(node_factory):
    """A client whose pool was made before a fork: the child's copy has no threads, so it makes its own (before,
    work handed to the inherited pool would never have run: the child hung)."""
    node = node_factory()
    with _client(node.url, max_batch=2) as rpc:
        assert rpc.batch([("eth_call", [])] * 4) == ["eth_call"] * 4  # the pool made here
        pid = os.fork()
        if pid == 0:  # the child: exit code 0 only if its batch came back whole
            code = 1
            try:
                signal.alarm(20)
                code = 0 if rpc.batch([("eth_call", [])] * 4) == ["eth_call"] * 4 else 1
            finally:
                os._exit(code)
        _pid, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0


def test_one_post_at_a_time_when_asked(node_factory):
    """RPC_MAX_PARALLEL_POSTS=1, for a provider that refuses bursts: the posts one after the other."""
    node = node_factory(hold_s=0.05)
    with _client(node.url, max_batch=3, max_parallel_posts=1) as rpc:
        assert rpc.batch([("eth_call", [])] * 9) == ["eth_call"] * 9
        assert (rpc.round_trips, rpc.requests, node.most_in_flight) == (3, 3, 1)


def test_a_batch_that_changes_state_keeps_its_posts_in_order(node_factory):
    """eth_sendTransaction's nonces are given in arrival order: its posts go one after the other."""
    node = node_factory(hold_s=0.05)
    methods = ["eth_call", "eth_sendTransaction"] * 3
    with _client(node.url, max_batch=2) as rpc:
        assert rpc.batch([(m, []) for m in methods]) == methods
        assert (rpc.round_trips, rpc.requests, node.most_in_flight) == (3, 3, 1)


def test_a_post_sent_at_once_that_fails_fails_the_batch_after_the_others_are_back(node_factory):
    node = node_factory(fail_http=100, hold_s=0.05)
    with _client(node.url, max_batch=1, retries=1) as rpc, pytest.raises(NodeUnavailable, match="HTTP 503"):
        rpc.batch([("eth_call", [])] * 3)
    assert (rpc.requests, rpc.round_trips) == (6, 2)  # three posts at once, each tried twice
    assert node.in_flight == 0


def test_chunks_are_about_equal_and_within_the_limits():
    rpc = RpcClient("http://127.0.0.1:9", max_batch=7)
    sizes = [len(chunk) for chunk in rpc._chunks([(f"m{i}", []) for i in range(50)], list(range(50)))]
    assert sum(sizes) == 50 and len(sizes) == 8 and max(sizes) - min(sizes) <= 1
    # thirteen ~150 KB aggregates (a wave's read): two posts of ~1 MB, not 1.5 MB + 0.45 MB
    big = [("eth_call", [{"to": "0x" + "11" * 20, "data": "0x" + "ab" * 75_000}, "0x10"])] * 13
    chunks = list(RpcClient("http://127.0.0.1:9")._chunks(big, list(range(13))))
    assert [len(chunk) for chunk in chunks] in ([7, 6], [6, 7])


def test_transient_http_errors_are_retried(node_factory):
    node = node_factory(fail_http=3)
    with _client(node.url) as rpc:
        assert rpc.call("eth_chainId") == "eth_chainId"


def test_transient_entry_errors_are_retried_entry_by_entry(node_factory):
    node = node_factory(fail_entries=2)
    with _client(node.url) as rpc:
        assert rpc.batch([("a", []), ("b", []), ("c", [])]) == ["a", "b", "c"]


def test_a_revert_is_returned_in_place_not_retried(node_factory):
    node = node_factory()
    with _client(node.url) as rpc:
        out = rpc.batch([("a", []), ("revert", []), ("c", [])], raise_on_error=False)
        assert out[0] == "a" and out[2] == "c"
        assert isinstance(out[1], RpcError) and out[1].code == 3
        with pytest.raises(RpcError):
            rpc.batch([("revert", [])])


def test_giving_up_names_the_host_but_never_the_key(node_factory):
    node = node_factory(fail_http=100)
    with _client(node.url, retries=2) as rpc, pytest.raises(NodeUnavailable) as caught:
        rpc.call("eth_chainId")
    assert "127.0.0.1" in str(caught.value)
    assert "SECRETKEY" not in str(caught.value)
    assert node.posts == 3


def test_garbage_answers_are_an_error_not_a_crash(node_factory):
    node = node_factory(garbage=True)
    with _client(node.url, retries=1) as rpc, pytest.raises(NodeUnavailable, match="not JSON"):
        rpc.call("eth_chainId")


def test_nothing_listening():
    with _client("http://127.0.0.1:9/x?key=SECRET", retries=1) as rpc, pytest.raises(NodeUnavailable) as caught:
        rpc.call("eth_chainId")
    assert "SECRET" not in str(caught.value)


def test_redact_url():
    assert redact_url("https://base-mainnet.g.alchemy.com/v2/abc123") == "https://base-mainnet.g.alchemy.com"
    assert redact_url("http://user:pw@127.0.0.1:8545/") == "http://127.0.0.1:8545"
