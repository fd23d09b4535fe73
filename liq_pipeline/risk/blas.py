"""BLAS threads for the engine, set by the entry points that run it (never at import time: importing `risk/` must
not change another program's thread pools).

The engine's products are tall and thin (users x ~10 reserves x 3 scenarios): one BLAS thread does them in 0.6 ms
at 100k users, while OpenBLAS's default thread pool took 32 ms on this 2-core machine under load.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def use_one_blas_thread() -> None:
    """Limit every BLAS library loaded in this process to one thread (idempotent)."""
    threadpool_limits(limits=1, user_api="blas")
