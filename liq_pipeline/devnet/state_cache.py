"""Deployed + seeded markets kept as anvil state dumps, so tests and later runs start in ~1 s.

Key: (npm package versions, a fingerprint of the devnet code that shapes the chain, borrowers, seed). An entry
is a directory <DATA_DIR>/devnet/cache/<key>/ with `state.json.gz` (the dump), `market.json` and
`borrowers.json`. anvil records a call trace for every transaction and dumps it; traces are 3/4 of a dump and
no consumer replays them, so they are cut before saving (debug_trace* of old transactions is not available on
a loaded chain; blocks, transactions, receipts and logs are).
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import anvil
from .borrowers import BorrowerRecord
from .deploy import deploy_market, package_versions
from .errors import DevnetError
from .market import Market, load_market
from .paths import check_packages, devnet_dir
from .rpc import Rpc
from .seed import seed as seed_borrowers

CACHE_FORMAT = 1  # bump when the layout of an entry changes
# Source files whose content decides what a deployed + seeded chain looks like.
_SHAPING_SOURCES = ("spec.py", "deploy.py", "seed.py", "accounts.py", "anvil.py", "contracts/DevnetAggregator.sol")


@dataclass(frozen=True)
class CacheEntry:
    key: str
    directory: Path

    @property
    def state_path(self) -> Path:
        return self.directory / "state.json.gz"

    @property
    def market_path(self) -> Path:
        return self.directory / "market.json"

    @property
    def borrowers_path(self) -> Path:
        return self.directory / "borrowers.json"

    def exists(self) -> bool:
        return self.state_path.is_file() and self.market_path.is_file() and self.borrowers_path.is_file()

    def market(self) -> Market:
        return load_market(self.market_path)

    def size_bytes(self) -> int:
        return self.state_path.stat().st_size


def code_fingerprint() -> str:
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in _SHAPING_SOURCES:
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:12]


def cache_key(borrowers: int, seed: int) -> str:
    packages = package_versions()
    return (
        f"aave-{packages['@aave/core-v3']}_anvil-{packages['@foundry-rs/anvil']}_n{borrowers}_s{seed}"
        f"_v{CACHE_FORMAT}-{code_fingerprint()}"
    )


def entry_for(data_dir: Path | str, borrowers: int, seed: int) -> CacheEntry:
    key = cache_key(borrowers, seed)
    return CacheEntry(key, devnet_dir(data_dir) / "cache" / key)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder per entry across processes (two test sessions may start at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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


def dump_state(rpc: Rpc, path: Path) -> int:
    """anvil_dumpState (gzip of JSON) -> traces cut -> gzip file. Returns the file size."""
    raw = gzip.decompress(bytes.fromhex(rpc.call("anvil_dumpState").removeprefix("0x")))
    with contextlib.suppress(ValueError):  # an unexpected layout keeps the full dump: bigger, still correct
        raw = strip_traces(raw)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(raw, compresslevel=6))
    tmp.replace(path)
    return path.stat().st_size


def build(
    data_dir: Path | str,
    borrowers: int,
    seed: int,
    progress: Callable[[str, int], None] | None = None,
) -> CacheEntry:
    """Deploy and seed on a private anvil, dump it, and store the entry (unless another process just did)."""
    check_packages()
    entry = entry_for(data_dir, borrowers, seed)
    with _locked(entry.directory.parent / f"{entry.key}.lock"):
        if entry.exists():
            return entry
        work = entry.directory.with_name(entry.directory.name + ".building")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        node = anvil.start()
        try:
            with Rpc(node.url) as rpc:
                rpc.call("anvil_setBlockTimestampInterval", anvil.BLOCK_TIME)
                market = deploy_market(rpc, data_dir)
                if progress:
                    progress("deployed", 0)
                record = BorrowerRecord()
                if borrowers:
                    result = seed_borrowers(
                        rpc, market, borrowers, seed, progress=(lambda k: progress("seeded", k)) if progress else None
                    )
                    record.add(seed, 0, result.users, result.blocks[1])
                market.save(work / "market.json")
                record.save(work / "borrowers.json")
                dump_state(rpc, work / "state.json.gz")
        finally:
            anvil.stop(node)
        shutil.rmtree(entry.directory, ignore_errors=True)
        work.rename(entry.directory)
        _drop_stale(entry, borrowers, seed)
    return entry


def _drop_stale(entry: CacheEntry, borrowers: int, seed: int) -> None:
    """Entries for the same (borrowers, seed) built by other code or package versions are dead weight."""
    for other in entry.directory.parent.glob(f"*_n{borrowers}_s{seed}_v*"):
        if other.is_dir() and other != entry.directory and not other.name.endswith(".building"):
            shutil.rmtree(other, ignore_errors=True)
            (other.parent / f"{other.name}.lock").unlink(missing_ok=True)


def ensure(
    data_dir: Path | str, borrowers: int, seed: int, progress: Callable[[str, int], None] | None = None
) -> tuple[CacheEntry, bool]:
    """The entry for (borrowers, seed), built on first use. Returns (entry, built_now)."""
    entry = entry_for(data_dir, borrowers, seed)
    if entry.exists():
        return entry, False
    return build(data_dir, borrowers, seed, progress), True


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
    plain.write_bytes(gzip.decompress(entry.state_path.read_bytes()))  # --load-state reads plain JSON only
    try:
        node = anvil.start(port, load_state=plain, detach=detach, prune_history=prune_history, log_path=log_path)
    finally:
        plain.unlink(missing_ok=True)
    try:
        with Rpc(node.url) as rpc:
            prepare_clock(rpc)
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
