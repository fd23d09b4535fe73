"""Fixed-layout answers and event data decoded by hand equal eth_abi's decoding, and what eth_abi refuses is
refused (a value too wide for its type, an address with high bits, data cut short)."""

from __future__ import annotations

import random

import pytest
from eth_abi import decode, encode

from liq_pipeline.chain.abi import decode_static, events, function, interfaces, static_layout


def _value(kind: str, rng: random.Random):
    if kind == "address":
        return "0x" + rng.randbytes(20).hex()
    if kind == "bool":
        return rng.random() < 0.5
    if kind.startswith("bytes"):
        return rng.randbytes(int(kind[5:]))
    bits = int(kind.lstrip("uint") or 256)
    if kind.startswith("int"):
        return rng.randrange(-(1 << (bits - 1)), 1 << (bits - 1))
    return rng.choice([0, 1, (1 << bits) - 1, rng.randrange(1 << bits)])


def _sample(node, rng):
    return tuple(_sample(child, rng) for child in node) if isinstance(node, tuple) else _value(node, rng)


def _every_static_signature() -> list[tuple[str, ...]]:
    kinds = set()
    for contract in interfaces():
        for topic, event in events(contract).items():
            assert topic
            kinds.add(tuple(kind for _name, kind in event.data))
        for entry in interfaces()[contract]:
            if entry.get("type") == "function":
                kinds.add(function(contract, entry["name"]).outputs)
    kinds |= {("int8", "uint40", "bytes4", "bool", "(uint16,(address,int256))")}
    return sorted(k for k in kinds if k and static_layout(k) is not None)


@pytest.mark.parametrize("kinds", _every_static_signature(), ids=lambda k: ",".join(k)[:60])
def test_hand_decoding_equals_eth_abi(kinds):
    rng = random.Random(",".join(kinds))
    layout = static_layout(kinds)
    for _ in range(30):
        values = _sample(layout, rng)
        data = encode(list(kinds), list(values)).hex()
        assert decode_static(layout, data) == decode(list(kinds), bytes.fromhex(data))


def test_the_reserve_data_layout_is_decoded_by_hand():
    assert static_layout(function("Pool", "getReserveData").outputs) is not None
    assert static_layout(("string",)) is None and static_layout(("uint256[]",)) is None


@pytest.mark.parametrize(
    ("kinds", "word"),
    [
        (("uint8",), "00" * 30 + "0100"),  # 256 does not fit in uint8
        (("address",), "01" + "00" * 31),  # high bits set
        (("bool",), "00" * 31 + "02"),
        (("int8",), "00" * 31 + "80"),  # 128 does not fit in int8
        (("uint256", "uint256"), "00" * 32),  # cut short
    ],
)
def test_what_eth_abi_refuses_is_refused(kinds, word):
    with pytest.raises(Exception):  # noqa: B017 - eth_abi raises several types
        decode(list(kinds), bytes.fromhex(word))
    with pytest.raises(ValueError):
        decode_static(static_layout(kinds), word)
