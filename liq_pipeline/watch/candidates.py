"""The watcher's candidate writes: the full set once, then per block only what changed.

Per member (user:scenario), compared with what was last written:
- new, or it became (or stopped being) liquidatable now: score and details written;
- its ETA moved by at least ETA_RESOLUTION_SEC or ETA_RELATIVE of the ETA written (whichever is larger): the
  score (the ETA) moves, the details stay as of the block they were written in (they carry it as `block`);
- details are rewritten a slice of 1/DETAILS_REFRESH_BLOCKS of the rows each block, so every DETAILS_REFRESH_BLOCKS
  blocks per row; on a block that carried the previous values only the slice's rows evaluated anew (a carried
  row's values were computed at an earlier block, and its details already say which): on a quiet chain a far
  member's details can be older than DETAILS_REFRESH_BLOCKS blocks, never older than its values;
- left the set: removed.
A far ETA (150 s) is a projection whose own volatility band is wider than 10 %: rewriting it on every price
tick would cost more than the rest of the block. Packing a member's details costs ~2 us; moving a score a tenth
of that, and a busy block moves thousands.

Only the members written are sized and serialized, and what was last written is kept as arrays row-aligned with
the engine's position book (rows never move while the book's generation holds), so finding the changes is a few
vector comparisons, not a join on user names. When the evaluation carried the previous block's values (no price
moved) and that block's changes were written, only the rows evaluated anew can differ: the comparison runs over
those rows alone.
"""

from __future__ import annotations

import numpy as np

from ..cache.candidates import write_candidate_changes
from ..cache.codec import score_strings
from ..cache.keys import candidate_member
from ..cache.resilience import UNAVAILABLE
from ..risk.evaluation import Evaluation
from ..risk.member_changes import member_changes, warm_member_changes
from ..risk.row_arrays import grown

ETA_RESOLUTION_SEC = 1.0
ETA_RELATIVE = 0.1
DETAILS_REFRESH_BLOCKS = 150  # 5 minutes on Base: a slice of 1/150 of the rows per block


class CandidateWriter:
    def __init__(self, cache):
        self.cache = cache  # a ResilientCache
        self._generation: int | None = None  # the book layout the arrays below follow; None: rewrite in full
        self.live_eta: dict[str, np.ndarray] = {}  # per scenario, per book row: ETA as written (NaN: not a member)
        self.live_now: dict[str, np.ndarray] = {}  # per scenario, per book row: liquidatable_now as written
        self._written_block: int | None = None  # the block whose changes were last written in full
        self.last_counts: dict[str, int] = {}  # members with details written, scores moved, removed (last write)

    def reset(self) -> None:
        """Next write rewrites the whole set (after a reorg, or Redis coming back)."""
        self._generation = None
        self._written_block = None

    def _remember(self, evaluation: Evaluation) -> None:
        now = evaluation.hf_current < 1.0
        self.live_eta, self.live_now = {}, {}
        for name, mask in evaluation.candidate_mask.items():
            self.live_eta[name] = np.where(mask, evaluation.eta[name], np.nan)
            self.live_now[name] = now & mask
        self._generation = evaluation.book.generation
        self._written_block = evaluation.block

    def _grown(self, height: int) -> None:
        """Users new to the book were appended: they have written nothing yet (in place where the arrays have
        spare rows: risk/row_arrays.py)."""
        for name, live in self.live_eta.items():
            if live.size < height:
                self.live_eta[name] = grown(live, height, np.nan)
                self.live_now[name] = grown(self.live_now[name], height, False)

    def write(self, evaluation: Evaluation) -> str:
        block = evaluation.block
        if self._generation != evaluation.book.generation or not self.cache.reachable:
            outcome = self.cache.write_candidates(block, evaluation.candidates)
            self.last_counts = {"detailed": evaluation.candidates.height, "rescored": 0, "removed": 0}
            if self.cache.reachable:
                self._remember(evaluation)
                warm_member_changes()  # the next blocks compare: the compiled pass loaded now, off their path
            else:
                self.reset()
            return str(outcome)
        self._grown(evaluation.book.height)
        book = evaluation.book
        compared = self._rows_to_compare(evaluation)

        def pick(values: np.ndarray) -> np.ndarray:
            return values if compared is None else values[compared]

        def placed(found: np.ndarray) -> np.ndarray:
            return found if compared is None else compared[found]

        now = evaluation.hf_current < 1.0
        now_compared = pick(now)
        phase = block % DETAILS_REFRESH_BLOCKS
        if compared is None:  # rows phase, phase + 150, ...: a strided write, not 1M modulos (~3 ms)
            due = np.zeros(book.height, bool)
            due[phase::DETAILS_REFRESH_BLOCKS] = True
        else:
            due = compared % DETAILS_REFRESH_BLOCKS == phase
        if compared is None and evaluation.carried_from is not None and evaluation.evaluated_rows is not None:
            # carried rows hold values computed at an earlier block (when only the evaluated rows are compared,
            # every compared row is anew)
            anew = np.zeros(book.height, bool)
            anew[evaluation.evaluated_rows] = True
            due &= pick(anew)
        detailed, rescored, gone = {}, {}, {}
        for name, member_mask in evaluation.candidate_mask.items():
            if name not in self.live_eta:
                self.live_eta[name] = np.full(member_mask.size, np.nan)
                self.live_now[name] = np.zeros(member_mask.size, bool)
            # one compiled pass a scenario (risk/member_changes.py: 2.4 ms at 1M rows, numpy's ~8 passes 4.6)
            full, moved, left = member_changes(
                pick(member_mask),
                pick(evaluation.eta[name]),
                pick(self.live_eta[name]),
                pick(self.live_now[name]),
                now_compared,
                due,
                ETA_RESOLUTION_SEC,
                ETA_RELATIVE,
            )
            detailed[name], rescored[name], gone[name] = placed(full), placed(moved), placed(left)
        upserts = evaluation.candidate_columns(detailed)
        moved_members: list[str] = []
        moved_scores: list[str] = []
        for name, rows in rescored.items():
            if rows.size:
                moved_members += [candidate_member(user, name) for user in book.users_at(rows)]
                moved_scores += score_strings(evaluation.eta[name][rows])
        removed = [candidate_member(user, name) for name, rows in gone.items() for user in book.users_at(rows)]
        self.last_counts = {
            "detailed": 0 if upserts is None else len(upserts["user"]),
            "rescored": len(moved_members),
            "removed": len(removed),
        }
        try:
            written = write_candidate_changes(
                self.cache.cache, block, upserts, removed, rescored=(moved_members, moved_scores)
            )
        except UNAVAILABLE as error:
            # Redis went away mid-write: the resilient cache is told (one warning, and from now on no network
            # round trip until its probe hears Redis), the block's whole set is kept for the catch-up. Before, this
            # retried the whole set at once on the same hung server, unknown to the cache: with Redis SIGSTOPed for
            # 12 s the block waited 12 s and nothing was logged.
            self.reset()
            self.cache.note_unavailable(error)
            return str(self.cache.write_candidates(block, evaluation.candidates))
        except Exception:  # anything else: the resilient path writes the whole set (it raises a bug once)
            self.reset()
            return str(self.cache.write_candidates(block, evaluation.candidates))
        self._written_block = block if written else None
        if written:
            for name in detailed:
                for rows in (detailed[name], rescored[name]):
                    self.live_eta[name][rows] = evaluation.eta[name][rows]
                self.live_now[name][detailed[name]] = now[detailed[name]]
                self.live_eta[name][gone[name]] = np.nan
        return "written" if written else "skipped"

    def _rows_to_compare(self, evaluation: Evaluation) -> np.ndarray | None:
        """Rows that can differ from what was written: on a block that carried the block last written, the rows
        evaluated anew; otherwise every row (None)."""
        if evaluation.carried_from is None or evaluation.carried_from != self._written_block:
            return None
        return evaluation.evaluated_rows


__all__ = ["CandidateWriter", "candidate_member"]
