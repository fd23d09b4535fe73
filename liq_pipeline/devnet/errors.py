"""The devnet's one user-facing error type."""

from __future__ import annotations


class DevnetError(RuntimeError):
    """A mistake the user can fix (devnet not running, port busy, node_modules missing).

    The CLI prints the message as one line and exits with code 2; library callers may catch it.
    """
