"""What the new-block sensor does on one tick, decided without Dagster (so it is testable as a plain function).

The daemon ticks a sensor about every 5 s whatever its interval says (measured), and Base makes a block every
2 s: each tick sees 2-3 new blocks. One evaluation run covers every block since the cursor for the NEWEST block
(run key per block and block hash, so a retried tick never launches the same block twice). While an evaluation is
still running, the tick launches nothing and keeps its cursor: the next run then covers all the blocks that arrived
meanwhile (coalesced), instead of a queue of stale runs.

A restarted devnet (or a reorg) is a new chain under the same block numbers, so the cursor carries the hashes of
the blocks it launched runs for, and of the anchor (the first block with state, START_BLOCK or
STATE_HISTORY_FROM_BLOCK). A new chain is declared only on evidence, since what follows deletes data: a
remembered block now has another hash, or the head went more than LAG_TOLERANCE blocks below the cursor with no
remembered block up to the head still there. A node that does not serve a block yet (it answers null: another
backend of a provider, a little behind) or whose head is a few blocks below the cursor is waited for. On a new
chain the cursor goes back to the newest remembered block the chain still holds, the last block both chains share
(before START_BLOCK when there is none): the sensor has the lake and Redis forget what they hold past it
(evaluation/rewind.py) and the next run evaluates the new chain.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..lake.partitions import BlockRange, finished_ranges, range_of

KEEP = 16  # launched blocks remembered: 16 runs are ~40 blocks on Base, deeper than its reorgs
# How far a head may lag below the cursor, with nothing remembered up to it, and still be the same chain (a
# provider's backends differ by a block or two); a restarted devnet falls back by its whole run, tens of blocks.
LAG_TOLERANCE = 8

Hashes = Mapping[int, "str | None"]  # block -> its hash on the chain now (None: past the head)


@dataclass(frozen=True)
class Cursor:
    block: int  # last block a launched run covered
    seen: tuple[tuple[int, str], ...] = ()  # (block, hash) of launched blocks and the anchor, newest first

    @property
    def hash(self) -> str | None:
        return next((h for b, h in self.seen if b == self.block), None)

    @property
    def blocks(self) -> list[int]:
        return [b for b, _ in self.seen]

    def encode(self) -> str:
        return json.dumps({"block": self.block, "seen": [list(s) for s in self.seen]}, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | None) -> Cursor | None:
        if not text:
            return None
        if text.lstrip("-").isdigit():  # written before cursors carried hashes
            return cls(int(text))
        data = json.loads(text)
        return cls(int(data["block"]), tuple((int(b), str(h)) for b, h in data.get("seen", [])))


@dataclass(frozen=True)
class TickPlan:
    cursor: Cursor  # after this tick
    evaluate_block: int | None  # newest block to evaluate, None = nothing to launch
    from_block: int | None  # first block the run must cover
    run_key: str | None
    new_partitions: list[str] = field(default_factory=list)
    skipped_reason: str = ""
    block_hash: str | None = None  # of evaluate_block
    rewound_to: int | None = None  # the chain changed: what the platform holds past this block is forgotten
    notice: str = ""  # one line for the log when the chain changed


def hashes_needed(cursor: Cursor | None, head: int, hashes: Hashes, anchor: int | None = None) -> list[int]:
    """Blocks (up to the head) whose hash `plan_tick` needs and `hashes` lacks: the cursor's block and the anchor,
    then, once the cursor's block turned out to be gone, every block the cursor remembers."""
    wanted = []
    if anchor is not None and (cursor is None or anchor not in cursor.blocks):
        wanted.append(anchor)
    if cursor is not None:
        wanted.append(cursor.block)
        now = hashes.get(cursor.block)
        if head < cursor.block or (cursor.hash is not None and now is not None and now != cursor.hash):
            wanted += cursor.blocks
    return sorted({b for b in wanted if 0 <= b <= head and b not in hashes}, reverse=True)


def _verdict(cursor: Cursor, head: int, hashes: Hashes, anchor: int | None) -> str:
    """ "same", "behind" (the node lags: wait) or "new" (evidence of another chain) for the chain under `cursor`."""
    if cursor.block <= head:
        now = hashes.get(cursor.block)
        if cursor.hash is None:  # a cursor written before hashes were kept: nothing to compare
            return "same"
        if now is None:
            return "behind"  # the head's backend has the block, the one asked for it not yet
        return "same" if now == cursor.hash else "new"
    for block, block_hash in cursor.seen:  # newest first
        now = hashes.get(block) if block <= head else None
        if now is None:
            continue
        if now != block_hash:
            return "new"
        if block != anchor:  # a restarted devnet holds the anchor too: only a launched block tells
            return "behind"
    return "behind" if cursor.block - head <= LAG_TOLERANCE else "new"


def plan_tick(
    cursor: Cursor | None,
    head: int,
    known_partitions: set[str],
    evaluation_in_flight: bool,
    range_size: int,
    confirmations: int,
    start_block: int = 0,
    *,
    hashes: Hashes | None = None,
    anchor: int | None = None,
) -> TickPlan:
    """cursor: None on the first tick; head: the chain's latest block; hashes: at least what `hashes_needed`
    asks for, and the head's (without hashes nothing is checked and run keys are per block only)."""
    hashes = dict(hashes or {})
    wanted = [r.key for r in finished_ranges(head, confirmations, range_size, start_block)]
    current: BlockRange = range_of(head, range_size)
    wanted.append(current.key)  # the open range holds this block's candidates
    new_partitions = sorted(k for k in dict.fromkeys(wanted) if k not in known_partitions)

    rewound_to, notice = None, ""
    verdict = _verdict(cursor, head, hashes, anchor) if cursor is not None and hashes else "same"
    if verdict == "behind":
        reason = f"the node is behind (head {head}): it does not serve the cursor's block {cursor.block} yet; waiting"
        return TickPlan(cursor, None, None, None, new_partitions, reason)
    if verdict == "new":
        if evaluation_in_flight:
            reason = f"the chain no longer holds block {cursor.block}: waiting for the evaluation in flight"
            return TickPlan(cursor, None, None, None, new_partitions, reason)
        rewound_to = _common_ancestor(cursor, head, hashes, start_block)
        now = hashes.get(cursor.block) if cursor.block <= head else None
        found = (
            f"block {cursor.block} is now {now}, was {cursor.hash}" if now else f"head {head} < cursor {cursor.block}"
        )
        back = (
            f"back to block {rewound_to}, the last block both chains hold"
            if rewound_to >= start_block
            else f"no block it remembers is on it: starting over from block {start_block}"
        )
        notice = f"new chain ({found}): {back}; the lake and Redis forget every later block"
        cursor = Cursor(rewound_to, tuple(s for s in cursor.seen if s[0] <= rewound_to))

    last = head - 1 if cursor is None else cursor.block
    seen = cursor.seen if cursor is not None else ()
    if head <= last:
        kept = Cursor(last, _remember(seen, (), hashes, anchor))
        return TickPlan(kept, None, None, None, new_partitions, "no new block", rewound_to=rewound_to, notice=notice)
    if evaluation_in_flight:
        kept = Cursor(last, _remember(seen, (), hashes, anchor))
        reason = "an evaluation is running: coalescing"
        return TickPlan(kept, None, None, None, new_partitions, reason, rewound_to=rewound_to, notice=notice)
    head_hash = hashes.get(head)
    launched = ((head, head_hash),) if head_hash else ()
    run_key = f"evaluate-{head}-{head_hash[2:10]}" if head_hash else f"evaluate-{head}"
    return TickPlan(
        Cursor(head, _remember(seen, launched, hashes, anchor)),
        head,
        last + 1,
        run_key,
        new_partitions,
        block_hash=head_hash,
        rewound_to=rewound_to,
        notice=notice,
    )


def _common_ancestor(cursor: Cursor, head: int, hashes: Hashes, start_block: int) -> int:
    for block, block_hash in cursor.seen:
        if block <= head and hashes.get(block) == block_hash:
            return block
    return start_block - 1


def _remember(
    seen: tuple[tuple[int, str], ...], launched: tuple[tuple[int, str], ...], hashes: Hashes, anchor: int | None
) -> tuple[tuple[int, str], ...]:
    """The newest KEEP launched blocks, and the anchor (with its hash on this chain) however old."""
    entries = dict(seen)
    entries.update(launched)
    anchor_hash = hashes.get(anchor) if anchor is not None else None
    if anchor_hash and anchor not in entries:
        entries[anchor] = anchor_hash
    recent = sorted((b for b in entries if b != anchor), reverse=True)[:KEEP]
    kept = [*recent, anchor] if anchor in entries else recent
    return tuple((b, entries[b]) for b in sorted(kept, reverse=True))
