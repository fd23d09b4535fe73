"""Vectorized health factors for every user at once, with an exact re-decision near HF = 1.

Two stages, split by how often their inputs change:
- `build_book` (when positions change): float mirrors of the exact Int128 scaled balances as users x reserves
  matrices: collateral masked by the user's enabled bit and LT > 0, LT-weighted collateral with each user's e-mode
  threshold, debt, per-leg flags. `PositionBook.update` replaces the rows of re-read users in place (rows never
  move), so a block that touched five users costs five rows, not a rebuild.
- `evaluate_health` (every block): per scenario three weighted sums over the reserves, i.e. matrix products
  `(users x reserves) @ (reserves x scenarios)`; each reserve's weight folds its normalized index, 10^-decimals and
  the scenario price into one number. numpy does this in one BLAS call per sum (a polars plan of the same sums cost
  ~10k expression objects per block, several ms of Python before any row is touched).

Float alone flips HF<1 decisions near 1 (measured: thousands of flips among users placed within 1e-4 of 1 under
V3.0 rounding), so every user whose float HF is within its error bound of 1 is re-computed on the exact integer
path, and so is every user whose floored average threshold the float cannot settle. No decision of this module
differs from the exact path.

Error bound of the float HF, relative: float64 sums (< 1e-13) plus the contract's roundings that the fast path
skips: each leg's balance is rounded to a whole token unit (worth price / 10^decimals base units: 95,000 for one
satoshi of BTC) and its base value to a whole base unit. Summed per user as slack, divided by the totals. Under
V3.0-3.4 rounding, a floored average threshold too close to a whole bps widens the band by two bps.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from .exact import AccountData, account_data
from .market import MarketState, UserPosition, coll_col, debt_col, on_col, stable_col, user_positions
from .wadray import RAY

FLOAT_REL_TOL = 1e-9  # far above float64 summation error, far below any real decision margin
AVG_LT_AMBIGUITY = 1e-6  # a float average threshold this close to a whole bps cannot be floored safely
DEBT_PRICE_BOUND = 2.0  # scenario debt prices stay below 2x the oracle price (shocks < 100 %)
SCREEN_MARGIN = 1e-6  # relative headroom of scenario_floor over float and rounding error
GATHER_FIRST = 8  # rows under 1/8 of the book: gather the inputs first (4.9k of 100k rows: 3.1 -> 1.7 ms)
SLACK_ROUNDING = 1.0 + 1e-5  # headroom over the float32 rounding of the slack sums
CHUNK_ROWS = 32_768  # rows per slice of the elementwise pass (temporaries under 1 MB: in cache)
MAX_CHUNKS = 64  # row replacements leave the exact frame in slices; compact() rechunks it past this many
SMALL_BUILD_ROWS = 64  # up to this many rows build_book reads plain lists instead of running a polars select
MAX_EXACT_KEPT = 65_536  # exact positions kept for re-decisions (the few thousand near a decision recur)
HARD_MAX_CHUNKS = 4096  # compacted during the update itself (only when nobody calls compact() in between)
KEPT_CHANGES = 1_024  # updates remembered for rows_changed_since (a screen lives 300 blocks at most)

_generations = itertools.count(1)


@dataclass(frozen=True)
class ScenarioPrices:
    """Integer prices of one scenario: collateral legs and debt legs are valued separately."""

    name: str
    collateral: Mapping[int, int]
    debt: Mapping[int, int]


def baseline_prices(market: MarketState) -> ScenarioPrices:
    return ScenarioPrices("baseline", dict(market.prices), dict(market.prices))


def book_config_key(market: MarketState) -> tuple:
    """What the book's float mirrors depend on besides positions: thresholds and e-mode membership. Prices and
    indices are not in it (they enter every block through the weights)."""
    reserves = tuple((r.reserve_id, r.liquidation_threshold, r.emode_category) for r in market.reserves)
    categories = tuple(
        (c, e.liquidation_threshold, e.price, e.collateral_bitmap) for c, e in sorted(market.emode_categories.items())
    )
    return reserves, categories, market.rules


# The book's matrices, each users x reserves (float64), and per-user vectors.
_MATRICES = ("coll", "weighted", "debt", "stable", "holds", "owes")
_VECTORS = ("lt_min", "lt_uniform", "lt_spread", "exact_only")


class PositionBook:
    """Exact positions and their float mirrors, row for row in the same order. Rows are stable: `update`
    replaces a re-read user's row in place and appends new users, so row-aligned state kept by callers (the
    watcher's last written candidates) stays valid while `generation` is unchanged."""

    def __init__(
        self,
        positions: pl.DataFrame,
        reserve_ids: tuple[int, ...],
        has_stable: bool,
        config: tuple,
        arrays: dict[str, np.ndarray],
    ):
        self.positions = positions  # the exact wide frame (Int128), the exact path's source
        self.reserve_ids = reserve_ids
        self.has_stable = has_stable
        self.config = config
        self.generation = next(_generations)  # a new row layout
        self.version = 0  # bumped by every in-place update
        self._changes: list[np.ndarray] = []  # rows each recent update touched, in version order (for screens)
        self.coll: np.ndarray = arrays["coll"]  # scaled collateral, only where enabled and LT > 0
        self.weighted: np.ndarray = arrays["weighted"]  # scaled collateral x the user's effective LT (bps)
        self.debt: np.ndarray = arrays["debt"]  # scaled variable debt
        self.stable: np.ndarray = arrays["stable"]  # stable debt balance (V3.0-3.1 only; zeros otherwise)
        self.holds: np.ndarray = arrays["holds"]  # 1.0 where the user holds usable collateral
        self.owes: np.ndarray = arrays["owes"]  # 1.0 where the user owes debt
        self.lt_min: np.ndarray = arrays["lt_min"]  # lowest threshold among held legs (NaN: none)
        self.lt_uniform: np.ndarray = arrays["lt_uniform"]  # every held leg has the same threshold
        self.lt_spread: np.ndarray = arrays["lt_spread"]  # highest / lowest threshold among held legs
        self.exact_only: np.ndarray = arrays["exact_only"]  # V3.0-3.1 e-mode price source: exact path only
        self.emode: np.ndarray = arrays["emode"]
        self._backing: dict[str, np.ndarray] = {}  # arrays with spare rows for appended users (see _append)
        # user -> row, built with the book (~30 ms at 100k users): built lazily, it landed on a block's path
        self._users: list[str] = positions["user"].to_list()  # row -> user (a row keeps its user for good)
        self._row_of: dict[str, int] = {user: row for row, user in enumerate(self._users)}
        # row -> its exact position as Python integers: the users near a decision are re-decided exactly block
        # after block, and reading a few rows out of the Int128 frame costs ~0.8 ms a pass
        self._exact: dict[int, UserPosition] = {}

    @property
    def height(self) -> int:
        return self.positions.height

    def rows_of(self, users: Sequence[str]) -> list[int | None]:
        return [self._row_of.get(u) for u in users]

    def users_at(self, rows: np.ndarray) -> list[str]:
        """The users of `rows` (a list: gathering them from the frame costs ~1 ms a call at 100k rows)."""
        users = self._users
        return [users[row] for row in rows.tolist()]

    def legs_of(self, users: Sequence[str]) -> dict[str, list[int]]:
        """Per user of the book, the reserves it holds collateral in or owes on: where its legs likely are at the
        next read (chain/positions.py reads them in the configuration's round trip)."""
        known = [(user, self._row_of[user]) for user in users if user in self._row_of]
        if not known:
            return {}
        rows = np.array([row for _user, row in known])
        used = (self.holds[rows] > 0) | (self.owes[rows] > 0)
        ids = np.array(self.reserve_ids, dtype=np.int64)
        return {user: ids[used[k]].tolist() for k, (user, _row) in enumerate(known)}

    def exact_positions(self, rows: np.ndarray) -> list[UserPosition]:
        """The exact positions of `rows`, from the frame on first use, kept until their row is replaced."""
        wanted = rows.tolist()
        missing = [row for row in dict.fromkeys(wanted) if row not in self._exact]
        if missing:
            if len(self._exact) + len(missing) > MAX_EXACT_KEPT:  # start over with the rows asked for now
                self._exact.clear()
                missing = list(dict.fromkeys(wanted))
            read = user_positions(self.positions[missing], self.reserve_ids)
            self._exact.update(zip(missing, read, strict=True))
        return [self._exact[row] for row in wanted]

    def update(self, fresh: pl.DataFrame, market: MarketState, reread: Sequence[str] = ()) -> None:
        """Replace the rows of the users in `fresh` (re-read positions) in place; append users new to the book.
        Users in `reread` that `fresh` leaves out have no position left: their rows become empty (the chain
        reader omits such users). The market must have the book's configuration (`book_config_key`)."""
        if book_config_key(market) != self.config:
            raise ValueError("the market's thresholds or e-mode changed: build a new book instead of updating")
        if fresh.schema != self.positions.schema or fresh["user"].is_duplicated().any():
            fresh = fresh.unique("user", keep="last", maintain_order=True).select(
                [
                    pl.col(c).cast(t) if c in fresh.columns else pl.lit(0).cast(t).alias(c)
                    for c, t in self.positions.schema.items()
                ]
            )
        named = set(fresh["user"].to_list())
        emptied = [u for u in dict.fromkeys(reread) if u not in named and u in self._row_of]
        if emptied:
            fresh = pl.concat([fresh, _empty_rows(self.positions.schema, emptied)])
        if fresh.height == 0:
            return
        part = build_book(fresh, market, reserve_ids=self.reserve_ids)
        rows = self.rows_of(fresh["user"].to_list())
        present = [i for i, row in enumerate(rows) if row is not None]
        new = [i for i, row in enumerate(rows) if row is None]
        if present:
            target = np.array([rows[i] for i in present])
            source = np.array(present)
            for name in (*_MATRICES, *_VECTORS, "emode"):
                getattr(self, name)[target] = getattr(part, name)[source]
            for row in target.tolist():
                self._exact.pop(row, None)
            self.positions = _replace_rows(self.positions, target, fresh[source])
        if new:
            source = np.array(new)
            start = self.positions.height
            for name in (*_MATRICES, *_VECTORS, "emode"):
                self._append(name, getattr(part, name)[source], start)
            self.positions = pl.concat([self.positions, fresh[source]], rechunk=False)
            appended = fresh[source]["user"].to_list()
            self._users += appended
            for offset, user in enumerate(appended):
                self._row_of[user] = start + offset
        if self._chunks() > HARD_MAX_CHUNKS:  # a caller that never compacts (the watcher does, off its hot path)
            self.compact()
        changed = [target] if present else []
        if new:
            changed.append(np.arange(start, self.positions.height))
        self._changes.append(np.concatenate(changed) if changed else np.zeros(0, np.int64))
        del self._changes[:-KEPT_CHANGES]
        self.version += 1

    def _append(self, name: str, rows: np.ndarray, start: int) -> None:
        """Append rows to one array, in spare capacity when there is some: copying a 100k-row matrix for every
        newcomer cost ~1.5 ms a block."""
        backing = self._backing.get(name)
        if backing is None or backing.shape[0] < start + len(rows):
            backing = np.empty((max(start + len(rows), start + start // 16 + 256), *rows.shape[1:]), rows.dtype)
            backing[:start] = getattr(self, name)[:start]
            self._backing[name] = backing
        backing[start : start + len(rows)] = rows
        setattr(self, name, backing[: start + len(rows)])

    def _chunks(self) -> int:
        counts = self.positions.n_chunks("all")
        return max(counts) if counts else 0

    def compact(self) -> None:
        """Rechunk the exact frame once row replacements have left it in more than MAX_CHUNKS slices (~10 ms at
        100k users: the watcher calls this after a block's candidates are written)."""
        if self._chunks() > MAX_CHUNKS:
            self.positions = self.positions.rechunk()

    def rows_changed_since(self, version: int) -> np.ndarray | None:
        """Rows replaced or appended by the updates after `version`; None when that is older than the updates
        kept (the caller must then treat every row as changed)."""
        if self.version - version > len(self._changes):
            return None
        parts = self._changes[len(self._changes) - (self.version - version) :]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def _empty_rows(schema: Mapping[str, pl.DataType], users: Sequence[str]) -> pl.DataFrame:
    """Rows of users without any position: zero balances, nothing enabled, no e-mode."""
    columns = {
        name: pl.Series(
            name,
            [users[i] if name == "user" else (False if dtype == pl.Boolean() else 0) for i in range(len(users))],
            dtype=dtype,
        )
        for name, dtype in schema.items()
    }
    return pl.DataFrame(columns)


def _replace_rows(frame: pl.DataFrame, rows: np.ndarray, replacement: pl.DataFrame) -> pl.DataFrame:
    """`frame` with `rows` replaced by `replacement`'s rows, in order, without copying the rest (slices)."""
    order = np.argsort(rows, kind="stable")
    pieces, start = [], 0
    for k in order:
        row = int(rows[k])
        if row > start:
            pieces.append(frame.slice(start, row - start))
        pieces.append(replacement.slice(int(k), 1))
        start = row + 1
    if start < frame.height:
        pieces.append(frame.slice(start))
    return pl.concat(pieces, rechunk=False)


EMODE_IDS = 256  # e-mode category ids are uint8


def emode_table(market: MarketState, ids: Sequence[int], attribute: str) -> np.ndarray:
    """Per e-mode category id and reserve, `attribute` (liquidation_threshold, liquidation_bonus): the category's
    where it covers the reserve's collateral, the reserve's own elsewhere."""
    table = np.tile(np.array([float(getattr(market.by_id[r], attribute)) for r in ids]), (EMODE_IDS, 1))
    for category in market.emode_categories:
        for column, r in enumerate(ids):
            if 0 <= category < EMODE_IDS and market.in_emode(category, r):
                table[category, column] = float(getattr(market.emode_categories[category], attribute))
    return table


def build_book(
    positions: pl.DataFrame, market: MarketState, reserve_ids: tuple[int, ...] | None = None
) -> PositionBook:
    """Float mirrors of the positions. Depends on the market's configuration (thresholds, e-mode), not on its
    prices or indices: rebuild when the configuration changes, `update` rows when positions change. Plain numpy
    over the columns: a polars plan of the same took ~5 ms for a handful of rows (every watcher block)."""
    names = set(positions.columns)
    ids = reserve_ids if reserve_ids is not None else tuple(r for r in market.reserve_ids if coll_col(r) in names)
    has_stable = market.rules.counts_stable_debt and any(stable_col(r) in names for r in ids)
    n, width = positions.height, len(ids)

    # every column converted in one select (a conversion per column cost ~2.5 ms for a handful of rows)
    def floats(name_of) -> list[pl.Expr]:
        return [pl.col(name_of(r)).cast(pl.Float64).fill_null(0.0) if name_of(r) in names else pl.lit(0.0) for r in ids]

    def flags() -> list[pl.Expr]:
        return [pl.col(on_col(r)).fill_null(False) if on_col(r) in names else pl.lit(False) for r in ids]

    if n <= SMALL_BUILD_ROWS:  # a few re-read users (every watcher block): lists, no polars plan (~1 ms saved)

        def listed_column(name: str, fill: object) -> list:
            return (
                [fill if v is None else v for v in positions.get_column(name).to_list()]
                if name in names
                else [fill] * n
            )

        stable_names = [stable_col(r) for r in ids] if has_stable else []
        number_names = [coll_col(r) for r in ids] + [debt_col(r) for r in ids]
        numbers = np.array(
            [listed_column(name, 0) for name in number_names + stable_names] + [[0] * n] * (0 if has_stable else width),
            dtype=np.float64,
        ).T.reshape(n, 3 * width)  # Python int -> float64 rounds to nearest like polars' cast
        enabled = np.array([listed_column(on_col(r), False) for r in ids], dtype=bool).T.reshape(n, width)
    else:
        stable_exprs = floats(stable_col) if has_stable else [pl.lit(0.0)] * width
        numbers = (
            positions.select(
                *[e.alias(f"c{j}") for j, e in enumerate(floats(coll_col))],
                *[e.alias(f"d{j}") for j, e in enumerate(floats(debt_col))],
                *[e.alias(f"s{j}") for j, e in enumerate(stable_exprs)],
            ).to_numpy()
            if width
            else np.zeros((n, 0))
        )
        enabled = positions.select(*[e.alias(f"e{j}") for j, e in enumerate(flags())]).to_numpy() if width else None
    coll = np.ascontiguousarray(numbers[:, :width])
    debt = np.ascontiguousarray(numbers[:, width : 2 * width])
    stable = np.ascontiguousarray(numbers[:, 2 * width :])
    emode = positions["emode"].cast(pl.Int64).fill_null(0).to_numpy().copy()
    thresholds = emode_table(market, ids, "liquidation_threshold")
    threshold = thresholds[np.clip(emode, 0, EMODE_IDS - 1)] if width else np.zeros((n, 0))
    listed = np.array([market.by_id[r].liquidation_threshold > 0 for r in ids], bool)
    usable = enabled.astype(bool) & listed if width else np.zeros((n, 0), bool)
    coll = np.where(usable, coll, 0.0)
    holds = usable & (coll > 0)  # a positive Int128 stays positive as a float
    owes = (debt > 0) | (stable > 0)
    held_threshold = np.where(holds, threshold, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: users without usable collateral
        lt_min = np.nanmin(held_threshold, axis=1) if width else np.full(n, np.nan)
        lt_max = np.nanmax(held_threshold, axis=1) if width else np.full(n, np.nan)
    none_held = np.isnan(lt_min)
    override_categories = [
        c for c, category in market.emode_categories.items() if market.rules.emode_price_source and category.price
    ]
    arrays = {
        "coll": coll,
        "weighted": coll * threshold,
        "debt": debt,
        "stable": stable,
        # 0/1 flags in float32: half the memory a per-block product over every user has to read
        "holds": holds.astype(np.float32),
        "owes": owes.astype(np.float32),
        "lt_min": lt_min,
        "lt_uniform": none_held | (lt_min == lt_max),
        "lt_spread": np.where(none_held, 1.0, lt_max / np.where(none_held, 1.0, lt_min)),
        "exact_only": np.isin(emode, override_categories),
        "emode": emode,
    }
    return PositionBook(positions, tuple(ids), has_stable, book_config_key(market), arrays)


def collateral_weights(market: MarketState, prices: ScenarioPrices, ids: Sequence[int]) -> np.ndarray:
    """Base-currency value of one scaled collateral unit per reserve: income index x price / 10^decimals."""
    return np.array([market.income_index[r] / RAY * prices.collateral[r] / market.by_id[r].unit for r in ids])


def debt_weights(market: MarketState, prices: ScenarioPrices, ids: Sequence[int]) -> np.ndarray:
    """Base-currency value of one scaled debt unit per reserve: debt index x price / 10^decimals."""
    return np.array([market.debt_index[r] / RAY * prices.debt[r] / market.by_id[r].unit for r in ids])


def stable_weights(market: MarketState, prices: ScenarioPrices, ids: Sequence[int]) -> np.ndarray:
    """Base-currency value of one stable debt unit (its balance already includes interest)."""
    return np.array([prices.debt[r] / market.by_id[r].unit for r in ids])


def debt_values(book: PositionBook, market: MarketState, prices: ScenarioPrices, rows=slice(None)) -> np.ndarray:
    """Debt legs in base-currency units, users x reserves."""
    ids = book.reserve_ids
    values = book.debt[rows] * debt_weights(market, prices, ids)
    if book.has_stable:
        values = values + book.stable[rows] * stable_weights(market, prices, ids)
    return values


@dataclass
class HealthPass:
    """Every user's HF in every scenario (columns in `names` order), decided exactly, and the sums behind it."""

    names: tuple[str, ...]
    hf: np.ndarray  # users x scenarios; inf = no debt
    exact: np.ndarray  # users x scenarios: decided on the integer path
    weighted: np.ndarray  # LT-weighted collateral, base units
    collateral: np.ndarray
    debt: np.ndarray
    exact_count: int

    def column(self, name: str) -> int:
        return self.names.index(name)


def take_rows(array: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    """`array`'s rows (all when None). np.take gathers rows ~3x faster than fancy indexing (measured)."""
    return array if rows is None else np.take(array, rows, axis=0)


def rounding_slack(book: PositionBook, market: MarketState, rows=slice(None)) -> tuple[np.ndarray, np.ndarray]:
    """Rounding slack per user in base units (collateral, debt): one token unit plus one base unit per leg, debt
    legs at twice the oracle price (scenario prices stay below it)."""
    ids = book.reserve_ids
    unit_value = np.array([market.by_id[r].price / market.by_id[r].unit for r in ids])
    # float32 sums of n terms (a few dozen at most): relative error < n x 6e-8 (~2e-6 at 30), covered by
    # SLACK_ROUNDING (a wider slack only sends more users to the exact path)
    weights = [(unit_value + 1.0).astype(np.float32), (DEBT_PRICE_BOUND * unit_value + 1.0).astype(np.float32)]
    collateral = (book.holds[rows] @ weights[0]).astype(np.float64) * SLACK_ROUNDING
    debt = (book.owes[rows] @ weights[1]).astype(np.float64) * SLACK_ROUNDING
    return collateral, debt


def _scenario_weights(book: PositionBook, market: MarketState, scenarios: Sequence[ScenarioPrices]) -> tuple:
    """Per reserve and scenario: collateral, debt and stable debt weights (stable None where not counted)."""
    ids = book.reserve_ids
    coll_w = np.column_stack([collateral_weights(market, s, ids) for s in scenarios])
    debt_w = np.column_stack([debt_weights(market, s, ids) for s in scenarios])
    stable_w = np.column_stack([stable_weights(market, s, ids) for s in scenarios]) if book.has_stable else None
    return coll_w, debt_w, stable_w


def _products(weighted, coll, debt, stable, weights: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    coll_w, debt_w, stable_w = weights
    owed = debt @ debt_w
    if stable_w is not None:
        owed = owed + stable @ stable_w
    return weighted @ coll_w, coll @ coll_w, owed


def scenario_products(
    book: PositionBook, market: MarketState, scenarios: Sequence[ScenarioPrices]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every user's LT-weighted collateral, collateral and debt in base units, users x scenarios: one product
    per matrix for all the scenarios of a block (reading the book once instead of once per pass)."""
    weights = _scenario_weights(book, market, scenarios)
    return _products(book.weighted, book.coll, book.debt, book.stable, weights)


def float_health(
    book: PositionBook,
    market: MarketState,
    scenarios: Sequence[ScenarioPrices],
    rows: np.ndarray | None = None,
    slack: tuple[np.ndarray, np.ndarray] | None = None,
    products: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    columns: slice = slice(None),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Float HF per user and scenario and whether it must be re-decided exactly: (hf, band, S, C, D), for the
    book's `rows` (default: every user) in that order. `slack`: rounding_slack of every user, if known;
    `products`: scenario_products, if known (`columns`: these scenarios' columns in them)."""
    if products is None and rows is not None and rows.size * GATHER_FIRST < book.height:
        # a small share of the users (a quiet block's few near a decision): gather their rows, then multiply
        picked = [np.take(m, rows, axis=0) for m in (book.weighted, book.coll, book.debt)]
        picked.append(np.take(book.stable, rows, axis=0) if book.has_stable else None)
        weighted, collateral, debt = _products(*picked, _scenario_weights(book, market, scenarios))
    else:
        # products over every user, then the rows (a users x scenarios result is cheaper to gather than the
        # inputs), then these columns made contiguous: deciding on strided columns is ~2x slower
        products = products or scenario_products(book, market, scenarios)
        weighted, collateral, debt = (np.ascontiguousarray(take_rows(p, rows)[:, columns]) for p in products)
    slack_c, slack_d = (take_rows(v, rows)[:, None] for v in (slack or rounding_slack(book, market)))
    per_user = {name: take_rows(getattr(book, name), rows)[:, None] for name in ("lt_uniform", "lt_min", "lt_spread")}
    exact_only = take_rows(book.exact_only, rows)[:, None]
    hf = np.empty_like(weighted)
    band = np.empty(weighted.shape, bool)
    # In slices of rows: each step's temporaries stay in cache (whole-array temporaries at 1M users x 3 scenarios
    # are 24 MB each, and the page faults of allocating them doubled the pass).
    for start in range(0, weighted.shape[0], CHUNK_ROWS):
        part = slice(start, start + CHUNK_ROWS)
        hf[part], band[part] = _decide(
            market.rules.floors_average_threshold,
            weighted[part],
            collateral[part],
            debt[part],
            slack_c[part],
            slack_d[part],
            per_user["lt_uniform"][part],
            per_user["lt_min"][part],
            per_user["lt_spread"][part],
        )
        band[part] |= exact_only[part]
    return hf, band, weighted, collateral, debt


def _decide(
    floors_average: bool,
    weighted: np.ndarray,
    collateral: np.ndarray,
    debt: np.ndarray,
    slack_c: np.ndarray,
    slack_d: np.ndarray,
    lt_uniform: np.ndarray,
    lt_min: np.ndarray,
    lt_spread: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Float HF and whether the exact path must decide it, for rows of sums (users x scenarios)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # |float - exact| <= slack, so relative to the EXACT total the error is at most slack / (float - slack).
        coll_error = slack_c / (collateral - slack_c)
        debt_error = slack_d / (debt - slack_d)
        if floors_average:
            # HF_float / HF_exact lies within [(1 - ec) / (1 + ed), (1 + ec) / (1 - ed)]; the upper side is wider.
            tolerance = FLOAT_REL_TOL + (1.0 + coll_error) / (1.0 - debt_error) - 1.0
            # avgLT = floor(sum(coll x LT) / coll). Exact when every collateral leg has the same threshold; else
            # the float ratio is off by up to LT x (relative error), and a floor that close to a whole bps may be
            # off by one bps: then widen the band by two bps of threshold rather than trust it.
            ratio = weighted / collateral
            average = np.floor(ratio)
            np.copyto(average, lt_min, where=lt_uniform)  # in place: ~20 % of this pass as a np.where
            distance = np.abs(ratio - np.round(ratio))
            ambiguous = ~lt_uniform & (distance <= AVG_LT_AMBIGUITY + 2.0 * 10_000.0 * coll_error)
            tolerance = tolerance + np.where(ambiguous, 2.0 / average, 0.0)
            hf = collateral * average / 10_000.0 / debt
        else:
            # The LT-weighted sum: a leg's error counts at its own threshold, up to max/min threshold times ec.
            tolerance = FLOAT_REL_TOL + (1.0 + coll_error * lt_spread) / (1.0 - debt_error) - 1.0
            hf = weighted / 10_000.0 / debt
        owes = debt > 0
        has_collateral = collateral > 0
        np.copyto(hf, 0.0, where=~has_collateral)
        np.copyto(hf, np.inf, where=~owes)
        near_one = owes & has_collateral & ~(np.abs(hf - 1.0) > tolerance)  # NaN tolerance: banded
        # Totals within their rounding slack of zero may be zero on chain (a dust debt floors to 0 base units: HF
        # is then infinite): only the exact path can tell.
        near_zero = owes & ((2.0 * slack_d >= debt) | (has_collateral & (2.0 * slack_c >= collateral)))
    return hf, near_one | near_zero


def decision_preserving_float(data: AccountData) -> float:
    """The exact HF as a float whose `< 1.0` gives the exact decision (1e18 - 1 wad would round to 1.0)."""
    value = data.hf_float
    if data.liquidatable and value >= 1.0:
        return math.nextafter(1.0, 0.0)
    return value


def redecide_exactly(
    hf: np.ndarray,
    band: np.ndarray,
    book: PositionBook,
    market: MarketState,
    scenarios: Sequence[ScenarioPrices],
    rows: np.ndarray | None = None,
) -> int:
    """Replace, in place, the float HF of every banded (user, scenario) by the exact one. `hf` and `band` hold
    the book's `rows` (default: every user). Returns how many."""
    banded = np.flatnonzero(band.any(axis=1))
    if banded.size == 0:
        return 0
    book_rows = banded if rows is None else rows[banded]
    positions = book.exact_positions(book_rows)
    count = 0
    for row, position in zip(banded.tolist(), positions, strict=True):
        for column in np.flatnonzero(band[row]).tolist():
            s = scenarios[column]
            hf[row, column] = decision_preserving_float(account_data(position, market, s.collateral, s.debt))
            count += 1
    return count


def evaluate_health(
    book: PositionBook,
    market: MarketState,
    scenarios: Sequence[ScenarioPrices],
    rows: np.ndarray | None = None,
    slack: tuple[np.ndarray, np.ndarray] | None = None,
    products: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    columns: slice = slice(None),
) -> HealthPass:
    """The HF of the book's `rows` (default: every user) in every scenario, exactly decided, with the sums the
    projections reuse; arrays hold the rows in the order given. `products`: scenario_products, if known."""
    hf, band, weighted, collateral, debt = float_health(book, market, scenarios, rows, slack, products, columns)
    count = redecide_exactly(hf, band, book, market, scenarios, rows)
    return HealthPass(tuple(s.name for s in scenarios), hf, band, weighted, collateral, debt, count)


def price_move_floor(ids: Sequence[int], before: Mapping[int, int], after: Mapping[int, int] | ScenarioPrices) -> float:
    """The least factor by which any user's HF can move from prices `before` to `after` (or to a scenario's
    collateral and debt prices): the lowest collateral price ratio over the highest debt price ratio."""
    if not ids:
        return 1.0
    collateral = after.collateral if isinstance(after, ScenarioPrices) else after
    debt = after.debt if isinstance(after, ScenarioPrices) else after
    return min(collateral[r] / before[r] for r in ids) / max(debt[r] / before[r] for r in ids)


def rounding_noise(now: HealthPass, slack: tuple[np.ndarray, np.ndarray], rows: np.ndarray | None) -> np.ndarray:
    """The relative rounding error of each current HF of `now` (over the book's `rows`): how far (relative) the exact
    value may lie from the float. inf/NaN where a total is zero."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return take_rows(slack[0], rows) / now.collateral[:, 0] + take_rows(slack[1], rows) / now.debt[:, 0]


def scenario_floor(
    book: PositionBook,
    market: MarketState,
    now: HealthPass,
    slack: tuple[np.ndarray, np.ndarray],
    prices: ScenarioPrices,
    rows: np.ndarray | None = None,
    noise: np.ndarray | None = None,
) -> np.ndarray:
    """A lower bound of each user's exact HF in a scenario, from the current pass (`now`, over the book's `rows`,
    default every user): each leg's value moves by the ratio of scenario to current price, so the totals' ratio
    moves by at least min collateral ratio / max debt ratio; the floored average threshold costs at most one
    bps of the lowest threshold; and the float's own error. Users whose rounding slack is not negligible (dust)
    or whose HF the float cannot give get 0 (always evaluated)."""
    hf_current = now.hf[:, 0]
    if not book.reserve_ids:
        return np.zeros_like(hf_current)
    factor = price_move_floor(book.reserve_ids, market.prices, prices)
    noise = rounding_noise(now, slack, rows) if noise is None else noise
    with np.errstate(divide="ignore", invalid="ignore"):
        floor = hf_current * factor * (1.0 - 1.0 / take_rows(book.lt_min, rows) - 4.0 * SCREEN_MARGIN)
    usable = (noise <= SCREEN_MARGIN) & ~take_rows(book.exact_only, rows) & np.isfinite(floor)
    return np.where(usable, floor, np.where(np.isinf(hf_current), np.inf, 0.0))


def health_factors(
    positions: pl.DataFrame | PositionBook,
    market: MarketState,
    scenarios: Sequence[ScenarioPrices] | None = None,
) -> pl.DataFrame:
    """HF of every user in every scenario: `user`, `hf_{s}` (float, inf = no debt), `liquidatable_{s}`,
    `exact_{s}` (decided on the exact path). Decisions equal the exact path's for every user."""
    scenarios = list(scenarios or [baseline_prices(market)])
    book = positions if isinstance(positions, PositionBook) else build_book(positions, market)
    result = evaluate_health(book, market, scenarios)
    columns: dict[str, pl.Series] = {"user": book.positions["user"]}
    for j, s in enumerate(scenarios):
        columns[f"hf_{s.name}"] = pl.Series(result.hf[:, j])
        columns[f"liquidatable_{s.name}"] = pl.Series(result.hf[:, j] < 1.0)
        columns[f"exact_{s.name}"] = pl.Series(result.exact[:, j])
    return pl.DataFrame(columns)
