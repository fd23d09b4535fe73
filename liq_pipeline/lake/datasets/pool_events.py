"""pool_events: every Pool, aToken / debt-token and AaveOracle event of the market in the range, decoded, with
the timestamp of its block. The source of the borrower set (`borrowers_from_events`) and of liquidations."""

from __future__ import annotations

import polars as pl

from ...chain.discovery import Market, ReaderError
from ...chain.events import EVENT_SCHEMA, fetch_events
from ...chain.rpc import RpcClient
from ...risk.versions import ProtocolRules
from ..blocks import block_timestamps, timestamps_frame
from ..errors import DatasetError
from ..spec import DatasetSpec

NAME = "pool_events"
SCHEMA = {**EVENT_SCHEMA, "block_timestamp": pl.Int64}
# BalanceTransfer gives two rows for one log (sender and receiver): the user completes the key.
SPEC = DatasetSpec(NAME, SCHEMA, key=("block_number", "log_index", "user"))


def build_pool_events(
    rpc: RpcClient, market: Market, rules: ProtocolRules, start: int, end: int, *, chunk_blocks: int = 1_000
) -> pl.DataFrame:
    # the range's last block first: a node that has not mined it yet answers eth_getLogs with the blocks it has,
    # which would store a range with its end missing
    known = block_timestamps(rpc, [end], NAME)
    try:
        events = fetch_events(rpc, market, start, end, chunk_blocks=chunk_blocks)
    except ReaderError as error:
        raise DatasetError.wrap(NAME, error) from None
    known |= block_timestamps(rpc, set(events["block_number"].unique().to_list()) - set(known), NAME)
    return events.join(timestamps_frame(known), on="block_number", how="left").select(list(SCHEMA))
