"""The ``pattern-cache`` callback: each group's most frequent activation patterns (seed run 2).

A pattern of group ``g`` on a sample is the set of latents of ``g`` that fire on it (written
as their sorted indices, ``"3,17,40"``; membership as of that step); samples where ``g`` is
silent add nothing. Each group has a :class:`PatternCache` holding at most ``capacity``
patterns with their counts:
a batch's patterns are merged in, then, if the cache is over its bound, the least frequent
patterns are evicted (ties: the least recently seen first, then the smaller key), so the
bound holds after every update. The caches are JSON (``extra_state``), checkpointed with
the run; the pipeline's report lists the top patterns.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from hsae.callback import Callback
from hsae_group_ortho.groups import code_entries


class PatternCache:
    """At most ``capacity`` patterns with ``[count, last_seen_step]``; the least frequent go first."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.entries: dict[str, list[int]] = {}
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, counts: Mapping[str, int], step: int) -> None:
        """Count this batch's patterns, then evict down to ``capacity``."""
        for key, n in counts.items():
            entry = self.entries.get(key)
            if entry is None:
                self.entries[key] = [int(n), step]
            else:
                entry[0] += int(n)
                entry[1] = step
        excess = len(self.entries) - self.capacity
        if excess > 0:
            # Least frequent first; among equals the least recently seen, then the smaller key.
            losers = heapq.nsmallest(excess, self.entries.items(), key=lambda kv: (kv[1][0], kv[1][1], kv[0]))
            for key, _ in losers:
                del self.entries[key]
            self.evicted += excess

    def top(self, n: int) -> list[tuple[str, int]]:
        """The ``n`` most frequent patterns with their counts."""
        best = heapq.nsmallest(n, self.entries.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
        return [(key, entry[0]) for key, entry in best]

    def to_state(self) -> dict[str, Any]:
        return {"entries": [[k, c, s] for k, (c, s) in self.entries.items()], "evicted": self.evicted}

    def load_state(self, state: dict[str, Any]) -> None:
        self.entries = {k: [int(c), int(s)] for k, c, s in state["entries"]}
        self.evicted = int(state["evicted"])


def batch_patterns(rows: np.ndarray, cols: np.ndarray, groups: np.ndarray, n_groups: int) -> list[Counter]:
    """Per group, a Counter of this batch's patterns (``rows``/``cols`` of firing latents; ``groups`` of every latent)."""
    out: list[Counter] = [Counter() for _ in range(n_groups)]
    if rows.size == 0:
        return out
    group = groups[cols]
    order = np.lexsort((cols, group, rows))
    rows, cols, group = rows[order], cols[order], group[order]
    # One segment per (sample, group); its latents, padded with -1, form one row of a matrix.
    starts = np.r_[0, np.flatnonzero((rows[1:] != rows[:-1]) | (group[1:] != group[:-1])) + 1]
    segment = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, rows.size]))
    position = np.arange(rows.size) - starts[segment]
    table = np.full((starts.size, position.max() + 2), -1, dtype=np.int64)
    table[:, 0] = group[starts]
    table[segment, position + 1] = cols
    for row, n in Counter(map(tuple, table.tolist())).items():
        out[row[0]][",".join(str(c) for c in row[1:] if c >= 0)] += n
    return out


class PatternCacheCallback(Callback):
    """Per group, count frequent activation patterns in a cache of bounded size."""

    name = "pattern-cache"
    requires = frozenset({"latent_groups"})  # model.groups: a GroupState

    @attrs.frozen
    class Config:
        """``capacity`` patterns per group (the seed's 1000); count every ``every``-th step's batch."""

        capacity: int = 1000
        every: int = 1

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        if config.capacity < 1 or config.every < 1:
            raise ValueError("capacity and every must be at least 1")
        self.caches: list[PatternCache] = []

    def on_step_end(self, batch, out, model, ctx) -> None:
        if ctx.step % self.config.every:
            return
        state = model.groups
        while len(self.caches) < state.n_groups:
            self.caches.append(PatternCache(self.config.capacity))
        rows, cols, _ = code_entries(out.codes)
        groups = state.assignment.cpu().numpy()
        for cache, counts in zip(self.caches, batch_patterns(rows.cpu().numpy(), cols.cpu().numpy(), groups, state.n_groups)):
            if counts:
                cache.add(counts, ctx.step)

    def top_patterns(self, n: int = 5) -> list[list[tuple[str, int]]]:
        """The ``n`` most frequent patterns of each group."""
        return [cache.top(n) for cache in self.caches]

    def extra_state(self) -> dict[str, Any]:
        return {"capacity": self.config.capacity, "groups": [cache.to_state() for cache in self.caches]}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.caches = []
        for saved in state.get("groups", []):
            cache = PatternCache(self.config.capacity)
            cache.load_state(saved)
            self.caches.append(cache)
