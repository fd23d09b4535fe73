"""Users' positions AT A GIVEN BLOCK, read with batched eth_calls, as polars frames the engine takes directly.

The calls go through Multicall3 where the market has it (chain/multicall.py), as a plain batch otherwise.

Two rounds per chunk of users: (1) the user configuration bitmap and e-mode category; (2) for every reserve whose
bits are set, the scaled aToken balance, the scaled variable debt and (V3.0-3.1) the stable debt balance. A few
users (the watcher's per block) are read in one round: every reserve's balances with the configuration. The
collateral bit decides whether supplied balance counts, exactly as GenericLogic does. A user whose answer cannot
be decoded stops the read with a message naming the block and the address: nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

import polars as pl
from eth_abi.exceptions import DecodingError

from ..risk.market import coll_col, debt_col, long_to_wide, on_col, positions_schema, stable_col
from ..risk.versions import ProtocolRules
from .abi import function
from .discovery import Market, ReaderError
from .multicall import eth_calls
from .rpc import RpcClient, RpcError

USERS_PER_ROUND = 2_000
ONE_ROUND_USERS = 32  # up to this many users: configuration and balances in one round trip


def _leg_requests(reserve, user: str, block: int, stable: bool) -> list[tuple[str, list]]:
    """A leg's balance reads: scaled aToken, scaled variable debt and, when asked, the stable debt balance."""
    scaled_fn = function("AToken", "scaledBalanceOf")
    requests = [
        scaled_fn.request(reserve.a_token, user, block=block),
        scaled_fn.request(reserve.variable_debt_token, user, block=block),
    ]
    if stable:
        requests.append(function("ERC20", "balanceOf").request(reserve.stable_debt_token, user, block=block))
    return requests


LONG_SCHEMA = {
    "user": pl.String,
    "emode": pl.Int32,
    "reserve_id": pl.Int32,
    "scaled_atoken": pl.Int128,
    "scaled_variable_debt": pl.Int128,
    "stable_debt": pl.Int128,
    "collateral_enabled": pl.Boolean,
}


def _decode(fn, answer, what: str, block: int):
    if isinstance(answer, RpcError):
        raise ReaderError(f"{what} failed at block {block}: {answer}")
    try:
        return fn.decode(answer)
    except (DecodingError, ValueError) as error:
        raise ReaderError(f"{what} returned undecodable data at block {block}: {error}") from None


def read_positions_long(
    rpc: RpcClient,
    market: Market,
    users: Sequence[str],
    block: int,
    rules: ProtocolRules,
    progress: Callable[[int], None] | None = None,
) -> pl.DataFrame:
    """One row per (user, reserve) the user touches, in LONG_SCHEMA. Users with no position get no row."""
    return pl.DataFrame(_read_legs(rpc, market, users, block, rules, progress), schema=LONG_SCHEMA)


def _read_legs(
    rpc: RpcClient,
    market: Market,
    users: Sequence[str],
    block: int,
    rules: ProtocolRules,
    progress: Callable[[int], None] | None,
    hints: Mapping[str, Collection[int]] | None = None,
) -> dict[str, list]:
    """read_positions_long's columns as lists (a watcher's few users skip the frame: see read_positions)."""
    config_fn = function("Pool", "getUserConfiguration")
    emode_fn = function("Pool", "getUserEMode")
    scaled_fn = function("AToken", "scaledBalanceOf")
    balance_fn = function("ERC20", "balanceOf")
    reserves = sorted(market.reserves, key=lambda r: r.reserve_id)
    every = {r.reserve_id for r in reserves}
    stable = rules.counts_stable_debt
    rows: dict[str, list] = {name: [] for name in LONG_SCHEMA}
    for start in range(0, len(users), USERS_PER_ROUND):
        chunk = list(users[start : start + USERS_PER_ROUND])
        head = [config_fn.request(market.pool, u, block=block) for u in chunk]
        head += [emode_fn.request(market.pool, u, block=block) for u in chunk]
        # Balances read in the same round as the configuration, before it says which legs are set: the legs a
        # hint names (the watcher's: each user's legs in its book), and for a few users without one every
        # reserve. One round trip instead of two; a leg the guess missed is read in a second round, an answer
        # for a leg that is not set is not used. The configuration alone decides the legs.
        guess_all = every if len(chunk) <= ONE_ROUND_USERS else frozenset()
        guessed = {u: (hints.get(u, guess_all) if hints is not None else guess_all) for u in chunk}
        speculative, at = [], {}
        for user in chunk:
            for reserve in reserves:
                if reserve.reserve_id in guessed[user]:
                    at[(user, reserve.reserve_id)] = len(head) + len(speculative)
                    speculative += _leg_requests(reserve, user, block, stable)
        first = eth_calls(rpc, head + speculative, market.multicall)
        legs: list[tuple[str, int, object, bool, bool]] = []
        emodes: dict[str, int] = {}
        for i, user in enumerate(chunk):
            (config,) = _decode(config_fn, first[i], f"Pool.getUserConfiguration({user})", block)
            (emode,) = _decode(emode_fn, first[len(chunk) + i], f"Pool.getUserEMode({user})", block)
            word = int(config[0])
            emodes[user] = int(emode)
            for reserve in reserves:
                borrowing = bool(word >> (2 * reserve.reserve_id) & 1)
                collateral = bool(word >> (2 * reserve.reserve_id + 1) & 1)
                if borrowing or collateral:
                    legs.append((user, reserve.reserve_id, reserve, borrowing, collateral))
        missed = [leg for leg in legs if (leg[0], leg[1]) not in at]
        second = iter(
            eth_calls(
                rpc,
                [
                    req
                    for user, _rid, reserve, borrowing, _c in missed
                    for req in _leg_requests(reserve, user, block, stable and borrowing)
                ],
                market.multicall,
            )
        )
        for user, rid, reserve, borrowing, collateral in legs:
            offset = at.get((user, rid))
            if offset is None:
                answers = [next(second), next(second)] + ([next(second)] if stable and borrowing else [])
            else:
                answers = first[offset : offset + (3 if stable else 2)]
            (supplied,) = _decode(scaled_fn, answers[0], f"{reserve.symbol} aToken balance of {user}", block)
            (owed,) = _decode(scaled_fn, answers[1], f"{reserve.symbol} debt of {user}", block)
            held = 0
            if stable and borrowing:
                (held,) = _decode(balance_fn, answers[2], f"{reserve.symbol} stable debt of {user}", block)
            rows["user"].append(user)
            rows["emode"].append(emodes[user])
            rows["reserve_id"].append(rid)
            rows["scaled_atoken"].append(int(supplied))
            rows["scaled_variable_debt"].append(int(owed))
            rows["stable_debt"].append(int(held))
            rows["collateral_enabled"].append(collateral)
        if progress:
            progress(len(chunk))
    return rows


def read_positions(
    rpc: RpcClient,
    market: Market,
    users: Iterable[str],
    block: int,
    rules: ProtocolRules,
    progress: Callable[[int], None] | None = None,
    hints: Mapping[str, Collection[int]] | None = None,
) -> pl.DataFrame:
    """The engine's wide positions frame for `users` at `block` (users without any position are left out).
    `hints`: per user, the reserve ids its legs are likely on (read speculatively; any set leg is read)."""
    legs = _read_legs(rpc, market, sorted(set(users)), block, rules, progress, hints)
    ids = [r.reserve_id for r in market.reserves]
    if len(legs["user"]) <= SMALL_READ_ROWS:  # the watcher's few touched users: a pivot costs ~4 ms of plan overhead
        return _small_wide(legs, ids, rules.counts_stable_debt)
    long = pl.DataFrame(legs, schema=LONG_SCHEMA)
    if not rules.counts_stable_debt:
        long = long.drop("stable_debt")
    return long_to_wide(long, ids)


SMALL_READ_ROWS = 4096  # legs; a liquidation wave's 100+ touched users are ~300 legs


def _small_wide(legs: dict[str, list], ids: list[int], with_stable: bool) -> pl.DataFrame:
    """long_to_wide for a few legs (LONG_SCHEMA columns as lists), in plain Python: the same frame, users sorted,
    missing legs zero, built from row tuples (a frame from row tuples costs a third of one from columns)."""
    schema = positions_schema(ids, with_stable)
    position = {name: i for i, name in enumerate(schema)}
    blank = [False if dtype == pl.Boolean() else 0 for dtype in schema.values()]
    rows: dict[str, list] = {}
    for i, user in enumerate(legs["user"]):
        row = rows.get(user)
        if row is None:
            row = rows[user] = list(blank)
            row[position["user"]] = user
        row[position["emode"]] = legs["emode"][i]
        r = legs["reserve_id"][i]
        row[position[coll_col(r)]] = legs["scaled_atoken"][i]
        row[position[debt_col(r)]] = legs["scaled_variable_debt"][i]
        row[position[on_col(r)]] = legs["collateral_enabled"][i]
        if with_stable:
            row[position[stable_col(r)]] = legs["stable_debt"][i]
    return pl.DataFrame([tuple(rows[user]) for user in sorted(rows)], schema=schema, orient="row")
