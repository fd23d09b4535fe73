"""The watcher's candidate writes: the full set once, then per block only what changed.

A member changes when it is new, when its ETA moved by at least ETA_RESOLUTION_SEC or ETA_RELATIVE of the ETA
last written (whichever is larger), or when it became (or stopped being) liquidatable now; members that left the
set are removed. Near-term ETAs keep the 1 s resolution; a far one (150 s) is a projection whose own volatility
band is wider than 10 %, and rewriting it on every price tick would cost more than the rest of the block. Details
of an unchanged member keep the values of the block it last changed in.

Only the changed members are sized and serialized (a market can hold tens of thousands of candidates, a block
changes a few hundred), and what was last written is kept as arrays row-aligned with the engine's position book
(rows never move while the book's generation holds), so finding the changes is a few vector comparisons, not a
join on user names.
"""

from __future__ import annotations

import numpy as np

from ..cache.candidates import write_candidate_changes
from ..cache.keys import candidate_member
from ..risk.engine import Evaluation

ETA_RESOLUTION_SEC = 1.0
ETA_RELATIVE = 0.1


class CandidateWriter:
    def __init__(self, cache):
        self.cache = cache  # a ResilientCache
        self._generation: int | None = None  # the book layout the arrays below follow; None: rewrite in full
        self.live_eta: dict[str, np.ndarray] = {}  # per scenario, per book row: ETA as written (NaN: not a member)
        self.live_now: dict[str, np.ndarray] = {}  # per scenario, per book row: liquidatable_now as written

    def reset(self) -> None:
        """Next write rewrites the whole set (after a reorg, or Redis coming back)."""
        self._generation = None

    def _remember(self, evaluation: Evaluation) -> None:
        now = evaluation.hf_current < 1.0
        self.live_eta, self.live_now = {}, {}
        for name, mask in evaluation.candidate_mask.items():
            self.live_eta[name] = np.where(mask, evaluation.eta[name], np.nan)
            self.live_now[name] = now & mask
        self._generation = evaluation.book.generation

    def _grown(self, height: int) -> None:
        """Users new to the book were appended: they have written nothing yet."""
        for name, live in self.live_eta.items():
            if live.size < height:
                self.live_eta[name] = np.concatenate([live, np.full(height - live.size, np.nan)])
                self.live_now[name] = np.concatenate([self.live_now[name], np.zeros(height - live.size, bool)])

    def write(self, evaluation: Evaluation) -> str:
        block = evaluation.block
        if self._generation != evaluation.book.generation or not self.cache.reachable:
            outcome = self.cache.write_candidates(block, evaluation.candidates)
            if self.cache.reachable:
                self._remember(evaluation)
            else:
                self.reset()
            return str(outcome)
        self._grown(evaluation.book.height)
        now = evaluation.hf_current < 1.0
        changed, gone = {}, {}
        for name, member in evaluation.candidate_mask.items():
            live = self.live_eta.get(name)
            if live is None:
                live = self.live_eta[name] = np.full(member.size, np.nan)
                self.live_now[name] = np.zeros(member.size, bool)
            was = ~np.isnan(live)
            with np.errstate(invalid="ignore"):
                moved = np.abs(evaluation.eta[name] - live) >= np.maximum(ETA_RESOLUTION_SEC, ETA_RELATIVE * live)
            changed[name] = np.flatnonzero(member & (~was | moved | (now != self.live_now[name])))
            gone[name] = np.flatnonzero(was & ~member)
        upserts = evaluation.candidate_frame(changed)
        removed = [
            candidate_member(user, name)
            for name, rows in gone.items()
            for user in evaluation.book.users_at(rows).to_list()
        ]
        try:
            written = write_candidate_changes(self.cache.cache, block, upserts, removed)
        except Exception:  # Redis went away mid-write: the resilient path takes over, the next write is full
            self.reset()
            return str(self.cache.write_candidates(block, evaluation.candidates))
        if written:
            for name, rows in changed.items():
                self.live_eta[name][rows] = evaluation.eta[name][rows]
                self.live_now[name][rows] = now[rows]
                self.live_eta[name][gone[name]] = np.nan
        return "written" if written else "skipped"


__all__ = ["CandidateWriter", "candidate_member"]
