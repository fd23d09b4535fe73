"""The devnet's two markets, by protocol version: V3.6 (an L2Pool from @aave-dao/aave-v3-origin 3.6.0, v36/, the
default: the closest to Base, which runs 3.7) and V3.0 (@aave/core-v3 1.19.3). What differs between them for the
devnet's own code is here: deploying, seeding, and what the state cache keys an entry by."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from . import dex
from .deploy import deploy_market
from .errors import DevnetError
from .market import Market
from .paths import check_packages as check_v30
from .paths import package_version
from .rpc import Rpc
from .seed import SeedResult, seed
from .v36.build import AAVE_PACKAGE, PACKAGES, build_key
from .v36.build import check_packages as check_v36
from .v36.bulk import seed as seed_v36
from .v36.deploy import deploy_v36_market

DEFAULT_PROTOCOL = "3.6"
PROTOCOLS = ("3.0", "3.6")
V36_EXTRAS = "v36.json"  # next to market.json: the V3.6 extras (L2Encoder, e-mode bitmaps, build key)
DEX_JSON = "dex.json"  # next to market.json: the Uniswap V2 DEX deployed after the market and its borrowers
# Source files (relative to this package) whose content decides what a deployed + seeded chain looks like.
_SHARED_SOURCES = (
    "spec.py",
    "deploying.py",
    "seed.py",
    "accounts.py",
    "anvil.py",
    "contracts/DevnetAggregator.sol",
    "dex.py",  # the DEX every cached chain ends with, and its maths
    "../risk/amm.py",
)
SHAPING_SOURCES: dict[str, tuple[str, ...]] = {
    "3.0": (*_SHARED_SOURCES, "deploy.py"),
    # v36/spec.py's dataclasses extend spec.py's
    "3.6": (*_SHARED_SOURCES, "v36/spec.py", "v36/deploy.py", "v36/seasoning.py", "v36/build.py", "v36/bulk.py"),
}


class Seeder(Protocol):
    def __call__(
        self,
        rpc: Rpc,
        market: Market,
        n_borrowers: int,
        seed: int = 0,
        *,
        start_index: int = 0,
        progress: Callable[[int], None] | None = None,
        on_block: Callable[[int], None] | None = None,
    ) -> SeedResult: ...


def check_protocol(value: str | None) -> str:
    """'3.0' or '3.6' ('v3.6', '3.6.0' accepted); DevnetError for anything else."""
    text = str(value if value is not None else DEFAULT_PROTOCOL).strip().lower().removeprefix("v")
    if text.count(".") == 2:
        text = text.rsplit(".", 1)[0]
    if text not in PROTOCOLS:
        raise DevnetError(f"the devnet runs Aave V3.0 or V3.6: --protocol 3.0 or 3.6, not {value!r}")
    return text


def deploy(rpc: Rpc, data_dir: Path | str, protocol: str) -> tuple[Market, Callable[[Path], None]]:
    """Deploy the market of `protocol`; returns it and a function writing its description into a directory
    (market.json, and v36.json for V3.6)."""
    if check_protocol(protocol) == "3.0":
        market = deploy_market(rpc, data_dir)

        def save(directory: Path) -> None:
            market.save(Path(directory) / "market.json")

        return market, save

    deployment = deploy_v36_market(rpc, data_dir)

    def save_v36(directory: Path) -> None:
        deployment.save(directory)

    return deployment.market, save_v36


def seeder(market: Market) -> Seeder:
    """The bulk seeder for the market's protocol version (same signature and result)."""
    if check_protocol(market.protocol_version) == "3.0":
        return seed

    return seed_v36


def cache_tag(protocol: str) -> str:
    """What identifies the contracts in a state cache key: the npm package version (3.0), or the V3.6 build key
    (packages, targets, compiler settings)."""
    if check_protocol(protocol) == "3.0":
        return f"aave-{package_version('@aave/core-v3')}"

    return f"aave-v{PACKAGES[AAVE_PACKAGE]}-{build_key()}"


def code_fingerprint(protocol: str) -> str:
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in SHAPING_SOURCES[check_protocol(protocol)]:
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:12]


def check_packages(protocol: str) -> None:
    check_v30()  # anvil is pinned there, and the feed's compiler comes with it
    if package_version(dex.PACKAGE) != dex.PACKAGE_VERSION:
        raise DevnetError(
            f"npm {dex.PACKAGE} {package_version(dex.PACKAGE)} is installed, {dex.PACKAGE_VERSION} expected: "
            "run `make setup`"
        )
    if check_protocol(protocol) == "3.6":
        check_v36()


def read_extras(directory: Path) -> dict | None:
    path = Path(directory) / V36_EXTRAS
    return json.loads(path.read_text()) if path.is_file() else None
