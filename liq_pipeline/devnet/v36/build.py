"""Compile the Aave V3.6 market contracts from npm sources with solc-js 0.8.27, once, into <DATA_DIR>.

The sources are npm @aave-dao/aave-v3-origin 3.6.0 (BUSL-1.1) with @bgd-labs/solidity-utils 1.1.2 and
OpenZeppelin 5.1.0, installed by `npm ci`; the compiler is npm `solc-0.8.27` (an alias of solc@0.8.27, next to
the V3.0 devnet's solc 0.8.24). Settings follow aave-v3-origin's foundry profile as far as the market needs:
optimizer 200 runs, evmVersion shanghai, no IR, metadata hash off (bytecode independent of paths).

The output (ABI, creation bytecode, link references per contract) is cached in
<DATA_DIR>/devnet/build/aave-v3.6.0-<key>/artifacts.json, `key` a hash of package versions, targets and
settings: a cold build takes ~20 s and ~300 MB of Node memory, a cached one well under a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..artifacts import Artifact
from ..errors import DevnetError
from ..locks import locked
from ..paths import build_root, node_modules, package_version
from ..solc import run_solc_js

AAVE_PACKAGE = "@aave-dao/aave-v3-origin"
SOLC_PACKAGE = "solc-0.8.27"  # npm alias of solc@0.8.27 (package.json)
# npm name -> exact version; package.json pins the same.
PACKAGES: dict[str, str] = {
    AAVE_PACKAGE: "3.6.0",
    "@bgd-labs/solidity-utils": "1.1.2",
    "@openzeppelin/contracts": "5.1.0",
    "@openzeppelin/contracts-upgradeable": "5.1.0",
    SOLC_PACKAGE: "0.8.27",
}
SOURCE_ROOT = f"{AAVE_PACKAGE}/src/contracts/"
# The files whose contracts the market deploys (paths under SOURCE_ROOT).
TARGETS: tuple[str, ...] = (
    "protocol/configuration/PoolAddressesProvider.sol",
    "protocol/configuration/ACLManager.sol",
    "instances/L2PoolInstance.sol",
    "instances/PoolConfiguratorInstance.sol",
    "instances/ATokenInstance.sol",
    "instances/VariableDebtTokenInstance.sol",
    "misc/AaveOracle.sol",
    "misc/DefaultReserveInterestRateStrategyV2.sol",
    "helpers/AaveProtocolDataProvider.sol",
    "helpers/L2Encoder.sol",
    "protocol/libraries/logic/BorrowLogic.sol",
    "protocol/libraries/logic/FlashLoanLogic.sol",
    "protocol/libraries/logic/LiquidationLogic.sol",
    "protocol/libraries/logic/PoolLogic.sol",
    "protocol/libraries/logic/SupplyLogic.sol",
    "protocol/libraries/logic/ConfiguratorLogic.sol",
    "mocks/tokens/MintableERC20.sol",
)
REMAPPINGS: tuple[str, ...] = (
    "openzeppelin-contracts-upgradeable/contracts/=@openzeppelin/contracts-upgradeable/",
    "openzeppelin-contracts/contracts/=@openzeppelin/contracts/",
    "solidity-utils/=@bgd-labs/solidity-utils/src/",
)
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "shanghai",
    "metadata": {"bytecodeHash": "none"},
    "remappings": list(REMAPPINGS),
}
_OUTPUTS = ["abi", "evm.bytecode.object", "evm.bytecode.linkReferences"]
BUILD_FORMAT = 1  # bump when artifacts.json changes shape

# solc-js standard JSON with an import callback that reads node_modules (imports are npm-style after remapping).
_DRIVER = r"""
const fs = require('fs');
const path = require('path');
const solc = require(process.argv[1]);
const root = process.argv[2];
let input = '';
process.stdin.on('data', (chunk) => (input += chunk));
process.stdin.on('end', () => {
  const findImports = (p) => {
    const file = path.join(root, p);
    if (!file.startsWith(root + path.sep) || !fs.existsSync(file)) return { error: 'not found: ' + p };
    return { contents: fs.readFileSync(file, 'utf8') };
  };
  process.stdout.write(solc.compile(input, { import: findImports }));
});
"""


@dataclass(frozen=True)
class Artifacts:
    """Compiled contracts by name, ready to link (`artifact.linked(libraries)`) and deploy."""

    contracts: Mapping[str, Artifact]
    path: Path  # the artifacts.json they were read from
    key: str
    from_cache: bool
    seconds: float  # build (or cache read) time

    def __getitem__(self, name: str) -> Artifact:
        try:
            return self.contracts[name]
        except KeyError:
            raise DevnetError(f"contract {name} is not in the V3.6 build ({self.path})") from None

    def abi(self, name: str) -> list[dict[str, Any]]:
        return self[name].abi


def check_packages() -> dict[str, str]:
    """The pinned npm packages must be installed at their exact versions; returns them."""
    for name, expected in PACKAGES.items():
        found = package_version(name)
        if found != expected:
            raise DevnetError(f"npm {name} {found} is installed, {expected} expected: run `make setup`")
    return dict(PACKAGES)


def build_key() -> str:
    blob = json.dumps([BUILD_FORMAT, PACKAGES, TARGETS, SETTINGS, _OUTPUTS], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_dir(data_dir: Path | str) -> Path:
    return build_root(data_dir) / f"aave-v{PACKAGES[AAVE_PACKAGE]}-{build_key()}"


def build_v36(data_dir: Path | str, *, timeout: float = 600.0) -> Artifacts:
    """The V3.6 market contracts, compiled on first use (one process at a time per data dir), then cached."""
    started = time.perf_counter()
    check_packages()
    directory = build_dir(data_dir)
    path = directory / "artifacts.json"
    if not path.is_file():
        with locked(directory.parent / f"{directory.name}.lock"):
            if not path.is_file():  # another process may have built it while we waited
                _compile_to(path, timeout)
                return _read(path, from_cache=False, started=started)
    return _read(path, from_cache=True, started=started)


def _read(path: Path, *, from_cache: bool, started: float) -> Artifacts:
    raw = json.loads(path.read_text())
    contracts = {
        name: Artifact(name=name, abi=c["abi"], bytecode=c["bytecode"], link_references=c["link_references"])
        for name, c in raw["contracts"].items()
    }
    return Artifacts(contracts, path, raw["key"], from_cache, time.perf_counter() - started)


def standard_input() -> dict[str, Any]:
    root = node_modules()
    sources = {SOURCE_ROOT + t: {"content": (root / (SOURCE_ROOT + t)).read_text()} for t in TARGETS}
    selection = {name: {"*": _OUTPUTS} for name in sources}
    return {"language": "Solidity", "sources": sources, "settings": {**SETTINGS, "outputSelection": selection}}


def _compile_to(path: Path, timeout: float) -> None:
    solc = node_modules() / SOLC_PACKAGE
    messages = (
        f"could not run solc-js {PACKAGES[SOLC_PACKAGE]} on the V3.6 sources",
        "solc-js failed on the V3.6 sources",
        "the V3.6 sources do not compile",
    )
    output = run_solc_js(
        [_DRIVER, str(solc), str(node_modules())],
        json.dumps(standard_input()),
        timeout=timeout,
        messages=messages,
        stderr=slice(-500, None),
        catch=(OSError, subprocess.TimeoutExpired),
    )
    contracts: dict[str, dict[str, Any]] = {}
    for file, by_name in output["contracts"].items():
        for name, c in by_name.items():
            code = c["evm"]["bytecode"]["object"]
            if not code:  # interfaces and abstract contracts
                continue
            if name in contracts:
                raise DevnetError(f"two V3.6 contracts are named {name} (second in {file})")
            contracts[name] = {
                "abi": c["abi"],
                "bytecode": "0x" + code,
                "link_references": c["evm"]["bytecode"].get("linkReferences", {}),
                "source": file,
            }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"key": build_key(), "packages": PACKAGES, "settings": SETTINGS, "contracts": contracts}))
    tmp.replace(path)  # atomic: a reader never sees half a file
