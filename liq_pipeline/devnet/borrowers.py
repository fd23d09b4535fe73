"""The record of seeded borrowers (<DATA_DIR>/devnet/borrowers.json): who was created, from which seed.

Borrower addresses are a function of (seed, index); the record tells the next `seed` call where to continue so
that a second `liq devnet seed` creates new borrowers instead of topping up the same ones.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class BorrowerRecord:
    # {"namespace", "seed", "start", "count", "block"}: who was created by which call
    segments: list[dict[str, int | str]] = field(default_factory=list)
    users: list[str] = field(default_factory=list)

    def next_index(self, seed: int, namespace: str = "borrower") -> int:
        return sum(
            int(s["count"]) for s in self.segments if s["seed"] == seed and s.get("namespace", "borrower") == namespace
        )

    def add(self, seed: int, start: int, users: list[str], block: int, namespace: str = "borrower") -> None:
        self.segments.append(
            {"namespace": namespace, "seed": seed, "start": start, "count": len(users), "block": block}
        )
        self.users.extend(users)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> BorrowerRecord:
        if not path.is_file():
            return cls()
        raw = json.loads(path.read_text())
        return cls(segments=list(raw.get("segments", [])), users=list(raw.get("users", [])))
