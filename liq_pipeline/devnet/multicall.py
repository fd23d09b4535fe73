"""Multicall3 on the devnet: a compatible contract (contracts/Multicall3.sol) installed at the canonical address.

Base and most EVM chains have Multicall3 at 0xcA11...CA11; the reader batches position reads through it. A bare
anvil has nothing there, so the devnet installs its own compiled aggregate3 at that address (anvil_setCode, as
foundry's `vm.etch` would): the reader then runs the same path on the devnet as on Base. Installing mines no
block. Blocks before the install have no code there; the reader falls back to plain batches for them.
"""

from __future__ import annotations

from pathlib import Path

from ..chain.multicall import MULTICALL3
from .errors import DevnetError
from .rpc import Rpc
from .solc import compile_contract


def install_multicall(rpc: Rpc, data_dir: Path | str) -> str:
    """Put Multicall3's runtime code at the canonical address; returns the address."""
    compiled = compile_contract("Multicall3", data_dir)
    runtime = rpc.call("eth_call", {"data": compiled.bytecode}, "latest")  # a creation call answers the runtime
    if not runtime or runtime == "0x":
        raise DevnetError("compiling Multicall3 gave no runtime code: delete <DATA_DIR>/devnet/build and retry")
    rpc.call("anvil_setCode", MULTICALL3, runtime)
    return MULTICALL3
