"""`liq redis start|status|stop|url`: the embedded Redis of DATA_DIR (cache/server.py) by hand."""

from __future__ import annotations

from pathlib import Path

from ..cache.server import EmbeddedRedis, ServerInfo
from . import runtime


def _server() -> EmbeddedRedis:
    settings = runtime.settings()
    if settings.redis_url is not None:
        runtime.note("note: REDIS_URL is set, so the commands use that server, not this embedded one")
    return EmbeddedRedis(Path(settings.data_dir) / "redis")


def _where(state: ServerInfo) -> str:
    return f"running: pid {state.pid}, {state.socket or f'127.0.0.1:{state.port}'}"


def start() -> None:
    print(_where(_server().ensure_running()))


def status() -> int:
    """Exit code 0 when it runs, 1 when it does not."""
    state = _server().info()
    print(_where(state) if state else "not running")
    return 0 if state else runtime.EXIT_UNHEALTHY


def stop() -> None:
    print("stopped" if _server().stop() else "was not running")


def url() -> None:
    print(_server().url())  # carries the password in TCP mode: for scripts of the same user
