"""Running `liq` as a user does (the venv's console script, in a subprocess), and a tiny JSON-RPC node to point it
at when a test needs a node that misbehaves (answers errors, echoes a key, is of another chain)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

LIQ = str(Path(sys.executable).parent / "liq")

T = TypeVar("T")


def liq(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 120, **settings: str
) -> subprocess.CompletedProcess[str]:
    return run_captured([LIQ, *args], env={**env, **settings}, cwd=cwd, timeout=timeout)


def liq_at_once(
    argvs: list[list[str]],
    *,
    env: dict[str, str],
    cwd: Path,
    settings: list[dict[str, str]] | None = None,
    timeout: float = 120,
) -> list[subprocess.CompletedProcess[str]]:
    """`liq <argv>` for every argv (with `settings[i]` added to `env` for the i-th), all started at once, each in a
    working directory of its own (`cwd`/0, `cwd`/1, ...); results in argv order. For independent commands that
    mostly start Python or wait (retries with backoff): two cores run them in about half the time."""
    with ExitStack() as stack:
        started = []
        for index, argv in enumerate(argvs):
            home = Path(cwd) / str(index)
            home.mkdir(parents=True, exist_ok=True)
            out, err = (stack.enter_context(open(home / name, "w+")) for name in (".stdout", ".stderr"))
            run_env = {**env, **(settings[index] if settings else {})}
            process = stack.enter_context(
                subprocess.Popen([LIQ, *argv], env=run_env, cwd=home, stdout=out, stderr=err, text=True)
            )
            stack.callback(lambda p=process: p.poll() is None and p.kill())  # runs before the Popen's own wait
            started.append((argv, process, out, err))
        results = []
        for argv, process, out, err in started:
            process.wait(timeout=timeout)
            out.seek(0)
            err.seek(0)
            results.append(subprocess.CompletedProcess([LIQ, *argv], process.returncode, out.read(), err.read()))
        return results


def at_once(*calls: Callable[[], T]) -> list[T]:
    """Every call in a thread of its own, all started at once; their results in order (the first one's exception,
    in order, is raised once all have ended). For independent commands (`liq`, `liq_devnet`, ...) with their own
    working directories or environments, which `liq_at_once` does not give."""
    with ThreadPoolExecutor(max_workers=max(len(calls), 1)) as pool:
        futures = [pool.submit(call) for call in calls]
    return [future.result() for future in futures]


def liq_devnet(args: list[str], data_dir: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`liq devnet <args>` for the devnet of `data_dir` (DATA_DIR set to it, RPC_URL unset), output captured."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATA_DIR", "RPC_URL")} | {"DATA_DIR": str(data_dir)}
    return run_captured(
        [sys.executable, "-m", "liq_pipeline.commands.cli", "devnet", *args], env=env, cwd=data_dir, timeout=timeout
    )


def wait_for_line(process: subprocess.Popen, text: str, seen: list[str], timeout: float = 60) -> None:
    """Read `process`'s stderr into `seen` until a line holds `text` (or the timeout, or the end of its output);
    fails with what it saw when no line does."""
    deadline = time.monotonic() + timeout
    while not any(text in line for line in seen) and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
    assert any(text in line for line in seen), "".join(seen)


def run_captured(
    argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run `argv` in a subprocess, its output captured as text."""
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=check)


# Runs the `liq` entry point (the console script's `main`) once per argv in ONE process: many help pages for the
# price of one start-up. Prints a JSON list of [exit code, stdout, stderr].
_MANY = """
import contextlib, io, json, sys
from liq_pipeline.commands.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    sys.argv = ["liq", *argv]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
            code = 0
        except SystemExit as leaving:
            code = leaving.code
    results.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def liq_many(argvs: list[list[str]], env: dict[str, str], cwd: Path) -> list[tuple[list[str], int, str, str]]:
    """(argv, exit code, stdout, stderr) of each argv, run through `liq`'s entry point in one subprocess."""
    ran = run_captured([sys.executable, "-c", _MANY, json.dumps(argvs)], env=env, cwd=cwd, timeout=300, check=True)
    return [(argv, *result) for argv, result in zip(argvs, json.loads(ran.stdout), strict=True)]


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# A node's answer to one JSON-RPC request: ("result", value), ("error", {code, message}), or an HTTP reply
# (status, body) for the whole request.
Answer = Callable[[str, list[Any]], tuple[str, Any]]


def error_for_everything(_method: str, _params: list[Any]) -> tuple[str, Any]:
    return "error", {"code": -32000, "message": "header not found"}


def chain_of(chain_id: int) -> Answer:
    """A node of chain `chain_id` that answers eth_chainId and an error to anything else."""

    def answer(method: str, params: list[Any]) -> tuple[str, Any]:
        if method == "eth_chainId":
            return "result", hex(chain_id)
        return error_for_everything(method, params)

    return answer


class FakeNode:
    """An HTTP JSON-RPC endpoint on 127.0.0.1; `requests` holds the methods asked, `paths` the request paths."""

    def __init__(
        self, answer: Answer = error_for_everything, http: tuple[int, str] | None = None, poll_interval: float = 0.5
    ):
        self.answer, self.http = answer, http
        self.requests: list[str] = []
        self.paths: list[str] = []
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                node.paths.append(self.path)
                if node.http is not None:
                    status, text = node.http
                    self._reply(status, text.encode(), "text/plain")
                    return
                batch = body if isinstance(body, list) else [body]
                out = []
                for entry in batch:
                    node.requests.append(entry["method"])
                    kind, value = node.answer(entry["method"], entry.get("params", []))
                    out.append({"jsonrpc": "2.0", "id": entry["id"], kind: value})
                self._reply(200, json.dumps(out if isinstance(body, list) else out[0]).encode(), "application/json")

            def _reply(self, status: int, data: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        # serve_forever's poll interval: how long `server.shutdown()` may wait for the loop to notice
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True
        )

    def url(self, path: str = "", userinfo: str = "") -> str:
        return f"http://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}{path}"


@contextmanager
def fake_node(answer: Answer = error_for_everything, http: tuple[int, str] | None = None) -> Iterator[FakeNode]:
    node = FakeNode(answer, http)
    node.thread.start()
    try:
        yield node
    finally:
        node.server.shutdown()
        node.server.server_close()


@contextmanager
def fake_nodes(
    count: int, answer: Answer = error_for_everything, http: tuple[int, str] | None = None
) -> Iterator[list[FakeNode]]:
    """`count` fake nodes, each of its own, for commands run at once (`liq_at_once`). They stop together and at
    once: one after another, each `shutdown()` waits up to serve_forever's poll interval (0.5 s by default, here
    0.05 s) for its loop to notice."""
    nodes = [FakeNode(answer, http, poll_interval=0.05) for _ in range(count)]
    for node in nodes:
        node.thread.start()
    try:
        yield nodes
    finally:
        stopping = [threading.Thread(target=node.server.shutdown) for node in nodes]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        for node in nodes:
            node.server.server_close()
