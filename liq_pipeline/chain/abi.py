"""The Aave V3 interfaces the reader uses, encoded and decoded with eth-abi and cached selectors.

`abi/aave_v3.json` holds the entries the reader needs, taken from @aave/core-v3 1.19.3's compiled interfaces
(IPool, IPoolAddressesProvider, IAaveOracle, IAToken, IVariableDebtToken), plus Chainlink's AnswerUpdated, ERC20
metadata and the V3.2+ e-mode getters. Building calls through web3's contract layer costs ~0.9 ms each; a cached
selector plus eth_abi costs microseconds, which matters when reading 10,000 users.
"""

from __future__ import annotations

import json
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
            raw_data = bytes.fromhex(log["data"][2:])
            for (name, kind), value in zip(self.data, decode(self._data_kinds, raw_data), strict=True):
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
