"""liquidation_executions: one row per executor attempt (issue #13), from the market's Redis Stream of attempts.

The executor (`execution/records.py`, `AttemptRecorder`) appends the whole record of an attempt to
`liq:{<chain>:<pool>}:execution:attempts` when it decides (outcome `sent`, `dry_run` or `skipped`) and again, whole,
each time its outcome changes (`sent` -> `included`, `lost`, ...): the last record of an attempt key is the attempt.
This module owns the record's columns (the executor imports them: the lake is below execution/ in the layers), reads
the stream, builds a block range's rows (by `block_seen`), and holds the checks' arithmetic, pure.

Amounts: `debt_to_cover` and `expected_profit_debt` are uint256 in the debt asset's units, kept as decimal strings
(Decimal(38, 0) cannot hold every uint256); the fees in wei are Int128 (stored as Decimal(38, 0)).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import polars as pl
import redis

from ...cache.keys import PREFIX, MarketKeys
from ..spec import DatasetSpec

NAME = "liquidation_executions"

# Outcomes. `sent` is the only one that is not final: the transaction is out, its fate unknown yet.
SENT = "sent"
DRY_RUN = "dry_run"
INCLUDED = "included"
REVERTED = "reverted"
REPLACED = "replaced"  # our nonce was used by a transaction the executor did not send
DROPPED = "dropped"  # left the mempool, never included
LOST = "lost"  # a competitor liquidated first (competitor_tx, competitor, lost_by_blocks say who and by how much)
CANCELLED = "cancelled"  # the opportunity went away: replaced by a 0-value self-transfer at the same nonce
SKIPPED = "skipped"  # nothing sent: claim taken or refused, verification failed, not profitable
FINAL_OUTCOMES: tuple[str, ...] = (DRY_RUN, INCLUDED, REVERTED, REPLACED, DROPPED, LOST, CANCELLED, SKIPPED)
OUTCOMES: tuple[str, ...] = (SENT, *FINAL_OUTCOMES)
# Transactions that reached the node, their fate known: the denominator of the revert share.
SENT_OUTCOMES: tuple[str, ...] = (INCLUDED, REVERTED, REPLACED, DROPPED, LOST, CANCELLED)
MODES: tuple[str, ...] = ("dry_run", "live")
TRIGGERS: tuple[str, ...] = ("sealed", "pending")  # a sealed block's evaluation; a price update before its block

SCHEMA: dict[str, pl.DataType] = {
    "chain_id": pl.Int64,
    "pool": pl.String,
    "attempt_key": pl.String,
    "mode": pl.String,
    "trigger": pl.String,
    "block_seen": pl.Int64,
    "seen_at": pl.Float64,
    "sent_at": pl.Float64,
    "block_sent": pl.Int64,
    "user": pl.String,
    "collateral_asset": pl.String,
    "debt_asset": pl.String,
    "debt_to_cover": pl.String,
    "expected_profit_usd": pl.Float64,
    "expected_profit_debt": pl.String,
    "gas_limit": pl.Int64,
    "priority_fee_wei": pl.Int128,
    "max_fee_wei": pl.Int128,
    "l1_fee_wei": pl.Int128,
    "tx_hash": pl.String,
    "nonce": pl.Int64,
    "replacements": pl.Int64,
    "outcome": pl.String,
    "block_included": pl.Int64,
    "gas_used": pl.Int64,
    "realized_profit_usd": pl.Float64,
    "competitor_tx": pl.String,
    "competitor": pl.String,
    "lost_by_blocks": pl.Int64,
    "reason": pl.String,
}
KEY: tuple[str, ...] = ("chain_id", "pool", "attempt_key")
SPEC = DatasetSpec(NAME, SCHEMA, key=KEY, block_column="block_seen")

# One opportunity (the idempotency guard's: execution/idempotency.py `Opportunity`).
OPPORTUNITY: tuple[str, ...] = ("chain_id", "pool", "user", "debt_asset", "collateral_asset")

STREAM_NAME = "execution:attempts"
NULL = ""  # a missing value in a stream entry (every field is a string there)
_STREAM_KEY_RE = re.compile(rf"^{PREFIX}:\{{(\d+):(0x[0-9a-f]{{40}})\}}:{STREAM_NAME}$")
_READ_CHUNK = 10_000


def stream_key(keys: MarketKeys) -> str:
    """`liq:{<chain>:<pool>}:execution:attempts`: the market's STREAM of attempt records (field per column)."""
    return keys.key(STREAM_NAME)


def markets_with_records(client: redis.Redis, chain_id: int | None = None) -> list[MarketKeys]:
    """Every market whose attempts stream exists (SCAN, never KEYS), optionally of one chain only."""
    found = set()
    for raw in client.scan_iter(match=f"{PREFIX}:{{*}}:{STREAM_NAME}", count=1000, _type="stream"):
        match = _STREAM_KEY_RE.match(raw.decode() if isinstance(raw, bytes) else raw)
        if match and (chain_id is None or int(match[1]) == chain_id):
            found.add(MarketKeys.for_market(int(match[1]), match[2]))
    return sorted(found, key=lambda keys: (keys.chain_id, keys.pool))


def read_records(client: redis.Redis, keys: MarketKeys) -> Iterator[dict[str, str]]:
    """The stream's entries, oldest first, as {column: string} (read in chunks: the stream is bounded but long)."""
    key, after = stream_key(keys), "-"
    while True:
        chunk = client.xrange(key, min=after, count=_READ_CHUNK)
        for _entry_id, fields in chunk:
            yield {_text(k): _text(v) for k, v in fields.items()}
        if len(chunk) < _READ_CHUNK:
            return
        after = "(" + _text(chunk[-1][0])


def build_liquidation_executions(entries: Iterable[dict[str, str]], start: int, end: int) -> pl.DataFrame:
    """The attempts whose `block_seen` lies in [start, end]: the LAST record of each (chain, pool, attempt key)."""
    rows = []
    for fields in entries:
        block = fields.get("block_seen", NULL)
        if block != NULL and start <= int(block) <= end:
            rows.append({name: (None if fields.get(name, NULL) == NULL else fields[name]) for name in SCHEMA})
    if not rows:
        return SPEC.empty()
    frame = pl.DataFrame(rows, schema={name: pl.String for name in SCHEMA}).cast(SCHEMA)
    return frame.unique(subset=list(KEY), keep="last", maintain_order=True).sort(list(KEY))


# --- the checks' arithmetic (pure) ---------------------------------------------------------------------------------


def duplicate_attempts(frame: pl.DataFrame, window_sec: float) -> pl.DataFrame:
    """Attempts of one opportunity (market, user, debt, collateral) seen less than `window_sec` after the previous
    attempt of it: each should have been refused by the idempotency claim (its TTL is the window). Attempts that
    sent nothing (`skipped`) are left out. Columns: the opportunity, attempt_key, previous_key, seen_at, gap_sec."""
    acted = frame.filter(pl.col("outcome") != SKIPPED).sort([*OPPORTUNITY, "seen_at", "attempt_key"])
    with_previous = acted.with_columns(
        previous_key=pl.col("attempt_key").shift(1).over(OPPORTUNITY),
        gap_sec=(pl.col("seen_at") - pl.col("seen_at").shift(1)).over(OPPORTUNITY),
    )
    return with_previous.filter(pl.col("gap_sec").is_not_null() & (pl.col("gap_sec") < window_sec)).select(
        *OPPORTUNITY, "attempt_key", "previous_key", "seen_at", "gap_sec"
    )


def profit_deviations(frame: pl.DataFrame, tolerance: float) -> pl.DataFrame:
    """Included attempts whose realized profit is off its expected by more than `tolerance` (0.01 = 1 %) of the
    expected, or unknown. Columns: attempt_key, tx_hash, expected_profit_usd, realized_profit_usd, deviation."""
    included = frame.filter(pl.col("outcome") == INCLUDED).with_columns(
        deviation=(pl.col("realized_profit_usd") - pl.col("expected_profit_usd")).abs()
        / pl.col("expected_profit_usd").abs()
    )
    off = pl.col("realized_profit_usd").is_null() | ~(
        (pl.col("realized_profit_usd") - pl.col("expected_profit_usd")).abs()
        <= tolerance * pl.col("expected_profit_usd").abs()
    )
    columns = ("attempt_key", "tx_hash", "expected_profit_usd", "realized_profit_usd", "deviation")
    return included.filter(off).select(columns)


def revert_share(frame: pl.DataFrame) -> tuple[float | None, int, int]:
    """(reverted / sent, reverted, sent) over the transactions whose fate is known (SENT_OUTCOMES); None when none
    was sent. A transaction that reverted because a competitor was first is `lost`, not `reverted`."""
    sent = frame.filter(pl.col("outcome").is_in(SENT_OUTCOMES))
    reverted = sent.filter(pl.col("outcome") == REVERTED).height
    return (reverted / sent.height if sent.height else None), reverted, sent.height


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
