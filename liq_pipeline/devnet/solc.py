"""Compile the devnet's own Solidity (the price feed, Multicall3) and the project's (liq_pipeline/contracts/: the
liquidator) with npm `solc` (solcjs) run by the venv's Node.

Nothing binary is downloaded or committed: the source lives in contracts/, the compiler is pinned in
package.json, and the output is cached in <DATA_DIR>/devnet/build under a hash of source, compiler and settings,
so it is compiled once (~0.1-1 s) and reproducibly.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DevnetError
from .paths import SOLC_VERSION, build_root, node_binary, node_modules, package_version

CONTRACTS_DIR = Path(__file__).parent / "contracts"
_SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "metadata": {"bytecodeHash": "none"},  # bytecode independent of file paths and comments' IPFS hash
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
}
# solcjs's compile() takes and returns standard JSON as strings.
_DRIVER = """
const solc = require(process.argv[1]);
let input = '';
process.stdin.on('data', (chunk) => (input += chunk));
process.stdin.on('end', () => process.stdout.write(solc.compile(input)));
"""


@dataclass(frozen=True)
class Compiled:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str  # 0x-prefixed creation code


def run_solc_js(
    args: list[str],
    standard_input: str,
    *,
    timeout: float,
    messages: tuple[str, str, str],
    stderr: slice,
    catch: tuple[type[Exception], ...] = (OSError,),
) -> dict[str, Any]:
    """solc-js's standard JSON output: `node -e *args` (a driver script and its arguments) fed `standard_input`.

    DevnetError, its text from `messages` (could not run, the compiler failed, the sources do not compile), when
    running raises one of `catch`, when the compiler exits non-zero (with that `stderr` excerpt), or on the first
    compile error."""
    cannot_run, failed, invalid = messages
    try:
        done = subprocess.run(
            [str(node_binary()), "-e", *args],
            input=standard_input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except catch as error:
        raise DevnetError(f"{cannot_run}: {error}") from None
    if done.returncode != 0:
        raise DevnetError(f"{failed}: {done.stderr.strip()[stderr]}")
    output = json.loads(done.stdout)
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise DevnetError(f"{invalid}: {errors[0].get('formattedMessage', errors[0])}")
    return output


def compile_contract(name: str, data_dir: Path | str) -> Compiled:
    """contracts/<name>.sol compiled, from the cache when source, compiler and settings are unchanged."""
    return compile_source(CONTRACTS_DIR / f"{name}.sol", data_dir)


def compile_source(source_path: Path | str, data_dir: Path | str, name: str | None = None) -> Compiled:
    """The contract `name` (default: the file's stem) of one self-contained Solidity file, compiled and cached in
    <DATA_DIR>/devnet/build under <name>.<hash of source, compiler, settings>.json."""
    source_path = Path(source_path)
    name = name or source_path.stem
    source = source_path.read_text()
    version = package_version("solc")
    if version != SOLC_VERSION:
        raise DevnetError(f"npm solc {version} is installed, {SOLC_VERSION} expected: run `make setup`")
    key = hashlib.sha256(json.dumps([source, version, _SETTINGS], sort_keys=True).encode()).hexdigest()[:16]
    cache_path = build_root(data_dir) / f"{name}.{key}.json"
    if cache_path.is_file():
        cached = json.loads(cache_path.read_text())
        return Compiled(name=name, abi=cached["abi"], bytecode=cached["bytecode"])

    unit = source_path.name
    standard_input = {"language": "Solidity", "sources": {unit: {"content": source}}, "settings": _SETTINGS}
    messages = (
        f"could not run node to compile {unit}",
        f"solcjs failed on {unit}",
        f"{unit} does not compile",
    )
    solc = str(node_modules() / "solc")
    output = run_solc_js(
        [_DRIVER, solc], json.dumps(standard_input), timeout=300, messages=messages, stderr=slice(None, 300)
    )
    contract = output["contracts"][unit].get(name)
    if contract is None:
        raise DevnetError(f"{source_path} has no contract {name}")
    compiled = Compiled(name=name, abi=contract["abi"], bytecode="0x" + contract["evm"]["bytecode"]["object"])
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    # one temporary file per process: two compiling the same contract at once (test processes) each rename a whole
    # file of their own; the rename is atomic, so a parallel run never reads half a file
    tmp = cache_path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"abi": compiled.abi, "bytecode": compiled.bytecode, "solc": version}))
    tmp.replace(cache_path)
    return compiled
