"""A throwaway PostgreSQL server (`liq bench-backfill`, the deployment tests): Debian's `postgresql` binaries,
a cluster in a temporary folder, listening on 127.0.0.1 at a free port (its unix socket in the same folder),
durability off, stopped and deleted when the block ends.

The binaries are found on PATH or under /usr/lib/postgresql/<version>/bin (where Debian puts them, off PATH).
PostgreSQL refuses to run as root: as root, the cluster belongs to `nobody` and both programs run as that user
(`setpriv`, util-linux). A server of your own is used instead when DAGSTER_PG_HOST is set (`from_environment`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

NOBODY = 65534  # Debian's `nobody` / `nogroup`
SUPERUSER = "postgres"
INSTALL_HINT = "install it with `apt-get install -y postgresql` (Debian/Ubuntu)"
PG_VARIABLES = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD")


class PostgresUnavailable(Exception):
    """No PostgreSQL binaries here, or the server would not start; the message says which and what to do."""


@dataclass
class Postgres:
    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)  # DAGSTER_PG_PASSWORD when the server is the user's own: never shown
    folder: Path | None = None  # the cluster of a server started here
    process: subprocess.Popen | None = None

    def env(self, database: str | None = None) -> dict[str, str]:
        """The variables deploy/production/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": database or self.database,
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
        }

    def connect(self, database: str | None = None):
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database or self.database,
            connect_timeout=5,
        )

    def query(self, sql: str, database: str | None = None) -> list[tuple]:
        """The rows of one SELECT."""
        connection = self.connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall()
        finally:
            connection.close()

    def create_database(self, name: str) -> None:
        connection = self.connect("postgres")
        connection.autocommit = True  # CREATE DATABASE cannot run in a transaction (nor in `with connection`)
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()

    def log(self) -> str:
        path = (self.folder / "postgres.log") if self.folder else None
        return path.read_text(errors="replace") if path and path.exists() else ""


def from_environment() -> Postgres | None:
    """The server DAGSTER_PG_* name, when DAGSTER_PG_HOST is set."""
    if not os.environ.get("DAGSTER_PG_HOST"):
        return None
    env = os.environ
    return Postgres(
        env["DAGSTER_PG_HOST"],
        int(env.get("DAGSTER_PG_PORT") or 5432),
        env.get("DAGSTER_PG_DB") or "dagster",
        env.get("DAGSTER_PG_USERNAME") or SUPERUSER,
        env.get("DAGSTER_PG_PASSWORD", ""),
    )


def find_bin_dir() -> Path | None:
    """The folder holding `initdb` and `postgres`: from PATH (following Debian's /usr/local/bin symlinks), else the
    newest /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version(p.parent.name), reverse=True)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    return None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _as_owner() -> list[str]:
    """The prefix that runs a PostgreSQL program as the cluster's owner: nothing, or `setpriv` to nobody as root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise PostgresUnavailable("running as root and `setpriv` (util-linux) is missing: PostgreSQL refuses root")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def temporary_postgres(
    database: str = "dagster", bin_dir: Path | None = None, timeout: float = 30.0
) -> Iterator[Postgres]:
    """initdb into a fresh temporary folder, start `postgres` on 127.0.0.1, create `database`; stopped (fast
    shutdown) and deleted on exit. PostgresUnavailable when the binaries are missing or it does not start."""
    bin_dir = bin_dir or find_bin_dir()
    if bin_dir is None:
        raise PostgresUnavailable(f"no `initdb`/`postgres` on PATH or under /usr/lib/postgresql/*/bin; {INSTALL_HINT}")
    as_owner = _as_owner()
    # /tmp, not a folder private to this user: nobody must reach it
    folder = Path(tempfile.mkdtemp(prefix="liq-postgres-"))
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir()
    if as_owner:
        for path in (folder, sockets):
            os.chown(path, NOBODY, NOBODY)
    process = None
    try:
        init_argv = [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "--no-sync"]
        init = subprocess.run(
            [*as_owner, *init_argv, "-E", "UTF8", "--locale=C"], capture_output=True, text=True, timeout=120
        )
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed ({init.returncode}): {init.stderr.strip()[-2000:]}")
        port = _free_port()
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(sockets),
            "fsync": "off",  # a throwaway cluster: nothing to keep after a crash
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",  # every Dagster process holds a small pool
        }
        argv = [*as_owner, str(bin_dir / "postgres"), "-D", str(data)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        with open(folder / "postgres.log", "w") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        server = Postgres("127.0.0.1", port, database, SUPERUSER, "unused-trust-auth", folder, process)
        _wait(server, timeout)
        server.create_database(database)
        yield server
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(folder, ignore_errors=True)


def _wait(server: Postgres, timeout: float) -> None:
    import psycopg2

    deadline = time.monotonic() + timeout
    while True:
        if server.process is not None and server.process.poll() is not None:
            raise PostgresUnavailable(f"postgres exited ({server.process.returncode}): {server.log()[-2000:]}")
        try:
            server.connect("postgres").close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise PostgresUnavailable(
                    f"postgres did not accept connections within {timeout} s: {server.log()[-2000:]}"
                ) from None
            time.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    """Fast shutdown (SIGINT: the server ends its sessions), then SIGKILL if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
