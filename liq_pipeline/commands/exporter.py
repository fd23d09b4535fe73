"""`liq exporter`: the KPI exporter (metrics/exporter.py) until SIGINT / SIGTERM."""

from __future__ import annotations

import errno

from ..metrics.exporter import parse_market, run_exporter
from . import runtime


def main(port: int | None, host: str | None, markets: list[str]) -> None:
    try:
        chosen = [parse_market(text) for text in markets]
    except ValueError as error:
        raise runtime.CommandError(f"--market: {error}") from None
    settings = runtime.settings()
    try:
        run_exporter(settings, port, host=host, markets=chosen or None)
    except OSError as error:
        if error.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        where = f"{host or settings.metrics_host}:{settings.exporter_port if port is None else port}"
        raise runtime.CommandError(f"cannot serve /metrics on {where} ({error.strerror}): set EXPORTER_PORT") from None
