"""A node that is slow for one block range: an HTTP proxy to the devnet's JSON-RPC that holds every request asking
for the logs of blocks [first, last] (eth_getLogs) until the test releases it; everything else goes straight
through. What a node answering one range slowly (or a run worker starting late) does to a backfill, on demand."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HeldNode:
    def __init__(self, upstream: str, first: int, last: int, timeout: float = 120.0):
        self.upstream, self.first, self.last, self.timeout = upstream, first, last, timeout
        self.seen = threading.Event()  # a request for the range arrived (and is held)
        self.released = threading.Event()
        node = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if node.holds(body):
                    node.seen.set()
                    node.released.wait(node.timeout)
                request = urllib.request.Request(node.upstream, data=body, headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=60) as answer:
                    payload = answer.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def holds(self, body: bytes) -> bool:
        try:
            calls = json.loads(body)
        except ValueError:
            return False
        for call in calls if isinstance(calls, list) else [calls]:
            if not isinstance(call, dict) or call.get("method") != "eth_getLogs" or not call.get("params"):
                continue
            where = call["params"][0]
            low, high = (where.get(k) for k in ("fromBlock", "toBlock"))
            hexes = all(isinstance(v, str) and v.startswith("0x") for v in (low, high))
            if hexes and self.first <= int(low, 16) and int(high, 16) <= self.last:
                return True
        return False

    def release(self) -> None:
        self.released.set()

    def __enter__(self) -> HeldNode:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
