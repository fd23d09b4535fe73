"""devnet.l1_oracle: the Fjord GasPriceOracle installed on anvil answers exactly what chain/l1_fee.py computes."""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Iterator

import pytest
from eth_abi import decode, encode
from eth_utils import keccak

from liq_pipeline.chain.l1_fee import (
    BASE_LIKE,
    GAS_PRICE_ORACLE,
    L1FeeReader,
    flz_compress_len,
    l1_fee,
    l1_fee_upper_bound,
)
from liq_pipeline.devnet import anvil
from liq_pipeline.devnet.l1_oracle import install_l1_oracle, set_l1_fee_params
from liq_pipeline.devnet.rpc import Rpc
from liq_pipeline.execution.calldata import compact_calldata, standard_calldata

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bare_anvil() -> Iterator[Rpc]:
    node = anvil.start()
    rpc = Rpc(node.url)
    try:
        yield rpc
    finally:
        rpc.close()
        anvil.stop(node)


def _call(rpc: Rpc, signature: str, types: list[str], args: list) -> int:
    data = keccak(text=signature)[:4] + encode(types, args)
    answer = rpc.call("eth_call", {"to": GAS_PRICE_ORACLE, "data": "0x" + data.hex(), "gas": hex(25_000_000)}, "latest")
    return decode(["uint256"], bytes.fromhex(answer[2:]))[0]


def _payloads() -> list[bytes]:
    rng = random.Random(2024)
    user = "0x" + "5e" * 20
    out = [
        b"",
        b"\x01",
        bytes(12),
        bytes(13),
        bytes(14),
        bytes(1_000),
        b"abc" * 400,
        compact_calldata(0, 1, user, 2**256 - 1),
        compact_calldata(3, 2, user, 1_234_567_890),
        standard_calldata("0x" + "11" * 20, "0x" + "22" * 20, user, 10**21),
    ]
    for size in (20, 50, 100, 200, 300, 700, 2_000):
        out.append(rng.randbytes(size))
        # Realistic transactions: words with zero padding and repeats.
        words = [bytes(32), rng.randbytes(32), bytes(12) + rng.randbytes(20), (7).to_bytes(32, "big")]
        out.append(b"".join(rng.choice(words) for _ in range(size // 32)) + rng.randbytes(4))
    return out


def test_get_l1_fee_equals_the_python_formula_exactly(bare_anvil, devnet_data_dir, caplog):
    reader = L1FeeReader(bare_anvil)
    with caplog.at_level(logging.INFO, logger="liq_pipeline.chain.l1_fee"):
        assert reader.l1_fee(b"\x01\x02") == 0 and reader.l1_fee(b"\x03") == 0  # no predeploy yet: 0, noted once
    assert reader.absent and sum("no GasPriceOracle" in r.getMessage() for r in caplog.records) == 1

    assert install_l1_oracle(bare_anvil, devnet_data_dir) == GAS_PRICE_ORACLE
    for data in _payloads():
        ours = l1_fee(data, BASE_LIKE)
        assert _call(bare_anvil, "getL1Fee(bytes)", ["bytes"], [data]) == ours, len(data)
        assert _call(bare_anvil, "flzCompressLen(bytes)", ["bytes"], [data]) == flz_compress_len(data), len(data)
        assert L1FeeReader(bare_anvil).l1_fee(data) == ours
    for size in (0, 1, 68, 100, 200, 1_000):
        assert _call(bare_anvil, "getL1FeeUpperBound(uint256)", ["uint256"], [size]) == l1_fee_upper_bound(
            size, BASE_LIKE
        )
        assert L1FeeReader(bare_anvil).l1_fee_upper_bound(size) == l1_fee_upper_bound(size, BASE_LIKE)


def test_parameters_are_settable_without_a_block(bare_anvil, devnet_data_dir):
    install_l1_oracle(bare_anvil, devnet_data_dir)
    head = bare_anvil.call("eth_blockNumber")
    spike = dataclasses.replace(BASE_LIKE, l1_base_fee=80 * 10**9, blob_base_fee=5 * 10**9)
    set_l1_fee_params(bare_anvil, spike)
    assert bare_anvil.call("eth_blockNumber") == head
    data = compact_calldata(0, 1, "0x" + "5e" * 20, 10**9)
    assert _call(bare_anvil, "getL1Fee(bytes)", ["bytes"], [data]) == l1_fee(data, spike) > l1_fee(data, BASE_LIKE)
    for getter, value in (
        ("l1BaseFee()", spike.l1_base_fee),
        ("blobBaseFee()", spike.blob_base_fee),
        ("baseFeeScalar()", spike.base_fee_scalar),
        ("blobBaseFeeScalar()", spike.blob_base_fee_scalar),
    ):
        assert _call(bare_anvil, getter, [], []) == value
    with pytest.raises(ValueError, match="uint32"):
        set_l1_fee_params(bare_anvil, dataclasses.replace(spike, base_fee_scalar=2**32))
