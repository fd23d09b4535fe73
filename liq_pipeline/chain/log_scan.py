"""The watcher's per-block read of logs: who the block touched and whether a feed published, without decoding.

A block's only use of its logs on the hot path is the position owners they name (to re-read) and the count of
price updates. Every owner field of the Pool and token events is an indexed address, so it is read straight from
its topic; the data is checked for length only. A liquidation wave's block carries ~1,000 logs: decoding them all
into a frame cost ~10-15 ms, scanning them costs ~1 ms. The watcher also asks the node only for the events that
name an owner and for price updates (not the tokens' Transfer, nor ReserveDataUpdated, whose reserves it reads
at the block anyway): a third fewer logs to send and parse.

The decoded frame (chain.events.decode_logs) is built from the kept logs only when someone asks for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .abi import checksum, static_layout
from .discovery import Market, ReaderError
from .events import OWNER_FIELDS, topic_map

PRICE_EVENT = "AnswerUpdated"
_ZERO = "0" * 40


@dataclass(frozen=True)
class _Shape:
    """What a scan needs of one event: its name, emitters, topic count, owner topics and data length."""

    name: str
    emitters: frozenset[str] | None  # None: any of the market's feeds
    topics: int  # topic0 included
    owners: tuple[int, ...]  # positions of the owner fields in `topics`
    data_chars: int  # hex characters of the static data (0x excluded)


@dataclass
class ScannedLogs:
    owners: list[str]  # distinct position owners named (zero address excluded), sorted, checksummed
    price_updates: int
    logs: list[dict[str, Any]]  # the logs kept, in the node's order (for decode_logs on demand)


class LogScanner:
    """Built once per market (the watcher's tracker keeps it): the events to ask for and how to scan them."""

    def __init__(self, market: Market):
        self.shapes: dict[str, _Shape] = {}
        self.feeds = frozenset(f.lower() for f in market.price_sources.values())
        for topic, (event, emitters) in topic_map(market).items():
            owners = OWNER_FIELDS.get(event.name, ())
            if not owners and event.name != PRICE_EVENT:
                continue  # no owner and no price: nothing the hot path reads
            indexed = [name for name, _kind in event.indexed]
            if any(name not in indexed for name in owners):  # an owner in the data would need decoding
                raise ValueError(f"{event.name}: owner field not indexed; the scan reads owners from topics")
            layout = static_layout(tuple(kind for _name, kind in event.data))
            if layout is None:
                raise ValueError(f"{event.name}: dynamic data; the scan checks the data's length only")
            self.shapes[topic] = _Shape(
                event.name,
                frozenset(emitters) if emitters is not None else None,
                1 + len(indexed),
                tuple(1 + indexed.index(name) for name in owners),
                64 * _words(layout),
            )
        self.topics = list(self.shapes)
        self.addresses = [market.pool, market.oracle, *market.token_addresses(), *market.price_sources.values()]

    def request(self, from_block: int, to_block: int) -> tuple[str, list]:
        """One eth_getLogs request for the events the scan reads, in [from_block, to_block]."""
        query = {
            "fromBlock": hex(from_block),
            "toBlock": hex(to_block),
            "address": self.addresses,
            "topics": [self.topics],
        }
        return "eth_getLogs", [query]

    def scan(self, logs: Iterable[dict[str, Any]]) -> ScannedLogs:
        """Owners and price updates of `logs`. A log of a scanned event whose topics or data do not have the
        event's shape raises ReaderError naming it (as decoding it would)."""
        owners: set[str] = set()
        prices = 0
        kept = []
        for log in logs:
            topics = log.get("topics")
            shape = self.shapes.get(topics[0]) if topics else None
            if shape is None:
                continue
            address = log["address"].lower()
            allowed = shape.emitters if shape.emitters is not None else self.feeds
            if allowed and address not in allowed:  # a market without feeds: any emitter (as decode_logs)
                continue
            data = log.get("data") or "0x"
            if len(topics) != shape.topics or len(data) - 2 < shape.data_chars:
                raise _malformed(log, shape, f"{len(topics)} topics and {(len(data) - 2) // 2} data bytes")
            kept.append(log)
            if shape.name == PRICE_EVENT:
                prices += 1
            for at in shape.owners:
                word = topics[at][-64:]
                if len(word) != 64 or word[:24].strip("0"):
                    raise _malformed(log, shape, f"topic {topics[at]} is not an address")
                if word[24:] != _ZERO:
                    owners.add(word[24:])
        return ScannedLogs(sorted(checksum("0x" + owner) for owner in owners), prices, kept)


def _words(layout: tuple) -> int:
    return sum(_words(node) if isinstance(node, tuple) else 1 for node in layout)


def _malformed(log: dict[str, Any], shape: _Shape, what: str) -> ReaderError:
    block = int(log["blockNumber"], 16) if log.get("blockNumber") else "?"
    return ReaderError(
        f"{shape.name} log {log.get('logIndex')} of tx {log.get('transactionHash')} in block {block} from "
        f"{log['address']} does not have the event's shape ({what})"
    )
