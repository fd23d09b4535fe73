"""The embedded server: shared by processes, persistent, loopback only, stoppable."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis

from liq_pipeline.cache import EmbeddedRedis, connect
from liq_pipeline.cache.server import EmbeddedRedisError

ATTACH = textwrap.dedent(
    """
    import sys
    from liq_pipeline.cache import EmbeddedRedis, connect
    info = EmbeddedRedis(sys.argv[1]).ensure_running()
    client = connect(info.url)
    print(info.pid, (client.get(sys.argv[2]) or b"-").decode())
    client.set(sys.argv[3], "from the child")
    """
)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", ATTACH, *args], capture_output=True, text=True, timeout=60)


def test_a_second_process_attaches_to_the_running_server(redis_server, client):
    directory = str(Path(redis_server.socket).parent)
    client.set("liq:test:parent", "from the parent")
    result = _run(directory, "liq:test:parent", "liq:test:child")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(redis_server.pid), "from", "the", "parent"]
    assert client.get("liq:test:child") == b"from the child"


def test_processes_starting_at_once_share_one_server(tmp_path):
    directory = str(tmp_path / "redis")
    children = [
        subprocess.Popen([sys.executable, "-c", ATTACH, directory, "k", f"k{i}"], stdout=subprocess.PIPE, text=True)
        for i in range(3)
    ]
    try:
        pids = {child.communicate(timeout=60)[0].split()[0] for child in children}
        assert len(pids) == 1
        assert EmbeddedRedis(directory).info().pid == int(pids.pop())
    finally:
        EmbeddedRedis(directory).stop()


def test_data_survives_a_stop_and_a_start(own_server):
    info = own_server.ensure_running()
    assert info.transport == "unix" and info.port is None
    client = connect(info.url)
    client.set("kept", "yes")
    assert client.config_get("bind")["bind"] == "127.0.0.1"
    assert client.config_get("port")["port"] == "0"  # no TCP listener at all
    assert own_server.stop() is True
    assert own_server.info() is None and not own_server.state_file.exists()
    assert (own_server.directory / "dump.rdb").exists()
    again = own_server.ensure_running()
    assert again.pid != info.pid
    assert connect(again.url).get("kept") == b"yes"
    assert own_server.stop() is True and own_server.stop() is False


def test_state_file_and_socket_are_private(own_server):
    info = own_server.ensure_running()
    assert stat.S_IMODE(own_server.state_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(os.stat(info.socket).st_mode) & 0o077 == 0
    assert json.loads(own_server.state_file.read_text())["url"] == info.url


def test_tcp_mode_is_loopback_with_a_password(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis", transport="tcp")
    try:
        info = server.ensure_running()
        assert info.url.startswith("redis://:") and info.url.endswith(f"@127.0.0.1:{info.port}/0")
        assert connect(info.url).ping()
        with pytest.raises(redis.AuthenticationError):
            connect(f"redis://127.0.0.1:{info.port}/0").set("x", 1)
    finally:
        server.stop()


def test_a_socket_path_too_long_for_the_os_falls_back_to_tcp(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 40) / "redis"
    server = EmbeddedRedis(deep)
    try:
        assert server.ensure_running().transport == "tcp"
    finally:
        server.stop()


def test_a_running_server_that_does_not_answer_is_waited_for_not_replaced(own_server):
    info = own_server.ensure_running()
    os.kill(info.pid, signal.SIGSTOP)  # alive but silent, as while it loads a large dump.rdb
    own_server.start_timeout = 0.3
    try:
        with pytest.raises(EmbeddedRedisError, match=f"pid {info.pid} runs but does not answer"):
            own_server.ensure_running()
    finally:
        os.kill(info.pid, signal.SIGCONT)
    assert own_server.ensure_running().pid == info.pid
