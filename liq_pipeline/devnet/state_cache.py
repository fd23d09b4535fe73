"""Deployed + seeded markets kept as anvil state dumps, so tests and later runs start in ~1 s.

Key: (the protocol version, 3.0 or 3.6, and what identifies its contracts: the npm package version, or the V3.6
build key; anvil's version; a fingerprint of the devnet code that shapes the chain; borrowers; seed), so the two
markets never share an entry. An entry is a directory <DATA_DIR>/devnet/cache/<key>/ with `state.json.gz` (the
dump), `market.json`, `borrowers.json` and `dex.json` (the Uniswap V2 DEX deployed after the borrowers, devnet/dex.py;
and `v36.json` for V3.6). anvil records a call trace for every
transaction and dumps it; traces are 3/4 of a dump and no consumer replays them, so they are cut before saving
(debug_trace* of old transactions is not available on a loaded chain; blocks, transactions, receipts and logs
are).

Memory while building: anvil holds every transaction with its trace and, without --prune-history, a copy of the
state per block; 100,000 borrowers went past 23 GB, and anvil_dumpState copies all of it once more. The build
node therefore prunes state history and keeps the transactions of its last KEEP_BLOCKS blocks only; `_History`
collects blocks and transactions (traces cut) from a dump every HARVEST_EVERY blocks, before the node drops
them, and stitches the entry's dump from them and the final state.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import anvil, protocols
from .borrowers import BorrowerRecord
from .dex import deploy_dex
from .errors import DevnetError
from .locks import locked
from .market import Market, load_market
from .multicall import install_multicall
from .paths import devnet_dir, package_version
from .protocols import DEFAULT_PROTOCOL
from .rpc import Rpc

CACHE_FORMAT = 1  # bump when the layout of an entry changes


@dataclass(frozen=True)
class CacheEntry:
    key: str
    directory: Path

    @property
    def data_dir(self) -> Path:
        """The DATA_DIR the entry lives in (<DATA_DIR>/devnet/cache/<key>)."""
        return self.directory.parents[2]

    @property
    def state_path(self) -> Path:
        return self.directory / "state.json.gz"

    @property
    def market_path(self) -> Path:
        return self.directory / "market.json"

    @property
    def borrowers_path(self) -> Path:
        return self.directory / "borrowers.json"

    @property
    def dex_path(self) -> Path:
        """dex.json: the Uniswap V2 DEX deployed after the borrowers (absent in entries from before the DEX)."""
        return self.directory / protocols.DEX_JSON

    @property
    def extras_path(self) -> Path:
        """v36.json: the V3.6 market's extras (absent for V3.0)."""
        return self.directory / protocols.V36_EXTRAS

    def exists(self) -> bool:
        return self.state_path.is_file() and self.market_path.is_file() and self.borrowers_path.is_file()

    def market(self) -> Market:
        return load_market(self.market_path)

    def size_bytes(self) -> int:
        return self.state_path.stat().st_size


def code_fingerprint(protocol: str = DEFAULT_PROTOCOL) -> str:
    return protocols.code_fingerprint(protocol)


def cache_key(borrowers: int, seed: int, protocol: str = DEFAULT_PROTOCOL) -> str:
    protocol = protocols.check_protocol(protocol)
    return (
        f"{protocols.cache_tag(protocol)}_anvil-{package_version('@foundry-rs/anvil')}_p{protocol}"
        f"_n{borrowers}_s{seed}_v{CACHE_FORMAT}-{code_fingerprint(protocol)}"
    )


def entry_for(data_dir: Path | str, borrowers: int, seed: int, protocol: str = DEFAULT_PROTOCOL) -> CacheEntry:
    key = cache_key(borrowers, seed, protocol)
    return CacheEntry(key, devnet_dir(data_dir) / "cache" / key)


def strip_traces(dump: bytes) -> bytes:
    """Empty every transaction's `traces` list in anvil's compact JSON dump, without parsing the whole dump
    (a 2,000-borrower dump is ~170 MB of JSON). Raises ValueError when the layout is not the expected one."""
    opening, closing = b'"traces":[', b'],"exit":'
    parts, position, cut = [], 0, 0
    while (start := dump.find(opening, position)) >= 0:
        end = dump.find(closing, start)
        if end < 0:
            raise ValueError('a traces list without its closing ],"exit":')
        parts += [dump[position:start], b'"traces":[],"exit":']
        position = end + len(closing)
        cut += 1
    parts.append(dump[position:])
    slim = b"".join(parts)
    if slim.count(b'"exit":') != cut or dump.count(b'"exit":') != cut:
        raise ValueError('unexpected "exit" keys: the dump layout changed')
    return slim


HARVEST_EVERY = 16  # blocks between two collections (a collection dumps the whole account state: not every block)
# >= HARVEST_EVERY (seed reports every block; deployment's few blocks are collected right after it). Every
# kept block is in each collection's dump, so a bigger margin only costs time.
KEEP_BLOCKS = HARVEST_EVERY + 4
EMPTY_ROOT = "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"  # trie root of no transactions


def build_node_args() -> tuple[str, ...]:
    """anvil arguments of the build node (with prune_history=True): see the module docstring."""
    return ("--transaction-block-keeper", str(KEEP_BLOCKS))


class _History:
    """Blocks and transactions of the build node, collected before --transaction-block-keeper drops them (traces
    cut, appended to gzip parts in the work directory), and written out as one anvil dump with the final state.

    anvil's compact dump is {"block":..,"accounts":..,"best_block_number":..,"blocks":[..],"transactions":[..],
    ...}: the part before "blocks" (the state, ~1.6 KB a borrower) is kept from the latest dump only, and only the
    history part is parsed."""

    def __init__(self, rpc: Rpc, directory: Path):
        self.rpc = rpc
        self.directory = directory
        self.collected = -1  # highest block number collected
        self.counts = {"blocks": 0, "transactions": 0}
        # appended to across collections; closed by write() or close()
        self._parts = {
            kind: gzip.open(directory / f"{kind}.part.gz", "wb", compresslevel=6)  # noqa: SIM115 (default is 9: slow)
            for kind in self.counts
        }
        self._state = b""
        self._rest: dict = {}

    def on_block(self, number: int) -> None:
        if number - self.collected >= HARVEST_EVERY:
            self.collect()

    def collect(self) -> None:
        raw = gzip.decompress(bytes.fromhex(self.rpc.call("anvil_dumpState").removeprefix("0x")))
        with contextlib.suppress(ValueError):  # an unexpected trace layout keeps the traces: bigger, still correct
            raw = strip_traces(raw)
        split = raw.find(b',"blocks":[')
        if not raw.startswith(b'{"block":') or split < 0:
            raise DevnetError("anvil_dumpState has an unexpected layout: the state cache cannot collect history")
        self._state = raw[1:split]
        history = json.loads(b"{" + raw[split + 1 :])
        del raw
        blocks, top = [], self.collected
        for block in history.pop("blocks"):
            number = int(block["header"]["number"], 16)
            if number <= self.collected:
                continue
            if not block["transactions"] and block["header"]["transactionsRoot"] != EMPTY_ROOT:
                raise DevnetError(f"block {number} lost its transactions before it was collected: raise KEEP_BLOCKS")
            blocks.append(block)
            top = max(top, number)
        transactions = [tx for tx in history.pop("transactions") if _number(tx["block_number"]) > self.collected]
        self._append("blocks", blocks)
        self._append("transactions", transactions)
        self._rest = history  # what follows the lists ("historical_states": null)
        self.collected = top

    def _append(self, kind: str, items: list[dict]) -> None:
        if items:
            body = b",".join(json.dumps(item, separators=(",", ":")).encode() for item in items)
            self._parts[kind].write((b"," if self.counts[kind] else b"") + body)
            self.counts[kind] += len(items)

    def write(self, path: Path) -> int:
        """Collect up to the head, then write the dump (gzip members, concatenated). Returns the file size."""
        self.collect()
        self.close()
        if self.counts["blocks"] != self.collected + 1:
            raise DevnetError(f"collected {self.counts['blocks']} blocks of {self.collected + 1}")
        rest = json.dumps(self._rest, separators=(",", ":")).encode()[1:-1]
        pieces = [
            gzip.compress(b"{" + self._state + b',"blocks":['),
            self.directory / "blocks.part.gz",
            gzip.compress(b'],"transactions":['),
            self.directory / "transactions.part.gz",
            gzip.compress(b"]" + (b"," + rest if rest else b"") + b"}"),
        ]
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            for piece in pieces:
                if isinstance(piece, Path):
                    with open(piece, "rb") as source:
                        shutil.copyfileobj(source, out, 16 << 20)
                    piece.unlink()
                else:
                    out.write(piece)
        tmp.replace(path)
        return path.stat().st_size

    def close(self) -> None:
        for part in self._parts.values():
            part.close()


def _number(value: int | str) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def build(
    data_dir: Path | str,
    borrowers: int,
    seed: int,
    progress: Callable[[str, int], None] | None = None,
    *,
    protocol: str = DEFAULT_PROTOCOL,
) -> CacheEntry:
    """Deploy and seed on a private anvil, dump it, and store the entry (unless another process just did)."""
    protocol = protocols.check_protocol(protocol)
    protocols.check_packages(protocol)
    entry = entry_for(data_dir, borrowers, seed, protocol)
    with locked(entry.directory.parent / f"{entry.key}.lock"):
        if entry.exists():
            return entry
        work = entry.directory.with_name(entry.directory.name + ".building")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        # Seeding reads at the head only, so old states can go; history is collected as it is mined (see above).
        node = anvil.start(prune_history=True, extra_args=build_node_args())
        try:
            with Rpc(node.url) as rpc, contextlib.ExitStack() as stack:
                rpc.call("anvil_setBlockTimestampInterval", anvil.BLOCK_TIME)
                history = stack.enter_context(contextlib.closing(_History(rpc, work)))
                market, save_market = protocols.deploy(rpc, data_dir, protocol)
                history.collect()
                if progress:
                    progress("deployed", 0)
                record = BorrowerRecord()
                if borrowers:
                    result = protocols.seeder(market)(
                        rpc,
                        market,
                        borrowers,
                        seed,
                        progress=(lambda k: progress("seeded", k)) if progress else None,
                        on_block=history.on_block,
                    )
                    record.add(seed, 0, result.users, result.blocks[1])
                # the DEX last, at the oracle's prices, in one block (dex.DEFAULT_DEPTH_USD a side of each pair)
                deploy_dex(rpc, market).save(work / protocols.DEX_JSON)
                save_market(work)
                record.save(work / "borrowers.json")
                history.write(work / "state.json.gz")
        finally:
            anvil.stop(node)
        shutil.rmtree(entry.directory, ignore_errors=True)
        work.rename(entry.directory)
        _drop_stale(entry, borrowers, seed, protocol)
    return entry


def _drop_stale(entry: CacheEntry, borrowers: int, seed: int, protocol: str) -> None:
    """Entries for the same (protocol, borrowers, seed) built by other code or package versions are dead weight
    (keys without a protocol are V3.0 entries from before V3.6 existed)."""
    for other in entry.directory.parent.glob(f"*_n{borrowers}_s{seed}_v*"):
        tagged = "_p" in other.name.split("_n")[0]
        if (tagged and f"_p{protocol}_n" not in other.name) or (not tagged and protocol != "3.0"):
            continue
        if other.is_dir() and other != entry.directory and not other.name.endswith(".building"):
            shutil.rmtree(other, ignore_errors=True)
            (other.parent / f"{other.name}.lock").unlink(missing_ok=True)


def ensure(
    data_dir: Path | str,
    borrowers: int,
    seed: int,
    progress: Callable[[str, int], None] | None = None,
    *,
    protocol: str = DEFAULT_PROTOCOL,
) -> tuple[CacheEntry, bool]:
    """The entry for (protocol, borrowers, seed), built on first use. Returns (entry, built_now)."""
    entry = entry_for(data_dir, borrowers, seed, protocol)
    if entry.exists():
        return entry, False
    return build(data_dir, borrowers, seed, progress, protocol=protocol), True


def start_from(
    entry: CacheEntry,
    *,
    port: int | None = None,
    detach: bool = False,
    prune_history: bool = False,
    log_path: Path | None = None,
) -> tuple[anvil.AnvilNode, Market]:
    """A node running the cached chain, its clock set to the chain's last block (not the wall clock)."""
    if not entry.exists():
        raise DevnetError(f"state cache entry {entry.key} is incomplete: delete {entry.directory} and retry")
    plain = entry.directory.parent / f"{entry.key}.{time.time_ns()}.json"
    try:
        with gzip.open(entry.state_path, "rb") as source, open(plain, "wb") as out:  # --load-state reads plain JSON
            shutil.copyfileobj(source, out, 16 << 20)  # streamed: a 100k-borrower dump is GBs of JSON
        # anvil parses the file before it answers: ~150 MB/s; allow for a slow disk or a busy machine
        timeout = 30.0 + plain.stat().st_size / 20e6
        node = anvil.start(
            port, load_state=plain, detach=detach, prune_history=prune_history, log_path=log_path, timeout=timeout
        )
    finally:
        plain.unlink(missing_ok=True)
    try:
        with Rpc(node.url) as rpc:
            prepare_clock(rpc)
            install_multicall(rpc, entry.data_dir)
    except BaseException:
        anvil.stop(node)
        raise
    return node, entry.market().with_rpc_url(node.url)


def prepare_clock(rpc: Rpc) -> None:
    """Blocks 2 s apart from the latest block's timestamp on. After --load-state anvil would otherwise date the
    next block by the wall clock, months after the dump, and interest would jump accordingly."""
    latest = int(rpc.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    rpc.call("anvil_setTime", latest)
    rpc.call("anvil_setBlockTimestampInterval", anvil.BLOCK_TIME)


def read_borrowers(entry: CacheEntry) -> BorrowerRecord:
    return BorrowerRecord.load(entry.borrowers_path)
