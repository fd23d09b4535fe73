"""Hardhat artifacts of @aave/core-v3: ABI and creation bytecode, with external libraries linked in.

`linkReferences` give BYTE offsets into the bytecode; in the hex string a byte offset `start` sits at character
2 * start (after the 0x). Each reference is a 40-hex-character placeholder `__$<34 hex>$__`. After linking no
placeholder may remain, or the deployment would fail with an opaque error far from the cause.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .errors import DevnetError
from .paths import node_modules

_PLACEHOLDER = re.compile(r"__\$[0-9a-fA-F]{34}\$__")


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str  # 0x-prefixed creation code, possibly with library placeholders
    link_references: dict[str, dict[str, list[dict[str, int]]]]

    @property
    def libraries(self) -> list[str]:
        return sorted(name for names in self.link_references.values() for name in names)

    def linked(self, libraries: dict[str, str]) -> str:
        """Creation bytecode with every library reference replaced by its deployed address."""
        code = self.bytecode.removeprefix("0x")
        for names in self.link_references.values():
            for name, refs in names.items():
                if name not in libraries:
                    raise DevnetError(f"{self.name} needs library {name}, which is not deployed yet")
                address = libraries[name].lower().removeprefix("0x")
                for ref in refs:
                    start, length = 2 * ref["start"], 2 * ref["length"]
                    if length != 40 or not _PLACEHOLDER.fullmatch(code[start : start + length]):
                        raise DevnetError(f"{self.name}: no library placeholder at byte {ref['start']} for {name}")
                    code = code[:start] + address + code[start + length :]
        if _PLACEHOLDER.search(code):
            raise DevnetError(f"{self.name}: unlinked library placeholder left in the bytecode")
        return "0x" + code


def artifacts_root() -> Path:
    return node_modules() / "@aave" / "core-v3" / "artifacts" / "contracts"


@cache
def _index() -> dict[str, Path]:
    """Contract name -> artifact path (debug files excluded). Names are unique in @aave/core-v3."""
    index: dict[str, Path] = {}
    for path in artifacts_root().rglob("*.json"):
        if not path.name.endswith(".dbg.json"):
            index.setdefault(path.stem, path)
    return index


@cache
def load(name: str) -> Artifact:
    path = _index().get(name)
    if path is None:
        raise DevnetError(f"artifact {name} not found under {artifacts_root()}")
    raw = json.loads(path.read_text())
    return Artifact(
        name=raw["contractName"],
        abi=raw["abi"],
        bytecode=raw["bytecode"],
        link_references=raw.get("linkReferences", {}),
    )
