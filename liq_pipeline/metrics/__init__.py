"""Prometheus metrics: the watcher's registry (`BlockMetrics`), its HTTP server, and the KPI exporter.

- `registry.BlockMetrics`: every metric the watcher exports, fed once per block by `observe(...)`;
- `server.serve_metrics(registry, port)`: /metrics on 127.0.0.1 in a background thread (port 0 = a free one);
- `exporter.run_exporter(settings, port)`: the long-lived process serving the KPIs that Dagster runs write to Redis
  (`python -m liq_pipeline.metrics.exporter`).
Prometheus config, alert rules and their tests: ops/prometheus/; Grafana dashboard: ops/grafana/; runbook:
docs/operations.md.
"""

from __future__ import annotations

from typing import Any

from .registry import HF_BUCKETS, LATENCY_BUCKETS, BlockMetrics, HfDistribution, exposed_names
from .server import MetricsServer, serve_metrics

_EXPORTER_NAMES = ("KpiCollector", "exporter_registry", "run_exporter")


def __getattr__(name: str) -> Any:
    # The exporter is imported on first use only: `python -m liq_pipeline.metrics.exporter` must not find it
    # already imported by its package (runpy warns), and the watcher does not need it.
    if name in _EXPORTER_NAMES:
        from . import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "HF_BUCKETS",
    "LATENCY_BUCKETS",
    "BlockMetrics",
    "HfDistribution",
    "KpiCollector",
    "MetricsServer",
    "exporter_registry",
    "exposed_names",
    "run_exporter",
    "serve_metrics",
]
