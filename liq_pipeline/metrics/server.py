"""Serve a registry over HTTP for Prometheus: `GET /metrics` on 127.0.0.1:<port>, in a background thread.

    server = serve_metrics(metrics.registry, port=9464)      # port 0: a free port, see server.port
    ...
    server.stop()                                             # or `with serve_metrics(...) as server:`

Binds 127.0.0.1 unless told otherwise: the metrics say which borrowers are near liquidation, nothing for the
internet. Paths: `/metrics` (Prometheus text, or OpenMetrics when the scraper asks for it), `/-/healthy` ("OK"),
`/` (a pointer to /metrics); anything else is 404. A collector raising during a scrape answers 500 and the server
keeps serving.
"""

from __future__ import annotations

import logging
import socket
import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow scraper never holds the process open
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics %s - %s", self.address_string(), format % args)


def _app(registry: CollectorRegistry):
    metrics = make_wsgi_app(registry)

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            try:
                return metrics(environ, start_response)
            except Exception as error:  # a broken collector: say so, keep serving
                log.exception("metrics scrape failed")
                body = f"scrape failed: {type(error).__name__}: {error}\n".encode()
                start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
                return [body]
        if path == "/-/healthy":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"OK\n"]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"liq-pipeline metrics: see /metrics\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics\n"]

    return app


class MetricsServer:
    """One HTTP server for one registry. `start()` returns the bound port; `stop()` closes the socket."""

    def __init__(self, registry: CollectorRegistry, port: int = 0, host: str = DEFAULT_HOST) -> None:
        self.registry = registry
        self.host = host
        self.requested_port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the metrics server is not running")
        return self._httpd.server_port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> int:
        if self._httpd is not None:
            return self.port
        server_class = _Server
        if ":" in self.host:  # an IPv6 literal

            class _Server6(_Server):
                address_family = socket.AF_INET6

            server_class = _Server6
        try:
            httpd = make_server(self.host, self.requested_port, _app(self.registry), server_class, _QuietHandler)
        except OSError as error:
            raise OSError(
                error.errno, f"cannot serve metrics on {self.host}:{self.requested_port}: {error.strerror}"
            ) from error
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name=f"metrics-{httpd.server_port}", daemon=True
        )
        self._thread.start()
        log.info("serving metrics on %s", self.url)
        return httpd.server_port

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and release the port (idempotent)."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()  # returns once serve_forever has left its loop (poll_interval 0.1 s)
        httpd.server_close()
        if thread is not None:
            thread.join(timeout)
        self._httpd = self._thread = None

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_metrics(registry: CollectorRegistry, port: int = 0, host: str = DEFAULT_HOST) -> MetricsServer:
    """Start serving `registry` now; the returned server knows its port (`server.port`, useful with port 0)."""
    server = MetricsServer(registry, port, host)
    server.start()
    return server
