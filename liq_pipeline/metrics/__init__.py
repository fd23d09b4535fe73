"""Prometheus metrics: the watcher's registry (`BlockMetrics`), its HTTP server, and the KPI exporter.

- `registry.BlockMetrics`: every metric the watcher exports, fed once per block by `observe(...)`;
- `execution.ExecutionMetrics`: the executor's (attempts by outcome, profit, send latency), `BlockMetrics.execution`;
- `server.serve_metrics(registry, port)`: /metrics on 127.0.0.1 in a background thread (port 0 = a free one);
- `exporter.run_exporter(settings, port)`: the long-lived process serving the KPIs that Dagster runs write to Redis
  (`liq exporter`).
Prometheus config, alert rules and their tests: ops/prometheus/; Grafana dashboard: ops/grafana/; runbook:
docs/operations.md.
"""

from __future__ import annotations

from .execution import SEND_LATENCY_BUCKETS, ExecutionMetrics
from .exporter import KpiCollector, exporter_registry, parse_market, run_exporter
from .registry import HF_BUCKETS, LATENCY_BUCKETS, BlockMetrics, HfDistribution, exposed_names
from .server import MetricsServer, serve_metrics

__all__ = [
    "HF_BUCKETS",
    "LATENCY_BUCKETS",
    "SEND_LATENCY_BUCKETS",
    "BlockMetrics",
    "ExecutionMetrics",
    "HfDistribution",
    "KpiCollector",
    "MetricsServer",
    "exporter_registry",
    "exposed_names",
    "parse_market",
    "run_exporter",
    "serve_metrics",
]
