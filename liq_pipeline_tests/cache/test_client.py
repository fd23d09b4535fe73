"""Connecting from the settings: REDIS_URL or the embedded server; the password never reaches a log."""

from __future__ import annotations

import logging

import pytest

from liq_pipeline.cache import EmbeddedRedis, client_for_settings, redis_url_for, safe_url
from liq_pipeline.config import load_settings


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@cache.internal:6380/2", "redis://cache.internal:6380"),
        ("rediss://user:s3cret@cache.example.com:6380/0?ssl_cert_reqs=required", "rediss://cache.example.com:6380"),
        ("redis://localhost", "redis://localhost"),
        ("unix:///run/redis/redis.sock?password=s3cret&db=1", "unix:///run/redis/redis.sock"),
        ("unix://user:s3cret@/var/run/r%20x.sock", "unix:///var/run/r x.sock"),
    ],
)
def test_safe_url_drops_credentials_and_options(url, shown):
    assert safe_url(url) == shown
    assert "s3cret" not in safe_url(url)


def test_a_configured_url_is_used_and_its_password_never_logged(clean_env, tmp_path, caplog):
    server = EmbeddedRedis(tmp_path / "redis", transport="tcp")  # a server that needs a password
    try:
        info = server.ensure_running()
        settings = load_settings(redis_url=info.url, data_dir=str(tmp_path / "elsewhere"))
        assert redis_url_for(settings.redis_url, settings.data_dir) == info.url
        with caplog.at_level(logging.DEBUG):
            client = client_for_settings(settings)
            assert client.ping()
        assert f"redis://127.0.0.1:{info.port}" in caplog.text
        assert info.password not in caplog.text
        assert not (tmp_path / "elsewhere").exists()  # no embedded server was started
    finally:
        server.stop()


def test_an_empty_url_starts_the_embedded_server_under_data_dir(clean_env, tmp_path, caplog):
    settings = load_settings(data_dir=str(tmp_path / "data"))
    try:
        with caplog.at_level(logging.INFO):
            client = client_for_settings(settings)
        assert client.ping()
        assert (tmp_path / "data" / "redis" / "server.json").exists()
        assert "(embedded)" in caplog.text
    finally:
        EmbeddedRedis(tmp_path / "data" / "redis").stop()


def test_open_market_cache_follows_the_settings(clean_env, tmp_path):
    from liq_pipeline.cache import open_market_cache

    settings = load_settings(data_dir=str(tmp_path / "d"), redis_max_pipeline="3", redis_enable_pipelining="false")
    try:
        cache = open_market_cache(settings, 8453, "0xA238Dd80C259a72e81d7e4664a9801593F98d1c5", retry_interval=0.5)
        assert (cache.cache.options.max_pipeline, cache.cache.options.pipelining) == (3, False)
        assert cache.retry_interval == 0.5
        assert cache.cache.keys.namespace == "liq:{8453:0xa238dd80c259a72e81d7e4664a9801593f98d1c5}"
        assert cache.set_kpis({"up": 1}) == "written" and cache.get_kpis()["up"].value == 1
    finally:
        EmbeddedRedis(tmp_path / "d" / "redis").stop()
