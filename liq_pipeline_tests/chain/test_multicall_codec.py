"""The hand-written aggregate3 encoder and decoder give exactly what eth_abi gives, and refuse what is not an
aggregate3 answer (an address without code answers "0x")."""

from __future__ import annotations

import random

import pytest
from eth_abi import decode, encode
from eth_utils import to_checksum_address

from liq_pipeline.chain.multicall import AGGREGATE3, decode_aggregate3, encode_aggregate3


def _random_calls(rng: random.Random, count: int) -> list[tuple[str, str]]:
    calls = []
    for _ in range(count):
        target = to_checksum_address("0x" + rng.randbytes(20).hex())
        data = rng.randbytes(rng.choice([0, 4, 31, 32, 36, 68, 100, 257]))
        calls.append((target, "0x" + data.hex()))
    return calls


@pytest.mark.parametrize("count", [0, 1, 2, 17, 500])
def test_encoding_equals_eth_abi(count):
    calls = _random_calls(random.Random(count), count)
    expected = AGGREGATE3 + encode(["(address,bool,bytes)[]"], [[(t, True, bytes.fromhex(d[2:])) for t, d in calls]])
    assert encode_aggregate3(calls) == "0x" + expected.hex()


@pytest.mark.parametrize("count", [0, 1, 3, 64, 500])
def test_decoding_equals_eth_abi(count):
    rng = random.Random(1000 + count)
    results = [(rng.random() < 0.8, rng.randbytes(rng.choice([0, 1, 32, 33, 64, 200]))) for _ in range(count)]
    answer = "0x" + encode(["(bool,bytes)[]"], [results]).hex()
    decoded = decode_aggregate3(answer, count)
    assert decoded == [(ok, "0x" + data.hex()) for ok, data in results]
    assert decoded == [(ok, "0x" + data.hex()) for ok, data in decode(["(bool,bytes)[]"], bytes.fromhex(answer[2:]))[0]]


def test_an_address_without_code_is_not_an_answer():
    with pytest.raises(ValueError, match="truncated"):
        decode_aggregate3("0x", 3)


def test_a_wrong_count_or_a_cut_answer_is_refused():
    answer = "0x" + encode(["(bool,bytes)[]"], [[(True, b"\x01" * 32), (False, b"")]]).hex()
    with pytest.raises(ValueError, match="2 results for 3 calls"):
        decode_aggregate3(answer, 3)
    with pytest.raises(ValueError, match=r"truncated|malformed"):
        decode_aggregate3(answer[:-64], 2)
