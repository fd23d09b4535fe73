"""The watcher's candidate writes: the full set once, then per block only what changed.

A member changes when it is new, when its ETA moved by at least ETA_RESOLUTION_SEC, or when it became (or
stopped being) liquidatable now. Details of an unchanged member keep the values of the block it last changed in
(its HFs move by less than the ETA resolution implies); members that left the set are removed.
"""

from __future__ import annotations

import polars as pl

from ..cache.candidates import write_candidate_changes
from ..cache.keys import candidate_member

ETA_RESOLUTION_SEC = 1.0


class CandidateWriter:
    def __init__(self, cache):
        self.cache = cache  # a ResilientCache
        self.live: pl.DataFrame | None = None  # member, eta_sec, liquidatable_now as last written

    def reset(self) -> None:
        """Next write rewrites the whole set (after a reorg, or Redis coming back)."""
        self.live = None

    def write(self, block: int, candidates: pl.DataFrame) -> str:
        current = candidates.with_columns(
            pl.concat_str([pl.col("user"), pl.lit(":"), pl.col("scenario")]).alias("member")
        )
        if self.live is None or not self.cache.reachable:
            outcome = self.cache.write_candidates(block, candidates)
            self.live = current.select("member", "eta_sec", "liquidatable_now") if self.cache.reachable else None
            return str(outcome)
        joined = current.join(self.live, on="member", how="left", suffix="_live")
        changed = joined.filter(
            pl.col("eta_sec_live").is_null()
            | ((pl.col("eta_sec") - pl.col("eta_sec_live")).abs() >= ETA_RESOLUTION_SEC)
            | (pl.col("liquidatable_now") != pl.col("liquidatable_now_live"))
        )
        removed = self.live.join(current.select("member"), on="member", how="anti")["member"].to_list()
        upserts = changed.select(candidates.columns)
        try:
            written = write_candidate_changes(self.cache.cache, block, upserts, removed)
        except Exception:  # Redis went away mid-write: the resilient path takes over, the next write is full
            self.reset()
            return str(self.cache.write_candidates(block, candidates))
        if written:
            kept = self.live.join(current.select("member"), on="member", how="semi")
            updated = changed.select("member", "eta_sec", "liquidatable_now")
            self.live = pl.concat([kept.join(updated.select("member"), on="member", how="anti"), updated])
        return "written" if written else "skipped"


__all__ = ["CandidateWriter", "candidate_member"]
