"""Which liquidations of an arena run a price update caused (issue #15: `win_rate_price_triggered`), by the chain.

A liquidation of user u in block L is one opportunity. Its crossing block C is the first block after u's previous
liquidation at which the watcher found u below HF 1, or L itself when it never did (a liquidation sent before the
block that made u liquidatable was sealed: the pre-confirmation lane's, a pre-confirmation competitor's). The
watcher only names the candidate block; the chain decides: the opportunity is price-triggered when u was healthy at
the end of block C - 1 (getUserAccountData at that block) and block C carries an AnswerUpdated of the feed of the
liquidated pair's collateral or debt asset. What is not: the rest of a position after a close (u below 1 at C - 1),
a crossing by interest alone (no update of its assets in C).
"""

from __future__ import annotations

from collections import defaultdict

from ..chain.abi import event_topic, events
from ..chain.pending import ANSWER_UPDATED
from ..devnet.actions import account_data

LIQUIDATION_CALL = events("Pool")[event_topic("Pool", "LiquidationCall")]
WAD = 10**18


def updated_feeds(rpc, feeds: list[str], first: int, last: int) -> dict[int, set[str]]:
    """Block -> the feeds (lower case) that published an answer in it, over [first, last]."""
    logs = rpc.call(
        "eth_getLogs", {"fromBlock": hex(first), "toBlock": hex(last), "address": feeds, "topics": [ANSWER_UPDATED]}
    )
    out: dict[int, set[str]] = defaultdict(set)
    for entry in logs:
        out[int(entry["blockNumber"], 16)].add(entry["address"].lower())
    return out


def price_triggered(net, logs: list[dict], flagged: dict[str, list[int]]) -> set[tuple[str, int]]:
    """The (transaction hash, log index) of the LiquidationCalls in `logs` that a price update caused; `flagged`:
    user (lower case) -> the blocks the watcher found it below 1, ascending."""
    market = net.market
    feed_of = {r.asset.lower(): r.aggregator.lower() for r in market.reserves}
    ordered = sorted(logs, key=lambda e: (int(e["blockNumber"], 16), int(e["logIndex"], 16)))
    if not ordered:
        return set()
    previous: dict[str, int] = {}
    candidates = []  # (key, user, crossing block, the pair's feeds)
    for entry in ordered:
        fields = LIQUIDATION_CALL.decode(entry)
        user, block = fields["user"].lower(), int(entry["blockNumber"], 16)
        before = previous.get(user, -1)
        crossing = next((b for b in flagged.get(user, ()) if before < b < block), block)
        previous[user] = block
        pair = {feed_of.get(fields["collateralAsset"].lower()), feed_of.get(fields["debtAsset"].lower())} - {None}
        candidates.append(((entry["transactionHash"], int(entry["logIndex"], 16)), user, crossing, pair))
    first = min(c for _k, _u, c, _p in candidates)
    updates = updated_feeds(net.devnet, sorted(set(feed_of.values())), first, int(ordered[-1]["blockNumber"], 16))
    by_block: dict[int, list[str]] = defaultdict(list)
    for _key, user, crossing, _pair in candidates:
        by_block[crossing - 1].append(user)
    healthy = set()
    for block, users in by_block.items():
        users = list(dict.fromkeys(users))
        for user, data in zip(users, account_data(net.devnet, market.pool, users, block), strict=True):
            if data.health_factor >= WAD:
                healthy.add((user, block))
    return {
        key
        for key, user, crossing, pair in candidates
        if (user, crossing - 1) in healthy and pair & updates.get(crossing, set())
    }
