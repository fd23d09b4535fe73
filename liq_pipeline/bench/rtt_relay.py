"""A local JSON-RPC relay that puts the node at a chosen round-trip time, for `liq bench-watch --rtt-ms N`.

A bot on Base talks to a node 5-50 ms away, not to an anvil on the same machine; there the number of sequential
round trips per block sets the latency, and a benchmark against a local anvil cannot show it. The relay accepts
HTTP POSTs (keep-alive, one thread per client connection), holds each request RTT/2 before forwarding it to the
node and the node's answer RTT/2 before returning it: the node sees the request at the time a remote node would
(which matters for a poll racing a block being mined), and the client waits one whole RTT more per request than
direct. A JSON-RPC batch is one HTTP request, so one round trip. Not modelled: TCP/TLS handshakes (the clients
keep their connections alive), bandwidth, jitter.

It counts requests (`GET /stats`, answered at once, not delayed): the benchmark compares the relay's count per
block with the watcher's own (chain/rpc.py `round_trips`). `spawn_relay` runs it in a process of its own, so its
threads do not take the GIL from the watcher being measured (an in-process relay parsing HTTP while the watcher
computes would add its CPU to the watcher's latency); `RttRelay` runs it in threads (tests).

    python -m liq_pipeline.bench.rtt_relay --upstream http://127.0.0.1:8545 --rtt-ms 30   # prints its URL
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0  # HTTP POSTs: round trips
        self.batches = 0  # of which JSON-RPC batches
        self.in_flight = 0  # requests being relayed now
        self.most_in_flight = 0  # at one time: a client's posts sent at once overlap here


class _Server(ThreadingHTTPServer):
    # the listen backlog: socketserver's 5 refused connections when a client opened many at once (a read's posts
    # sent at once, each on a connection of its own: chain/rpc.py), as no node's HTTP server does
    request_queue_size = 128


class RttRelay:
    """The relay on 127.0.0.1 in this process's threads; `url` is where clients send, `stats()` its counts."""

    def __init__(self, upstream_url: str, rtt_ms: float, port: int = 0) -> None:
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.path = parts.path or "/"
        self.rtt_ms = rtt_ms
        self.counts = _Counts()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: one connection per client, as requests.Session keeps
            # the answer's headers and body are two writes: with Nagle on, the body waited for the client's
            # delayed ACK, ~40 ms on every answer (measured: a 30 ms relay answered in 70-110 ms)
            disable_nagle_algorithm = True

            def log_message(self, *_args) -> None:
                pass

            def do_GET(self) -> None:
                self._answer(200, json.dumps(relay.stats()).encode())

            def do_POST(self) -> None:
                arrived = time.monotonic()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                counts = relay.counts
                with counts.lock:
                    counts.requests += 1
                    counts.batches += body[:1] == b"["
                    counts.in_flight += 1
                    counts.most_in_flight = max(counts.most_in_flight, counts.in_flight)
                try:
                    half = relay.rtt_ms / 2000.0
                    _sleep_until(arrived + half)  # the way to the node
                    status, answer = self._forward(body)
                    _sleep_until(time.monotonic() + half)  # the way back
                finally:
                    with counts.lock:
                        counts.in_flight -= 1
                self._answer(status, answer)

            def _forward(self, body: bytes) -> tuple[int, bytes]:
                for attempt in range(2):  # a kept-alive connection the node closed meanwhile: reopened once
                    node = getattr(self, "node", None)
                    if node is None:
                        node = self.node = http.client.HTTPConnection(*relay.upstream, timeout=120)
                    try:
                        node.request("POST", relay.path, body, {"Content-Type": "application/json"})
                        response = node.getresponse()
                        return response.status, response.read()
                    except (OSError, http.client.HTTPException):
                        node.close()
                        self.node = None
                        if attempt:
                            return 502, b'{"error": "relay: node unreachable"}'
                return 502, b""

            def _answer(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = _Server(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="rtt-relay", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stats(self) -> dict:
        with self.counts.lock:
            counts = self.counts
            return {
                "requests": counts.requests,
                "batches": counts.batches,
                "most_in_flight": counts.most_in_flight,
                "rtt_ms": self.rtt_ms,
            }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> RttRelay:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _sleep_until(deadline: float) -> None:
    left = deadline - time.monotonic()
    if left > 0:
        time.sleep(left)


class RelayProcess:
    """A relay running in a child process (spawn_relay): its URL and its counts over HTTP."""

    def __init__(self, process: subprocess.Popen, url: str, rtt_ms: float) -> None:
        self.process, self.url, self.rtt_ms = process, url, rtt_ms

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=5) as answer:
            return json.loads(answer.read())

    def requests(self) -> int:
        return int(self.stats()["requests"])


@contextlib.contextmanager
def spawn_relay(upstream_url: str, rtt_ms: float) -> Iterator[RelayProcess]:
    """A relay to `upstream_url` at `rtt_ms` in a process of its own, stopped when the block ends."""
    command = [sys.executable, "-m", "liq_pipeline.bench.rtt_relay", "--upstream", upstream_url]
    command += ["--rtt-ms", str(rtt_ms)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        url = (process.stdout.readline() if process.stdout else "").strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the RTT relay did not start (exit code {process.poll()})")
        yield RelayProcess(process, url, rtt_ms)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--upstream", required=True, help="the node's URL")
    parser.add_argument("--rtt-ms", type=float, required=True, help="round-trip time added to every request")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free one)")
    options = parser.parse_args(argv)
    relay = RttRelay(options.upstream, options.rtt_ms, options.port)
    print(relay.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        relay.close()


if __name__ == "__main__":
    main()
