"""The L1 data fee of an OP-stack transaction (Base): read from the GasPriceOracle predeploy, or computed.

Every OP-stack L2 transaction pays, besides its L2 gas, an L1 data fee for the bytes the batcher posts to L1. The
GasPriceOracle predeploy at 0x420000000000000000000000000000000000000F answers it: `getL1Fee(bytes)` for an
unsigned RLP-encoded transaction, and since Fjord `getL1FeeUpperBound(uint256 unsignedTxSize)`, cheaper and
slightly pessimistic. `L1FeeReader` asks it with one eth_call; on a chain without the predeploy (an empty account
answers `0x`) the fee is 0, said once in the log.

The Fjord formula, for the devnet's stand-in contract (devnet/l1_oracle.py) and for offline estimates, from the
OP-stack / Base specs "Fjord: L2 Execution Engine, L1-Cost fee changes (FastLZ estimator)" and "Fjord:
Predeploys, GasPriceOracle" (https://docs.base.org/base-chain/specs/upgrades/fjord/exec-engine,
https://docs.base.org/base-chain/specs/upgrades/fjord/predeploys):

    l1FeeScaled         = baseFeeScalar * l1BaseFee * 16 + blobBaseFeeScalar * blobBaseFee
    estimatedSizeScaled = max(minTransactionSize * 1e6, intercept + fastlzCoef * fastlzSize)
    l1Fee               = estimatedSizeScaled * l1FeeScaled / 1e12          (unbounded integers, floored)

with intercept = -42,585,600, fastlzCoef = 836,500, minTransactionSize = 100. For `getL1Fee(data)` the fastlzSize
is the FastLZ-compressed length of the unsigned transaction plus 68 (the signature's share); for
`getL1FeeUpperBound(n)` it is txSize + txSize / 255 + 16 with txSize = n + 68 (LZ4's worst-case bound).
FastLZ is level 1 of Ariya Hidayat's fastlz.c, which the spec names; `flz_compress_len` counts the bytes that
compression would write, without writing them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from eth_abi import decode, encode
from eth_utils import keccak

log = logging.getLogger(__name__)

GAS_PRICE_ORACLE = "0x420000000000000000000000000000000000000F"
COST_INTERCEPT = -42_585_600
COST_FASTLZ_COEF = 836_500
MIN_TRANSACTION_SIZE = 100
SIGNATURE_OVERHEAD = 68  # getL1Fee gets an unsigned transaction: 68 bytes stand for the signature
SCALE = 10**6  # the scalars' and the regression's fixed point (GasPriceOracle.DECIMALS = 6)

_HASH_MULTIPLIER = 2_654_435_769  # Knuth's multiplicative hash, 32-bit
_TABLE_SIZE = 8192  # 13-bit hash
_MAX_DISTANCE = 0x1FFF  # level 1 matches reach back at most 8,191 bytes
_MAX_LITERAL_RUN = 32
_MAX_MATCH_CHUNK = 262


@dataclass(frozen=True)
class L1FeeParams:
    """The GasPriceOracle's inputs (the L1Block predeploy's values on a real chain)."""

    l1_base_fee: int  # wei
    blob_base_fee: int  # wei
    base_fee_scalar: int  # uint32, 1e6 fixed point
    blob_base_fee_scalar: int  # uint32, 1e6 fixed point


# Base mainnet-like values (scalars as Base set them after Ecotone/Fjord; fees of a quiet L1).
BASE_LIKE = L1FeeParams(
    l1_base_fee=2 * 10**9, blob_base_fee=10**6, base_fee_scalar=2_269, blob_base_fee_scalar=1_055_762
)


def flz_compress_len(data: bytes) -> int:
    """The length of FastLZ level-1 compression of `data` (what GasPriceOracle's LibZip.flzCompress returns)."""
    n = len(data)
    table = [0] * _TABLE_SIZE
    size = 0

    def u24(i: int) -> int:
        return data[i] | data[i + 1] << 8 | data[i + 2] << 16

    def slot(value: int) -> int:
        return (value * _HASH_MULTIPLIER >> 19) & (_TABLE_SIZE - 1)  # bits 19-31 of the 32-bit product

    def literal_bytes(run: int) -> int:
        full, rest = divmod(run, _MAX_LITERAL_RUN)
        return full * (_MAX_LITERAL_RUN + 1) + (rest + 1 if rest else 0)

    def match_bytes(length: int) -> int:
        chunks, rest = divmod(length - 1, _MAX_MATCH_CHUNK)
        return 3 * chunks + (3 if rest >= 6 else 2)

    limit = n - 13 if n >= 13 else 0
    anchor, ip = 0, 2
    while ip < limit:
        while True:  # the next position whose 3 bytes were seen within reach
            seq = u24(ip)
            h = slot(seq)
            ref = table[h]
            table[h] = ip
            distance = ip - ref
            if ip >= limit:
                break
            ip += 1
            if distance <= _MAX_DISTANCE and seq == u24(ref):
                break
        if ip >= limit:
            break
        ip -= 1
        if ip > anchor:
            size += literal_bytes(ip - anchor)
        # The match length as the reference implementation counts it: one past the first differing byte.
        p, q, end = ref + 3, ip + 3, limit + 9 - (ip + 3)
        length = 0
        while length < end:
            if data[p + length] != data[q + length]:
                end = 0
            length += 1
        size += match_bytes(length)
        ip += length
        for _ in range(2):
            table[slot(u24(ip))] = ip
            ip += 1
        anchor = ip
    return size + literal_bytes(n - anchor)


def fjord_l1_fee(fastlz_size: int, params: L1FeeParams) -> int:
    """The Fjord L1 fee (wei) of a transaction whose FastLZ size (signature included) is `fastlz_size`."""
    fee_scaled = params.base_fee_scalar * params.l1_base_fee * 16 + params.blob_base_fee_scalar * params.blob_base_fee
    estimated = max(MIN_TRANSACTION_SIZE * SCALE, COST_INTERCEPT + COST_FASTLZ_COEF * fastlz_size)
    return estimated * fee_scaled // SCALE**2


def l1_fee(unsigned_tx: bytes, params: L1FeeParams) -> int:
    """GasPriceOracle.getL1Fee(unsigned_tx) after Fjord."""
    return fjord_l1_fee(flz_compress_len(unsigned_tx) + SIGNATURE_OVERHEAD, params)


def l1_fee_upper_bound(unsigned_tx_size: int, params: L1FeeParams) -> int:
    """GasPriceOracle.getL1FeeUpperBound(unsigned_tx_size)."""
    tx_size = unsigned_tx_size + SIGNATURE_OVERHEAD
    return fjord_l1_fee(tx_size + tx_size // 255 + 16, params)


_GET_L1_FEE = keccak(text="getL1Fee(bytes)")[:4]
_GET_L1_FEE_UPPER_BOUND = keccak(text="getL1FeeUpperBound(uint256)")[:4]


class L1FeeReader:
    """The chain's own answer, one eth_call each. `client`: anything with `.call(method, *params)` (chain's
    RpcClient, devnet's Rpc). A chain without the predeploy answers 0 (noted once)."""

    def __init__(self, client: Any, oracle: str = GAS_PRICE_ORACLE):
        self.client = client
        self.oracle = oracle
        self.absent = False
        self._noted = False

    def _ask(self, data: bytes, block: int | str) -> int:
        tag = hex(block) if isinstance(block, int) else block
        answer = self.client.call("eth_call", {"to": self.oracle, "data": "0x" + data.hex()}, tag)
        if not answer or answer == "0x":  # no code there: not an OP-stack chain (or a block before the install)
            self.absent = True
            if not self._noted:
                self._noted = True
                log.info("no GasPriceOracle at %s: L1 data fee counted as 0 on this chain", self.oracle)
            return 0
        return decode(["uint256"], bytes.fromhex(answer.removeprefix("0x")))[0]

    def l1_fee(self, unsigned_tx: bytes, block: int | str = "latest") -> int:
        """getL1Fee(unsigned_tx): the L1 data fee in wei of that transaction."""
        return self._ask(_GET_L1_FEE + encode(["bytes"], [bytes(unsigned_tx)]), block)

    def l1_fee_upper_bound(self, unsigned_tx_size: int, block: int | str = "latest") -> int:
        """getL1FeeUpperBound(size) (Fjord+); reverts (RpcError) on a pre-Fjord oracle."""
        return self._ask(_GET_L1_FEE_UPPER_BOUND + encode(["uint256"], [unsigned_tx_size]), block)
