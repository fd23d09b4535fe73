"""Many eth_calls as one: Multicall3's aggregate3, with a plain JSON-RPC batch as the fallback.

A node answers a batch of 500 eth_calls one by one, each with its own setup (~100-200 us on anvil against a 100k
borrower state); one aggregate3 call runs the same views inside a single EVM call (~7 us each). That is most of
the watcher's read time for a block with a few dozen touched users.

Multicall3 is deployed at one address on Base and most EVM chains (MULTICALL_ADDRESS overrides it; the devnet
installs a compatible contract there). Where it has no code at the block read (a chain without it, a devnet block
before it was installed) or the node refuses the aggregate call (a gas or size cap), the same calls go out as a
plain batch: slower, same answers. Encoding and decoding are done by hand: the layout is fixed, and eth_abi costs
~15 us per entry, which would give back a third of the gain.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from eth_utils import keccak

from .rpc import Request, RpcClient, RpcError

log = logging.getLogger(__name__)

MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
CALLS_PER_AGGREGATE = 500  # ~4M gas of balance reads: well under the eth_call gas caps of hosted nodes
AGGREGATE3 = keccak(text="aggregate3((address,bool,bytes)[])")[:4]
_WORD = 32
_refused: set[str] = set()  # multicall addresses that refused a call in this process (warned about once)


def _word(value: int) -> bytes:
    return value.to_bytes(_WORD, "big")


def encode_aggregate3(calls: Sequence[tuple[str, str]]) -> str:
    """Calldata of aggregate3 for (target, calldata hex) pairs, every call allowed to fail (answered per call)."""
    heads, tails = [], []
    offset = len(calls) * _WORD  # tuple offsets count from the start of the array's head
    for target, data in calls:
        body = bytes.fromhex(data.removeprefix("0x"))
        tail = b"".join(
            [
                bytes(12) + bytes.fromhex(target.removeprefix("0x")),  # address
                _word(1),  # allowFailure
                _word(3 * _WORD),  # offset of callData within the tuple
                _word(len(body)),
                body + bytes(-len(body) % _WORD),
            ]
        )
        heads.append(_word(offset))
        tails.append(tail)
        offset += len(tail)
    return "0x" + (AGGREGATE3 + _word(_WORD) + _word(len(calls)) + b"".join(heads) + b"".join(tails)).hex()


def decode_aggregate3(result: str, expected: int) -> list[tuple[bool, str]]:
    """(success, return data hex) per call from aggregate3's answer. ValueError when it is not one (no code at the
    address answers "0x")."""
    raw = bytes.fromhex(result.removeprefix("0x"))

    def word(at: int) -> int:
        if at < 0 or at + _WORD > len(raw):
            raise ValueError(f"aggregate3 answer of {len(raw)} bytes is truncated at byte {at}")
        return int.from_bytes(raw[at : at + _WORD], "big")

    base = word(0) + _WORD
    count = word(base - _WORD)
    if count != expected:
        raise ValueError(f"aggregate3 answered {count} results for {expected} calls")
    out = []
    for i in range(count):
        at = base + word(base + i * _WORD)
        success = word(at)
        start = at + word(at + _WORD)
        length = word(start)
        if success > 1 or start + _WORD + length > len(raw):
            raise ValueError(f"aggregate3 result {i} is malformed")
        out.append((success == 1, "0x" + raw[start + _WORD : start + _WORD + length].hex()))
    return out


def has_multicall(rpc: RpcClient, address: str | None, block: int) -> str | None:
    """`address` when a contract is deployed there at `block`, else None (reads fall back to plain batches)."""
    if not address:
        return None
    code = rpc.call("eth_getCode", address, hex(block))
    return address if code not in (None, "0x", "0x0") else None


def aggregate_request(multicall: str, requests: Sequence[Request]) -> Request:
    """One eth_call of aggregate3 carrying `requests` (eth_calls at one block, at most CALLS_PER_AGGREGATE), to be
    sent inside a larger batch; split_aggregate reads its answer."""
    if len(requests) > CALLS_PER_AGGREGATE:
        raise ValueError(f"aggregate_request takes at most {CALLS_PER_AGGREGATE} calls, got {len(requests)}")
    tag = requests[0][1][1]
    if any(method != "eth_call" or params[1] != tag for method, params in requests):
        raise ValueError("aggregate_request takes eth_call requests at one block")
    return "eth_call", [
        {"to": multicall, "data": encode_aggregate3([(p[0]["to"], p[0]["data"]) for _m, p in requests])},
        tag,
    ]


def split_aggregate(answer: object, expected: int) -> list:
    """The per-call answers (return data hex, or an RpcError for a call that reverted) of an aggregate_request.
    ValueError when the aggregate itself failed (no multicall at that block, a refused call)."""
    if isinstance(answer, RpcError):
        raise ValueError(str(answer))
    if not isinstance(answer, str):
        raise ValueError(f"aggregate3 answered {answer!r}")
    return [
        data if ok else RpcError("eth_call", {"message": f"reverted: {data}"})
        for ok, data in decode_aggregate3(answer, expected)
    ]


def eth_calls(rpc: RpcClient, requests: Sequence[Request], multicall: str | None) -> list:
    """Answers to eth_call `requests` (all at one block), in order: return data hex, or an RpcError for a call that
    reverted or failed. Through `multicall` (aggregate3) when given, else as a plain batch."""
    if multicall is None or not requests:
        return rpc.batch(requests, raise_on_error=False)
    tag = requests[0][1][1]
    if any(method != "eth_call" or params[1] != tag for method, params in requests):
        raise ValueError("eth_calls takes eth_call requests at one block")
    chunks = [requests[i : i + CALLS_PER_AGGREGATE] for i in range(0, len(requests), CALLS_PER_AGGREGATE)]
    aggregates = [
        ("eth_call", [{"to": multicall, "data": encode_aggregate3([(p[0]["to"], p[0]["data"]) for _m, p in c])}, tag])
        for c in chunks
    ]
    out: list = []
    for chunk, answer in zip(chunks, rpc.batch(aggregates, raise_on_error=False), strict=True):
        try:
            if isinstance(answer, RpcError):
                raise ValueError(str(answer))
            results = decode_aggregate3(answer, len(chunk))
        except ValueError as problem:
            # said once per address at warning level: every read then costs the refused call and a plain batch
            level = logging.DEBUG if multicall in _refused else logging.WARNING
            _refused.add(multicall)
            log.log(
                level,
                "multicall at %s unusable at block %s (%s): reads go as plain batches, slower; set "
                "MULTICALL_ADDRESS to a working aggregate3 contract, or empty to stop trying",
                multicall,
                tag,
                problem,
            )
            out += rpc.batch(chunk, raise_on_error=False)
            continue
        out += [data if ok else RpcError("eth_call", {"message": f"reverted: {data}"}) for ok, data in results]
    return out


MIN_AGGREGATE = 2  # a lone eth_call gains nothing from the wrapping


class AggregatingRpcClient(RpcClient):
    """An RpcClient whose batches send their plain eth_calls at one block number as aggregate3 calls (through
    `multicall`), in the same round trip as the rest of the batch. Answers are what the plain batch gives: return
    data hex, an RpcError for a call that reverted.

    Why: a node loads a block's state once per eth_call. anvil keeps only its newest states in memory and reads an
    older one from its disk cache for every call (measured: 3-4 ms per eth_call at a block 300+ behind the head of
    a 1,000-block devnet, against 0.2 ms near the head; an aggregate of 100 calls there: ~10 ms). Code that sends
    plain batches (market discovery: ~150 eth_calls, 128 of them the e-mode probes) then costs the node a state load
    per call; through this client, one per block.

    Only eth_calls with nothing but `to` and `data` at a hex block number are wrapped (not calls to the multicall
    itself: an aggregate already): inside aggregate3 the callee sees the multicall as msg.sender, which changes
    nothing for views that do not look at the caller (Aave's Pool, tokens, oracle). A block at which the aggregate
    fails (no code there yet, a refused call) is remembered and read with plain calls from then on."""

    def __init__(self, url: str, multicall: str | None, **options):
        super().__init__(url, **options)
        self.multicall = multicall
        self._plain_tags: set[str] = set()  # block numbers where the aggregate did not work

    def _wrappable(self, method: str, params) -> str | None:
        if method != "eth_call" or len(params) != 2 or not isinstance(params[0], dict):
            return None
        call, tag = params
        if call.keys() != {"to", "data"} or not isinstance(tag, str) or not tag.startswith("0x"):
            return None
        if tag in self._plain_tags or str(call["to"]).lower() == str(self.multicall).lower():
            return None
        return tag

    def batch(self, requests_, *, raise_on_error: bool = True, **options) -> list:
        items = list(requests_)
        groups: dict[str, list[int]] = {}
        if self.multicall:
            for index, (method, params) in enumerate(items):
                tag = self._wrappable(method, params)
                if tag is not None:
                    groups.setdefault(tag, []).append(index)
        chunks = [
            indices[i : i + CALLS_PER_AGGREGATE]
            for indices in groups.values()
            if len(indices) >= MIN_AGGREGATE
            for i in range(0, len(indices), CALLS_PER_AGGREGATE)
        ]
        if not chunks:
            return super().batch(items, raise_on_error=raise_on_error, **options)
        wrapped = {index for chunk in chunks for index in chunk}
        others = [index for index in range(len(items)) if index not in wrapped]
        sent = [items[index] for index in others]
        sent += [aggregate_request(self.multicall, [items[index] for index in chunk]) for chunk in chunks]
        answers = super().batch(sent, raise_on_error=False, **options)
        results: list = [None] * len(items)
        for index, answer in zip(others, answers[: len(others)], strict=True):
            results[index] = answer
        plain: list[int] = []
        for chunk, answer in zip(chunks, answers[len(others) :], strict=True):
            try:
                results_of_chunk = split_aggregate(answer, len(chunk))
            except ValueError:
                self._plain_tags.add(items[chunk[0]][1][1])
                plain += chunk
                continue
            for index, result in zip(chunk, results_of_chunk, strict=True):
                results[index] = result
        if plain:
            again = super().batch([items[index] for index in plain], raise_on_error=False, **options)
            for index, result in zip(plain, again, strict=True):
                results[index] = result
        if raise_on_error:
            for result in results:
                if isinstance(result, RpcError):
                    raise result
        return results
