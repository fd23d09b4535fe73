"""The OP-stack GasPriceOracle on the devnet: contracts/DevnetGasPriceOracle.sol installed at the predeploy address.

Base charges every transaction an L1 data fee that the GasPriceOracle predeploy (0x4200...000F) answers; a bare
anvil has nothing there (chain/l1_fee.L1FeeReader then answers 0). `install_l1_oracle` puts the devnet's own
Fjord-formula contract there (anvil_setCode, as devnet/multicall.py does for Multicall3) and its inputs with
anvil_setStorageAt, so installing and re-pricing mine no block. Base-like inputs by default
(chain/l1_fee.BASE_LIKE); `set_l1_fee_params` moves them (an L1 fee spike, for instance).

Not wired into `liq devnet up` yet: call `install_l1_oracle(rpc, data_dir)` right after `install_multicall` where
the devnet is started (devnet/lifecycle.py) and where a saved state is loaded (the code and storage are part of
anvil's dumped state, so a state saved after the install keeps it).
"""

from __future__ import annotations

from pathlib import Path

from ..chain.l1_fee import BASE_LIKE, GAS_PRICE_ORACLE, L1FeeParams
from .errors import DevnetError
from .rpc import Rpc
from .solc import compile_contract

CONTRACT = "DevnetGasPriceOracle"
# Storage slots of DevnetGasPriceOracle.sol's inputs, in declaration order.
SLOT_L1_BASE_FEE, SLOT_BLOB_BASE_FEE, SLOT_BASE_FEE_SCALAR, SLOT_BLOB_BASE_FEE_SCALAR = range(4)
UINT32_MAX = 2**32 - 1


def _word(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def set_l1_fee_params(rpc: Rpc, params: L1FeeParams, address: str = GAS_PRICE_ORACLE) -> None:
    """Write the oracle's inputs (no block mined)."""
    for what, value in (
        ("base_fee_scalar", params.base_fee_scalar),
        ("blob_base_fee_scalar", params.blob_base_fee_scalar),
    ):
        if not 0 <= value <= UINT32_MAX:
            raise ValueError(f"{what} must be a uint32, got {value}")
    for what, value in (("l1_base_fee", params.l1_base_fee), ("blob_base_fee", params.blob_base_fee)):
        if not 0 <= value < 2**128:
            raise ValueError(f"{what} must be a wei amount below 2^128, got {value}")
    slots = (
        (SLOT_L1_BASE_FEE, params.l1_base_fee),
        (SLOT_BLOB_BASE_FEE, params.blob_base_fee),
        (SLOT_BASE_FEE_SCALAR, params.base_fee_scalar),
        (SLOT_BLOB_BASE_FEE_SCALAR, params.blob_base_fee_scalar),
    )
    for slot, value in slots:
        rpc.call("anvil_setStorageAt", address, _word(slot), _word(value))


def install_l1_oracle(
    rpc: Rpc, data_dir: Path | str, params: L1FeeParams = BASE_LIKE, address: str = GAS_PRICE_ORACLE
) -> str:
    """Put the Fjord GasPriceOracle's runtime code at the predeploy address with `params`; returns the address."""
    compiled = compile_contract(CONTRACT, data_dir)
    runtime = rpc.call("eth_call", {"data": compiled.bytecode}, "latest")  # a creation call answers the runtime
    if not runtime or runtime == "0x":
        raise DevnetError(f"compiling {CONTRACT} gave no runtime code: delete <DATA_DIR>/devnet/build and retry")
    rpc.call("anvil_setCode", address, runtime)
    set_l1_fee_params(rpc, params, address)
    return address
