"""Vectorized tree sampling whose work is proportional to the active nodes.

The sampler walks the tree level by level over *all samples at once*, keeping only the
active ``(sample, node)`` pairs:

* children of a mutually exclusive parent: one uniform draw per active parent picks a
  child (or none) from the parent's alias table (Walker/Vose), in O(1) per draw;
* children of an independent parent: for each child, the parent's active samples are a
  Bernoulli process; the gaps between successes are geometric, so only the successes
  (plus a few overshoot draws) are ever generated. A forest root with thousands of rare
  children costs about its expected number of active children, not ``batch x children``.

It is written in numpy: the work is many medium-sized gathers, where numpy's lower
per-call overhead beats torch, and single-threaded code does not stall when the CPU is
shared (torch's parallel regions do). Results are sparse (COO torch tensors): nothing of
size ``batch x n_features`` is allocated unless :meth:`SparseActivations.dense` is called.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import numpy as np
import torch

from hsae_synthetic.tree import Tree


@attrs.frozen
class NodeSample:
    """Active ``(row, node)`` pairs of a batch, every node of the tree (read-out or not)."""

    rows: np.ndarray
    nodes: np.ndarray
    n_rows: int


@attrs.frozen
class SparseActivations:
    """True feature activations of a batch in COO form, sorted by (row, col)."""

    rows: torch.Tensor  # (nnz,) int64
    cols: torch.Tensor  # (nnz,) int64 feature index
    values: torch.Tensor  # (nnz,) float32, > 0
    n_rows: int
    n_features: int

    def dense(self) -> torch.Tensor:
        """The ``(n_rows, n_features)`` activation matrix."""
        out = torch.zeros(self.n_rows, self.n_features, dtype=self.values.dtype)
        out[self.rows, self.cols] = self.values
        return out

    def l0(self) -> torch.Tensor:
        """Number of active features per row, ``(n_rows,)`` float."""
        return torch.bincount(self.rows, minlength=self.n_rows).float()

    def offsets(self) -> torch.Tensor:
        """CSR row pointers ``(n_rows + 1,)``: row ``r`` is ``[offsets[r], offsets[r+1])``."""
        counts = torch.bincount(self.rows, minlength=self.n_rows)
        return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


def _ragged_arange(counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(c) for c in counts])`` without a Python loop."""
    starts = np.cumsum(counts) - counts
    return np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)


def bernoulli_positions(
    n: np.ndarray, p: np.ndarray, rng: np.random.Generator, *, slack: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Successes of independent Bernoulli streams: stream ``j`` has ``n[j]`` trials of prob ``p[j]``.

    Returns ``(stream, position)`` of every success, distributed exactly as
    ``rng.random(n[j]) < p[j]`` but generated from geometric gaps, so the cost is about
    the number of successes. Each round draws ``mean + slack * std + slack`` gaps per
    stream; streams that have not passed their end get another round (rare).
    """
    n = np.asarray(n, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_q = np.log1p(-p)  # -inf where p == 1: every gap is 1
    streams = np.flatnonzero((n > 0) & (p > 0))
    start = np.zeros(n.size, dtype=np.int64)  # next trial index to consider, per stream
    found_stream, found_pos = [], []
    while streams.size:
        ns, ps = n[streams], p[streams]
        left = ns - start[streams]
        mean = left * ps
        draws = np.minimum(np.ceil(mean + slack * np.sqrt(mean * (1 - ps)) + slack).astype(np.int64), left + 1)
        slot = np.repeat(np.arange(streams.size), draws)
        u = 1.0 - rng.random(slot.size)  # (0, 1]
        with np.errstate(invalid="ignore"):
            gaps = np.floor(np.log(u) / log_q[streams][slot]) + 1  # geometric on 1, 2, ...
        n_rep = ns[slot]
        gaps = np.minimum(gaps, n_rep + 1).astype(np.int64)
        csum = np.cumsum(gaps)
        seg_end = np.cumsum(draws) - 1
        before = np.concatenate([[0], csum[seg_end][:-1]])  # gaps of earlier streams
        pos = csum - np.repeat(before - start[streams], draws) - 1
        inside = np.flatnonzero(pos < n_rep)
        found_stream.append(streams[slot[inside]])
        found_pos.append(pos[inside])
        last = pos[seg_end]
        start[streams] = last + 1
        streams = streams[last < ns]
    if not found_stream:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(found_stream), np.concatenate(found_pos)


def alias_table(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias table over outcomes ``0..m-1`` with probabilities ``probs``.

    Draw ``j`` uniform in ``0..m-1`` and ``v`` uniform in [0, 1): the outcome is ``j`` if
    ``v < threshold[j]``, else ``alias[j]``. Returns ``(threshold, alias)``.
    """
    m = probs.size
    scaled = probs * m / probs.sum()
    threshold, alias = np.ones(m), np.arange(m)
    small = [i for i in range(m) if scaled[i] < 1.0]
    large = [i for i in range(m) if scaled[i] >= 1.0]
    while small and large:
        lo, hi = small.pop(), large.pop()
        threshold[lo], alias[lo] = scaled[lo], hi
        scaled[hi] -= 1.0 - scaled[lo]
        (small if scaled[hi] < 1.0 else large).append(hi)
    return threshold, alias  # outcomes left in a list keep threshold 1 (round-off)


class TreeSampler:
    """Samples a :class:`Tree`'s active nodes and feature activations, vectorized."""

    def __init__(self, tree: Tree, binary_default: bool = True) -> None:
        self.tree = tree
        self.n_features = tree.n_features
        self.binary = tree.feature_binary(binary_default)
        self.all_binary = bool(self.binary.all())
        self._build_alias_tables(tree)
        # Per depth: can every node have children / are all its parents exclusive or independent?
        inner = tree.child_count > 0
        self.depths: list[tuple[bool, set[bool]]] = []
        for d in range(int(tree.depth[inner].max()) + 1 if inner.any() else 0):
            at = tree.depth == d
            self.depths.append((bool(inner[at].all()), set(tree.exclusive[at & inner].tolist())))
        # Common case: only the root is a gate, so node n > 0 is feature n - 1.
        self.features_are_nodes_after_root = bool(tree.read_out[1:].all()) and not tree.read_out[0]

    def _build_alias_tables(self, tree: Tree) -> None:
        """One alias table per exclusive parent over (its children, "no child")."""
        start = np.zeros(tree.n_nodes, dtype=np.int64)
        size = np.ones(tree.n_nodes, dtype=np.int64)
        thresholds, outcomes, aliases = [], [], []
        offset = 0
        for node in np.flatnonzero(tree.exclusive & (tree.child_count > 0)):
            first, count = tree.child_start[node], tree.child_count[node]
            probs = tree.prob[first:first + count]
            threshold, alias = alias_table(np.append(probs, max(0.0, 1.0 - probs.sum())))
            node_of = np.append(np.arange(first, first + count), -1)  # outcome -> child node, -1 = none
            start[node], size[node] = offset, count + 1
            thresholds.append(threshold)
            outcomes.append(node_of)
            aliases.append(node_of[alias])
            offset += count + 1
        cat = lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
        self.alias_start, self.alias_size = start, size
        self.alias_threshold = cat(thresholds, np.float64)
        self.alias_primary, self.alias_other = cat(outcomes, np.int64), cat(aliases, np.int64)

    def _levels(self, n: int, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The active ``(rows, nodes)`` of each depth, root first."""
        tree = self.tree
        rows = np.arange(n, dtype=np.int64) if tree.prob[0] >= 1.0 else np.flatnonzero(rng.random(n) < tree.prob[0])
        nodes = np.zeros(rows.size, dtype=np.int64)
        yield rows, nodes
        for all_inner, kinds in self.depths:
            if rows.size:
                if not all_inner:
                    inner = np.flatnonzero(tree.child_count[nodes] > 0)
                    rows, nodes = rows[inner], nodes[inner]
                if kinds == {True}:
                    rows, nodes = self._exclusive_children(rows, nodes, rng)
                elif kinds == {False}:
                    rows, nodes = self._independent_children(rows, nodes, rng)
                else:
                    exclusive = tree.exclusive[nodes]
                    a = self._exclusive_children(rows[exclusive], nodes[exclusive], rng)
                    b = self._independent_children(rows[~exclusive], nodes[~exclusive], rng)
                    rows, nodes = np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])
            yield rows, nodes

    def _exclusive_children(self, rows: np.ndarray, parents: np.ndarray, rng: np.random.Generator):
        """One categorical draw per active exclusive parent: a child, or none (alias method)."""
        size = self.alias_size[parents]
        scaled = rng.random(rows.size) * size
        j = np.minimum(scaled.astype(np.int64), size - 1)
        slot = self.alias_start[parents] + j
        child = np.where(scaled - j < self.alias_threshold[slot], self.alias_primary[slot], self.alias_other[slot])
        hit = np.flatnonzero(child >= 0)
        return rows[hit], child[hit]

    def _independent_children(self, rows: np.ndarray, parents: np.ndarray, rng: np.random.Generator):
        """Each child of an active independent parent fires with its own probability."""
        if not rows.size:
            return rows, parents
        order = np.argsort(parents, kind="stable")
        rows, parents = rows[order], parents[order]
        first = np.flatnonzero(np.concatenate([[True], parents[1:] != parents[:-1]]))  # each parent's run
        counts = np.diff(np.append(first, parents.size))
        n_children = self.tree.child_count[parents[first]]
        slot = np.repeat(np.arange(first.size), n_children)  # stream -> parent run
        child = np.repeat(self.tree.child_start[parents[first]], n_children) + _ragged_arange(n_children)
        stream, pos = bernoulli_positions(counts[slot], self.tree.prob[child], rng)
        return rows[first[slot[stream]] + pos], child[stream]

    def sample_nodes(self, n: int, rng: np.random.Generator) -> NodeSample:
        """All active ``(row, node)`` pairs of ``n`` samples, read-out or not."""
        levels = list(self._levels(n, rng))
        return NodeSample(np.concatenate([r for r, _ in levels]), np.concatenate([c for _, c in levels]), n)

    def sample(self, n: int, rng: np.random.Generator) -> SparseActivations:
        """Feature activations of ``n`` samples, sorted by (row, feature)."""
        levels = list(self._levels(n, rng))
        if self.features_are_nodes_after_root:
            rows = np.concatenate([r for r, _ in levels[1:]])
            cols = np.concatenate([c for _, c in levels[1:]]) - 1
        else:
            rows = np.concatenate([r for r, _ in levels])
            cols = self.tree.feature[np.concatenate([c for _, c in levels])]
            keep = np.flatnonzero(cols >= 0)
            rows, cols = rows[keep], cols[keep]
        key = rows * self.n_features + cols  # unique per active feature, so any sort is stable
        order = np.argsort(key.astype(np.int32) if n * self.n_features < 2**31 else key)
        rows, cols = rows[order], cols[order]
        values = np.ones(rows.size, dtype=np.float32)
        if not self.all_binary:
            cont = np.flatnonzero(~self.binary[cols])
            values[cont] = 1.0 - rng.random(cont.size, dtype=np.float32)  # uniform (0, 1]
        return SparseActivations(torch.from_numpy(rows), torch.from_numpy(cols), torch.from_numpy(values), n, self.n_features)
