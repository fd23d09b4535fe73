"""The Aave V3 interfaces the reader uses, encoded and decoded with eth-abi and cached selectors.

`abi/aave_v3.json` holds the entries the reader needs, taken from @aave/core-v3 1.19.3's compiled interfaces
(IPool, IPoolAddressesProvider, IAaveOracle, IAToken, IVariableDebtToken), plus Chainlink's AnswerUpdated, ERC20
metadata and the V3.2+ e-mode getters. Building calls through web3's contract layer costs ~0.9 ms each; a cached
selector plus eth_abi costs microseconds, which matters when reading 10,000 users.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.resources import files
from typing import Any

from eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address


@cache
def interfaces() -> dict[str, list[dict[str, Any]]]:
    return json.loads(files("liq_pipeline.chain").joinpath("abi/aave_v3.json").read_text())


def _type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_type(c) for c in param["components"])
        return f"({inner}){param['type'][5:]}"
    return param["type"]


_ONE_WORD = {("uint256",): 256, ("uint8",): 8, ("(uint256)",): 256}  # outputs decoded without eth_abi
_BASE = re.compile(r"(u?int)(\d*)|address|bool|bytes(\d+)")


def _split(inner: str) -> list[str]:
    """Top-level comma-separated components of a tuple type's inside."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(inner):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    return [*parts, inner[start:]] if inner else parts


@cache
def static_layout(kinds: tuple[str, ...]) -> tuple | None:
    """The types as a tree of one-word base types (tuples inline), or None when any is dynamic (bytes, string,
    arrays): those go through eth_abi."""
    layout = []
    for kind in kinds:
        if kind.startswith("(") and kind.endswith(")"):
            inner = static_layout(tuple(_split(kind[1:-1])))
            if inner is None:
                return None
            layout.append(inner)
        elif _BASE.fullmatch(kind):  # `bytes` (dynamic) does not match: bytesN needs its size
            layout.append(kind)
        else:
            return None
    return tuple(layout)


def decode_static(layout: tuple, data: str) -> tuple[Any, ...]:
    """Decode hex `data` (no 0x) laid out as `static_layout` gives, exactly as eth_abi would (lower-case
    addresses, range-checked integers). eth_abi costs ~15 us a word; this ~1 us. ValueError when it does not fit."""
    words = iter(range(0, len(data), 64))

    def take(node):
        if isinstance(node, tuple):
            return tuple(take(child) for child in node)
        at = next(words, None)
        word = data[at : at + 64] if at is not None else ""
        if len(word) != 64:
            raise ValueError(f"data of {len(data) // 2} bytes is too short for the types")
        value = int(word, 16)
        if node == "address":
            if value >> 160:
                raise ValueError(f"{word} is not an address")
            return "0x" + word[24:]  # lower case, as eth_abi gives it
        if node == "bool":
            if value > 1:
                raise ValueError(f"{word} is not a bool")
            return bool(value)
        if node.startswith("bytes"):
            size = int(node[5:])
            if int(word[2 * size :] or "0", 16):
                raise ValueError(f"{word} is not a {node}")
            return bytes.fromhex(word[: 2 * size])
        bits = int(node.removeprefix("u").removeprefix("int") or 256)
        if node.startswith("int"):
            value = value - (1 << 256) if value >> 255 else value
            if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
                raise ValueError(f"{value} does not fit in {node}")
        elif value >> bits:
            raise ValueError(f"{value} does not fit in {node}")
        return value

    return tuple(take(node) for node in layout)


@dataclass(frozen=True)
class Function:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    selector: bytes

    def calldata(self, *args: Any) -> str:
        if self.inputs == ("address",):  # the common case (balances, user data): by hand, eth_abi costs ~40 us
            return "0x" + self.selector.hex() + "0" * 24 + args[0].lower().removeprefix("0x")
        return "0x" + (self.selector + encode(list(self.inputs), list(args))).hex()

    def decode(self, result: str) -> tuple[Any, ...]:
        data = result[2:] if result.startswith("0x") else result
        bits = _ONE_WORD.get(self.outputs)
        if bits is not None:  # balances, configuration, e-mode: one word, by hand (eth_abi costs ~40 us a call)
            if len(data) != 64:
                raise ValueError(f"{self.name}: expected one 32-byte word, got {len(data) // 2} bytes")
            value = int(data, 16)
            if value >> bits:
                raise ValueError(f"{self.name}: {value} does not fit in {bits} bits")
            return ((value,),) if self.outputs[0].startswith("(") else (value,)
        layout = static_layout(self.outputs)
        if layout is not None:  # reserve data and other fixed layouts: by hand
            return decode_static(layout, data)
        return decode(list(self.outputs), bytes.fromhex(data))

    def request(self, to: str, *args: Any, block: int | str = "latest") -> tuple[str, list[Any]]:
        """An eth_call request for RpcClient.batch."""
        tag = hex(block) if isinstance(block, int) else block
        return "eth_call", [{"to": to, "data": self.calldata(*args)}, tag]


@cache
def function(contract: str, name: str) -> Function:
    for entry in interfaces()[contract]:
        if entry.get("type") == "function" and entry["name"] == name:
            inputs = tuple(_type(p) for p in entry["inputs"])
            outputs = tuple(_type(p) for p in entry["outputs"])
            selector = keccak(text=f"{name}({','.join(inputs)})")[:4]
            return Function(name, inputs, outputs, selector)
    raise KeyError(f"{contract}.{name} is not in the reader's ABI")


@dataclass(frozen=True)
class Event:
    contract: str
    name: str
    topic: str
    indexed: tuple[tuple[str, str], ...]  # (name, type) in topic order
    data: tuple[tuple[str, str], ...]  # (name, type) in data order

    def decode(self, log: dict[str, Any]) -> dict[str, Any]:
        """Named fields of one log; addresses checksummed. Raises ValueError when the log does not fit.
        Indexed addresses are read straight from their topic word; the data goes through eth_abi in one call
        (a call per topic and an uncached checksum cost ~250 us per log: 36 ms for a busy block)."""
        topics = log["topics"][1:]
        if len(topics) != len(self.indexed):
            raise ValueError(f"{self.name}: expected {len(self.indexed)} indexed topics, got {len(topics)}")
        out: dict[str, Any] = {}
        for (name, kind), topic in zip(self.indexed, topics, strict=True):
            word = topic[2:] if topic.startswith("0x") else topic
            if kind == "address" and len(word) == 64:
                if word[:24].strip("0"):
                    raise ValueError(f"{self.name}.{name}: {topic} is not an address")
                out[name] = checksum("0x" + word[24:])
            else:
                out[name] = decode([kind], bytes.fromhex(word))[0]
        if self.data:
            layout = static_layout(tuple(self._data_kinds))
            if layout is not None:  # amounts, rates, addresses: by hand
                values = decode_static(layout, log["data"][2:])
            else:
                values = decode(self._data_kinds, bytes.fromhex(log["data"][2:]))
            for (name, kind), value in zip(self.data, values, strict=True):
                out[name] = checksum(value) if kind == "address" else value
        return out

    @property
    def _data_kinds(self) -> list[str]:
        return [kind for _name, kind in self.data]


@lru_cache(maxsize=1 << 16)
def checksum(address: str) -> str:
    """EIP-55 form of an address. Cached: the same pool, tokens and users recur in every block, and each
    checksum is a keccak (~60 us)."""
    return to_checksum_address(address)


@cache
def events(contract: str) -> dict[str, Event]:
    """Events of one interface by topic0."""
    found = {}
    for entry in interfaces()[contract]:
        if entry.get("type") != "event":
            continue
        kinds = [_type(p) for p in entry["inputs"]]
        signature = f"{entry['name']}({','.join(kinds)})"
        topic = "0x" + keccak(text=signature).hex()
        indexed = tuple((p["name"], _type(p)) for p in entry["inputs"] if p["indexed"])
        data = tuple((p["name"], _type(p)) for p in entry["inputs"] if not p["indexed"])
        found[topic] = Event(contract, entry["name"], topic, indexed, data)
    return found


def event_topic(contract: str, name: str) -> str:
    for topic, event in events(contract).items():
        if event.name == name:
            return topic
    raise KeyError(f"{contract}.{name} is not in the reader's ABI")


def decoded_logs(
    logs: Iterable[dict[str, Any]], address: str, topic: str, data: Sequence[str]
) -> Iterator[tuple[tuple[str, ...], tuple[Any, ...], dict[str, Any]]]:
    """The logs among raw `logs` that `address` emitted with topic0 `topic`, each as (its indexed topics read as
    checksummed addresses, its data decoded as the `data` types, the log): for events whose indexed arguments are
    all addresses."""
    for log in logs:
        topics = log.get("topics") or []
        if log.get("address", "").lower() == address.lower() and topics and topics[0] == topic:
            indexed = tuple(to_checksum_address("0x" + t[-40:]) for t in topics[1:])
            yield indexed, decode(list(data), bytes.fromhex(log["data"].removeprefix("0x"))), log
