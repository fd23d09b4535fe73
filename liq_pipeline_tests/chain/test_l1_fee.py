"""chain.l1_fee: FastLZ lengths against published vectors, the Fjord formula by hand, and the reader's two cases."""

from __future__ import annotations

import itertools
import logging

import pytest
from eth_abi import decode, encode

from liq_pipeline.chain.l1_fee import (
    BASE_LIKE,
    GAS_PRICE_ORACLE,
    L1FeeParams,
    L1FeeReader,
    fjord_l1_fee,
    flz_compress_len,
    l1_fee,
    l1_fee_upper_bound,
)

# FastLZ compressed lengths published with the OP-stack clients' Fjord implementations (op-revm / base test cases:
# an EIP-1559 contract call, and a Base mainnet transaction, 0x5dadeb52...0769).
SAMPLE_CALL = bytes.fromhex(
    "02f901550a758302df1483be21b88304743f94f80e51afb613d764fa61751affd3313c190a86bb870151bd62fd12adb8e41ef24f3f"
    "000000000000000000000000000000000000000000000000000000000000006e000000000000000000000000af88d065e77c8cc223"
    "9327c5edb3a432268e5831000000000000000000000000000000000000000000000000000000000003c1e5000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "00a000000000000000000000000000000000000000000000000000000000000000148c89ed219d02f1a5be012c689b4f5b731827be"
    "be000000000000000000000000c001a033fd89cb37c31b2cba46b6466e040c61fc9b2a3675a7f5f493ebd5ad77c497f8a07cdf6568"
    "0e238392693019b4092f610222e71b7cec06449cb922b93b6a12744e"
)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0),
        (bytes(1_000), 21),
        (bytes([42]) * 1_000, 21),
        (bytes.fromhex("FACADE"), 4),
        (SAMPLE_CALL, 202),
    ],
)
def test_fastlz_length_matches_published_vectors(data, expected):
    assert flz_compress_len(data) == expected


def test_fastlz_length_grows_with_incompressible_input():
    lengths = [flz_compress_len(bytes(range(n))) for n in range(1, 257)]
    assert all(b > a for a, b in itertools.pairwise(lengths))


def test_fjord_formula_by_hand():
    params = L1FeeParams(l1_base_fee=10**9, blob_base_fee=2, base_fee_scalar=2_000, blob_base_fee_scalar=1_000_000)
    # fee scaled = 2,000 x 1e9 x 16 + 1e6 x 2 = 32,000,002,000,000; size 200: -42,585,600 + 836,500 x 200 = 124,714,400
    assert fjord_l1_fee(200, params) == 124_714_400 * 32_000_002_000_000 // 10**12
    # Small transactions pay for 100 bytes: 100e6 x fee / 1e12.
    assert fjord_l1_fee(1, params) == fjord_l1_fee(150, params) == 100 * 10**6 * 32_000_002_000_000 // 10**12
    data = bytes(range(120))
    assert l1_fee(data, params) == fjord_l1_fee(flz_compress_len(data) + 68, params)
    tx_size = 120 + 68
    assert l1_fee_upper_bound(120, params) == fjord_l1_fee(tx_size + tx_size // 255 + 16, params)
    assert l1_fee_upper_bound(120, params) >= l1_fee(data, params)  # incompressible: the bound still holds


class _FakeNode:
    def __init__(self, answer: str):
        self.answer, self.calls = answer, []

    def call(self, method, *params):
        self.calls.append((method, params))
        return self.answer


def test_reader_decodes_one_eth_call_to_the_predeploy():
    node = _FakeNode("0x" + encode(["uint256"], [12_345]).hex())
    reader = L1FeeReader(node)
    assert reader.l1_fee(b"\x01\x02", block=7) == 12_345
    ((method, (request, tag)),) = node.calls
    assert method == "eth_call" and tag == "0x7" and request["to"] == GAS_PRICE_ORACLE
    assert decode(["bytes"], bytes.fromhex(request["data"][10:]))[0] == b"\x01\x02"
    assert reader.l1_fee_upper_bound(150) == 12_345 and not reader.absent


def test_reader_without_the_predeploy_answers_zero_and_says_so_once(caplog):
    reader = L1FeeReader(_FakeNode("0x"))
    with caplog.at_level(logging.INFO, logger="liq_pipeline.chain.l1_fee"):
        assert [reader.l1_fee(b"\x01"), reader.l1_fee(b"\x02"), reader.l1_fee_upper_bound(10)] == [0, 0, 0]
    assert reader.absent
    assert [r.getMessage() for r in caplog.records if "GasPriceOracle" in r.getMessage()] == [
        f"no GasPriceOracle at {GAS_PRICE_ORACLE}: L1 data fee counted as 0 on this chain"
    ]


def test_base_like_fee_of_a_compact_liquidation_is_small_but_not_zero():
    fee = l1_fee(bytes(range(68)) + bytes(60), BASE_LIKE)
    assert 0 < fee < 10**13  # wei: well under a cent at 2 gwei L1 base fee
