"""Alerts: a capped Redis Stream (newest ~10k kept) that alert sensors and the exporter read.

Entry field `data` is msgpack {kind, severity, message, at, **details}; the stream id orders and pages them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .codec import pack, unpack
from .context import MarketCache

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Alert:
    kind: str
    message: str
    severity: str = "warning"
    at: float = 0.0
    details: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None  # the stream id once stored


def append_alert(cache: MarketCache, alert: Alert) -> str:
    if alert.severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {alert.severity!r}")
    body = {
        **alert.details,
        "kind": alert.kind,
        "severity": alert.severity,
        "message": alert.message,
        "at": alert.at or cache.clock(),
    }
    entry_id = cache.client.xadd(
        cache.keys.alerts, {"data": pack(body)}, maxlen=cache.options.alerts_maxlen, approximate=True
    )
    cache.stats.round_trips += 1
    return entry_id.decode()


def read_alerts(cache: MarketCache, after_id: str = "0", count: int = 100) -> list[Alert]:
    """Alerts stored after `after_id` (exclusive), oldest first; pass the last id seen to page forward."""
    entries = cache.client.xrange(cache.keys.alerts, min=f"({after_id}" if after_id != "0" else "-", count=count)
    out = []
    for entry_id, fields in entries:
        body = unpack(fields[b"data"])
        kind, severity, message, at = (body.pop(k) for k in ("kind", "severity", "message", "at"))
        out.append(Alert(kind, message, severity, float(at), body, entry_id.decode()))
    return out
