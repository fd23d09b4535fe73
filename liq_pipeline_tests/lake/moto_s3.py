"""A real S3 API for tests: `moto_server` (moto[server]) started as a subprocess on 127.0.0.1, on a free port.

    from liq_pipeline_tests.lake import moto_s3 as fixtures
    moto_s3, s3_env = fixtures.moto_s3, fixtures.s3_env  # in a test module: its fixtures

`moto_s3` (session): the running server, one bucket created in it, stopped at teardown. `s3_env` (per test): the
AWS variables pointing at it, and a fresh `s3://bucket/<test>-<random>` URL, so tests never see each other's
objects. moto checks no signature: any key pair is accepted.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BUCKET = "liq-lake-tests"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


@dataclass(frozen=True)
class MotoS3:
    endpoint: str
    bucket: str
    process: subprocess.Popen

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, **CREDENTIALS}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


ATOMIC_SERVER = Path(__file__).with_name("moto_server_atomic.py")


def start_moto(log: Path, timeout: float = 30.0) -> MotoS3:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            # moto's server with its conditional writes atomic, as S3's are (the script says why)
            [sys.executable, str(ATOMIC_SERVER), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        )
    deadline = time.monotonic() + timeout
    while not _answers(f"{endpoint}/moto-api/"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"moto_server did not start on {endpoint}: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    request = urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT")  # path-style CreateBucket
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200
    return MotoS3(endpoint, BUCKET, process)


def stop_moto(server: MotoS3) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    server = start_moto(tmp_path_factory.mktemp("moto") / "moto_server.log")
    try:
        yield server
    finally:
        stop_moto(server)


@pytest.fixture
def s3_env(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """The AWS variables set for the moto server; returns a lake URL of this test's own."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in moto_s3.env().items():
        monkeypatch.setenv(name, value)
    name = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    return f"s3://{moto_s3.bucket}/{name}-{uuid.uuid4().hex[:8]}"
