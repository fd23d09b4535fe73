"""`liq watch`: the hot path. Every block: touched users re-read, the engine re-run, candidates written to Redis;
/metrics on METRICS_HOST:METRICS_PORT. One log line per block at INFO."""

from __future__ import annotations

import errno
import logging
import signal

from ..config import Settings
from ..metrics import BlockMetrics, serve_metrics
from ..risk.blas import use_one_blas_thread
from ..watch.startup import watcher_from_settings
from ..watch.watcher import BlockRecord, Watcher
from . import runtime

log = logging.getLogger("liq_pipeline.watch")


def report(record: BlockRecord) -> None:
    counts = " ".join(f"{k}={v}" for k, v in sorted(record.candidates.items()))
    log.info(
        "block %d: %d users, %d touched, %.1f ms, candidates %s",
        record.block,
        record.users,
        record.touched,
        record.latency_ms,
        counts,
    )


def main(max_blocks: int, use_redis: bool) -> None:
    settings = runtime.node_settings(runtime.settings())
    runtime.connect(settings).close()  # CHAIN_ID, and a node that answers, before anything starts
    use_one_blas_thread()
    watcher = watcher_from_settings(settings, use_cache=use_redis)
    watcher.on_block = report
    watcher.metrics = BlockMetrics()
    run_with_metrics(watcher, settings, max_blocks)


def run_with_metrics(watcher: Watcher, settings: Settings, max_blocks: int) -> None:
    """The watcher's /metrics served on METRICS_HOST:METRICS_PORT (a port that cannot be had: CommandError), then
    the watcher run until max_blocks (0: no end) or SIGINT/SIGTERM; `liq watch` and `liq execute` both run so."""
    try:
        server = serve_metrics(watcher.metrics.registry, port=settings.metrics_port, host=settings.metrics_host)
    except OSError as error:
        watcher.rpc.close()
        if error.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        where = f"{settings.metrics_host}:{settings.metrics_port}"
        raise runtime.CommandError(f"cannot serve /metrics on {where} ({error.strerror}): set METRICS_PORT") from None
    log.info("metrics on %s", server.url)
    _stop_gracefully(watcher)
    try:
        watcher.run(max_blocks=max_blocks or None)
        watcher.checkpoint()  # after a whole block only: a restart resumes from here (on the same chain)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        watcher.rpc.close()


def _stop_gracefully(watcher: Watcher) -> None:
    """SIGINT or SIGTERM (Ctrl-C, `liq dev` stopping): finish the block in hand, then stop; a second one stops at
    once (KeyboardInterrupt, no snapshot: positions halfway through a block must not be saved)."""

    def force(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    def graceful(_signum: int, _frame: object) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, force)
        watcher.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, graceful)
