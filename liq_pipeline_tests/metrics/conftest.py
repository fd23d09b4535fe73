"""Shared pieces of the metrics tests: the Prometheus binaries, a real Redis, HTTP scraping.

`prometheus` and `promtool` come from the Debian/Ubuntu package (`apt-get install -y prometheus`, 2.x). Without
them the tests that need them are skipped with a reason starting with "PROMETHEUS NOT INSTALLED" (shown by -ra in
the summary), except where CI is set (CI=true, or LIQ_REQUIRE_PROMETHEUS=1): there a missing binary FAILS, so a CI
machine without Prometheus can never pass these tests silently.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from liq_pipeline.cache import EmbeddedRedis
from liq_pipeline.cache.server import ServerInfo

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
INSTALL_HINT = "install it with `apt-get install -y prometheus` (Debian/Ubuntu, ships prometheus 2.x and promtool)"


def _required() -> bool:
    flags = (os.environ.get("CI", ""), os.environ.get("LIQ_REQUIRE_PROMETHEUS", ""))
    return any(flag.strip().lower() in ("1", "true", "yes") for flag in flags)


def require_binary(name: str) -> str:
    """Path of `name`, or skip (locally) / fail (CI) with a message that cannot be missed."""
    path = shutil.which(name)
    if path is None:
        message = f"PROMETHEUS NOT INSTALLED: `{name}` is not on PATH, so this test did NOT run; {INSTALL_HINT}"
        if _required():
            pytest.fail(message + " (CI / LIQ_REQUIRE_PROMETHEUS is set: missing is an error)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_binary("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return require_binary("prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedRedis, ServerInfo]]:
    """A real redis-server of the test's own (short path: unix sockets allow ~100 bytes), stopped at the end."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("r") / "redis")
    info = server.ensure_running()
    try:
        yield server, info
    finally:
        server.stop()


def scrape(url: str, *, openmetrics: bool = False, timeout: float = 5.0) -> dict[str, dict]:
    """GET a /metrics URL and parse it: {family name: {"type": ..., "samples": [(name, labels, value), ...]}}."""
    headers = {"Accept": "application/openmetrics-text; version=1.0.0"} if openmetrics else {}
    response = requests.get(url, timeout=timeout, headers=headers)
    response.raise_for_status()
    if openmetrics:
        from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om

        families = parse_om(response.text)
    else:
        families = text_string_to_metric_families(response.text)
    return {
        f.name: {"type": f.type, "samples": [(s.name, dict(s.labels), s.value) for s in f.samples]} for f in families
    }


def sample_value(families: dict[str, dict], metric: str, /, **labels: str) -> float | None:
    """The value of the first sample `metric` whose labels include `labels`, or None."""
    for family in families.values():
        for sample_name, sample_labels, value in family["samples"]:
            if sample_name == metric and all(sample_labels.get(k) == v for k, v in labels.items()):
                return value
    return None


# --- PromQL: which metric names an expression reads -------------------------------------------------------------------
PROMQL_KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf",
    "nan", "atan2", "start", "end",
}  # fmt: skip
BUILTIN_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}  # written by Prometheus itself


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (Grafana's $variables allowed): selectors, not functions, aggregations,
    keywords, label names (in braces and by/without/on/ignoring lists), strings or durations."""
    import re

    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)  # string literals
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables ($__rate_interval, ${DS_...})
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        name = match[0]
        rest = text[match.end() :].lstrip()
        if name.lower() in PROMQL_KEYWORDS or rest.startswith("("):
            continue
        names.add(name)
    return names


def known_series() -> set[str]:
    """Every series name liq-pipeline exports: the watcher's registry, the exporter's collector, Prometheus' own."""
    from liq_pipeline.metrics import BlockMetrics, KpiCollector, exposed_names

    return exposed_names(BlockMetrics().registry, KpiCollector(lambda: None)) | BUILTIN_SERIES
