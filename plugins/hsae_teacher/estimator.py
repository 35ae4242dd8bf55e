"""LDA-like concept vectors (Park et al. 2024) and the parent/child teacher built from them.

For the whitened vectors ``g`` (rows) of the samples carrying a concept:

    mu      = mean(g)
    Sigma   = Ledoit-Wolf covariance of g (centred: sklearn ``LedoitWolf(assume_centered=False)``)
    g_tilde = pinv(Sigma) mu / ||pinv(Sigma) mu||
    ell     = (g_tilde . mu) g_tilde            # the magnitude is kept

This is ``estimate_single_dir_from_embeddings`` of KihoPark/LLM_Categorical_Hierarchical_
Representations (``sklearn.covariance.ledoit_wolf`` centres by default).

The teacher: ``ell_p`` for every parent concept (one that has children, or any top-level
concept), ``ell_c`` for every child, and the child deltas ``delta_c|p = ell_c - ell_p``
computed on the **unnormalized** vectors. (Normalizing ``ell_c`` and ``ell_p`` first, as the
seed's origin code did, makes ``<ell_p, delta> = |ell_p| (cos - 1) <= 0``: the angle is then
at least 90 degrees whatever the data, and the orthogonality check can never fail.)

The labels say which concepts are active in each sample; true directions are never used.

What the vector measures: ``ell`` is the class mean ``mu`` projected on the LDA direction, so
``g . ell / ||ell||^2`` averages exactly 1 over the concept's samples. Directions in which the
concept's own samples vary a lot (e.g. its children switching on and off) are down-weighted,
so a parent vector tends to become insensitive to its children. On planted data (see
``tests/test_teacher_geometry.py``) the recovered directions are good when that within-class
variation is moderate compared with isotropic noise; when children dominate it under the
euclidean metric, ``ell_p`` tilts away from the children and a leaning hierarchy can still
show angles near 90 degrees, with a low cosine of ``ell_p`` to the true parent instead.
"""

from __future__ import annotations

import attrs
import numpy as np
from sklearn.covariance import LedoitWolf, ledoit_wolf_shrinkage
from threadpoolctl import threadpool_limits

from .geometry import BACK_MAPS, Whitening, as_numpy

DEFAULT_MIN_SAMPLES = 20


def lda_vector(g) -> np.ndarray:
    """The LDA-like concept vector ``ell`` of the whitened samples ``g`` (``(n, d)``, n >= 2).

    Returns a ``(d,)`` float64 vector; all zeros if ``pinv(Sigma) mu`` is zero.
    """
    g = as_numpy(g)
    if g.ndim != 2 or g.shape[0] < 2:
        raise ValueError(f"lda_vector needs an (n >= 2, d) array, got shape {g.shape}")
    mu = g.mean(0)
    w = _lw_pinv_times(g, mu)
    norm = float(np.linalg.norm(w))
    if norm == 0.0 or not np.isfinite(norm):
        return np.zeros_like(mu)
    g_tilde = w / norm
    return float(g_tilde @ mu) * g_tilde


def ledoit_wolf_covariance(g) -> np.ndarray:
    """Ledoit-Wolf covariance of the rows of ``g`` (centred), as sklearn's ``LedoitWolf``."""
    return LedoitWolf(assume_centered=False).fit(as_numpy(g)).covariance_


def _lw_pinv_times(g: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``pinv(Sigma_LW) v`` for the Ledoit-Wolf covariance of ``g``.

    With fewer samples than dimensions (``n < d``, e.g. a token category of an LM with
    ``d`` in the thousands) and a positive shrinkage, ``Sigma_LW = a I + b Xc^T Xc`` is
    invertible and the Woodbury identity gives the same vector in O(n^2 d) instead of a
    ``d x d`` pseudo-inverse. Otherwise the covariance is built with sklearn's ``LedoitWolf``;
    it is solved directly when positive definite, else pseudo-inverted.
    """
    n, d = g.shape
    if n < d and d > 1:
        xc = g - g.mean(0)
        shrinkage = float(ledoit_wolf_shrinkage(xc, assume_centered=True))
        a = shrinkage * float(np.sum(xc * xc)) / (n * d)  # shrinkage * trace(S) / d
        if a > 0:
            b = (1.0 - shrinkage) / n
            if b == 0:
                return v / a
            inner = np.linalg.solve(np.eye(n) * (a / b) + xc @ xc.T, xc @ v)
            return (v - xc.T @ inner) / a
    lw = LedoitWolf(assume_centered=False).fit(g)
    if lw.shrinkage_ > 0 and np.trace(lw.covariance_) > 0:
        # positive definite, so pinv(Sigma) v == solve(Sigma, v); solve avoids an eigh that
        # is needlessly slow for small d when BLAS threads compete for cores
        return np.linalg.solve(lw.covariance_, v)
    return np.linalg.pinv(lw.covariance_, hermitian=True) @ v


@attrs.frozen
class TeacherConfig:
    """Options of :func:`estimate_teacher`.

    ``min_samples``: concepts with fewer positive samples are skipped (and listed).
    ``max_samples``: cap on the samples used per concept (seeded subsample); None = all.
    ``back_map``: ``"sample"`` (``Cov^{1/2} v``, default) or ``"dual"`` (``Cov^{-1/2} v``,
    for LM residual-stream directions from an unembedding metric); see ``geometry``.
    ``blas_threads``: BLAS threads during the per-concept fits. 1 by default: the fits are
    many and small, and multi-threaded OpenBLAS gets 10x slower or worse when the cores are
    shared; ``None`` leaves the process setting alone.
    """

    min_samples: int = attrs.field(default=DEFAULT_MIN_SAMPLES, validator=attrs.validators.ge(2))
    max_samples: int | None = None
    back_map: str = attrs.field(default="sample", validator=attrs.validators.in_(BACK_MAPS))
    seed: int = 0
    blas_threads: int | None = 1


@attrs.frozen(eq=False)
class Teacher:
    """Teacher vectors in the causal space (``*_causal``) and mapped back (``*_input``).

    Row ``i`` of ``vectors_causal``/``vectors_input`` belongs to concept ``concepts[i]``.
    Row ``j`` of ``deltas_*`` belongs to child ``children[j]`` with parent ``child_parent[j]``.
    """

    concepts: np.ndarray  # (K,) int: every estimated concept
    vectors_causal: np.ndarray  # (K, d) ell
    vectors_input: np.ndarray  # (K, d)
    parents: np.ndarray  # (P,) int: estimated concepts with children, or top-level
    children: np.ndarray  # (Q,) int: estimated children whose parent is estimated
    child_parent: np.ndarray  # (Q,) int: the parent concept of each child
    deltas_causal: np.ndarray  # (Q, d) ell_c - ell_p, unnormalized
    deltas_input: np.ndarray  # (Q, d)
    n_positive: np.ndarray  # (C,) int: positive samples per concept (before any cap)
    skipped: tuple[int, ...]  # concepts with fewer than min_samples positives
    orphans: tuple[int, ...]  # estimated children whose parent was skipped (no delta)
    whitening_kind: str
    back_map: str
    min_samples: int

    def rows(self, concepts) -> np.ndarray:
        """Rows of ``concepts`` in ``vectors_*`` (KeyError if one was not estimated)."""
        concepts = np.asarray(concepts, dtype=np.int64).reshape(-1)
        rows = np.searchsorted(self.concepts, concepts)  # ``concepts`` is sorted
        found = rows < self.concepts.size
        found[found] = self.concepts[rows[found]] == concepts[found]
        if not found.all():
            raise KeyError(f"concepts not estimated: {concepts[~found].tolist()}")
        return rows

    def vector(self, concept: int, space: str = "causal") -> np.ndarray:
        """``ell`` of one concept in ``"causal"`` or ``"input"`` space."""
        return self._table(space)[self.rows([concept])[0]]

    def vectors_of(self, concepts, space: str = "causal") -> np.ndarray:
        """``ell`` rows of several concepts, ``(len(concepts), d)``."""
        return self._table(space)[self.rows(concepts)]

    @property
    def parent_vectors_causal(self) -> np.ndarray:
        return self.vectors_of(self.parents, "causal")

    @property
    def parent_vectors_input(self) -> np.ndarray:
        return self.vectors_of(self.parents, "input")

    @property
    def child_vectors_causal(self) -> np.ndarray:
        return self.vectors_of(self.children, "causal")

    @property
    def child_vectors_input(self) -> np.ndarray:
        return self.vectors_of(self.children, "input")

    def _table(self, space: str) -> np.ndarray:
        if space == "causal":
            return self.vectors_causal
        if space == "input":
            return self.vectors_input
        raise ValueError(f"space must be 'causal' or 'input', got {space!r}")


def check_hierarchy(parent_of, n_concepts: int) -> np.ndarray:
    """Validate ``parent_of`` (``-1`` for top level) and return it as an int array."""
    parent_of = np.asarray(as_numpy(parent_of, np.int64)).reshape(-1)
    if parent_of.shape[0] != n_concepts:
        raise ValueError(f"parent_of has {parent_of.shape[0]} entries, labels have {n_concepts} concepts")
    if np.any((parent_of < -1) | (parent_of >= n_concepts)):
        raise ValueError("parent_of entries must be -1 or a concept index")
    for start in range(n_concepts):  # walk up from every concept; a cycle never reaches -1
        node, steps = start, 0
        while node != -1:
            node, steps = int(parent_of[node]), steps + 1
            if steps > n_concepts:
                raise ValueError(f"parent_of has a cycle through concept {start}")
    return parent_of


def parent_roles(parent_of: np.ndarray) -> np.ndarray:
    """Boolean mask of concepts that act as parents: top-level or having children."""
    has_children = np.zeros(parent_of.shape[0], dtype=bool)
    has_children[parent_of[parent_of >= 0]] = True
    return (parent_of == -1) | has_children


def estimate_teacher(
    x,
    labels,
    parent_of,
    whitening: Whitening,
    config: TeacherConfig | None = None,
) -> Teacher:
    """Estimate parent vectors, child vectors and child deltas from labelled samples.

    ``x``: ``(n, d)`` samples; ``labels``: ``(n, C)`` bool, concept active per sample;
    ``parent_of``: ``(C,)`` parent concept index, ``-1`` for top level.
    """
    return teacher_from_causal(whitening.transform(x), labels, parent_of, whitening, config)


def teacher_from_causal(
    g,
    labels,
    parent_of,
    whitening: Whitening,
    config: TeacherConfig | None = None,
) -> Teacher:
    """:func:`estimate_teacher` on samples already mapped into the causal space."""
    config = config or TeacherConfig()
    g = as_numpy(g)
    labels = as_numpy(labels, bool)
    if labels.ndim != 2 or labels.shape[0] != g.shape[0]:
        raise ValueError(f"labels must be (n, C) with n = {g.shape[0]}, got {labels.shape}")
    parent_of = check_hierarchy(parent_of, labels.shape[1])
    n_positive = labels.sum(0).astype(np.int64)
    estimated = n_positive >= config.min_samples
    concepts = np.flatnonzero(estimated)
    rng = np.random.default_rng(config.seed)
    vectors = np.zeros((concepts.size, g.shape[1]))
    with threadpool_limits(limits=config.blas_threads, user_api="blas"):
        for i, c in enumerate(concepts):
            vectors[i] = lda_vector(g[_sample_rows(labels[:, c], config.max_samples, rng)])

    parents = concepts[parent_roles(parent_of)[concepts]]
    is_child = estimated & (parent_of >= 0)
    has_parent = is_child & estimated[np.maximum(parent_of, 0)]
    children = np.flatnonzero(has_parent)
    orphans = tuple(int(c) for c in np.flatnonzero(is_child & ~has_parent))
    child_parent = parent_of[children]
    # unnormalized difference: normalizing first would force every angle to >= 90 degrees
    deltas = vectors[np.searchsorted(concepts, children)] - vectors[np.searchsorted(concepts, child_parent)]

    return Teacher(
        concepts=concepts,
        vectors_causal=vectors,
        vectors_input=whitening.back_map(vectors, config.back_map),
        parents=parents,
        children=children,
        child_parent=child_parent,
        deltas_causal=deltas,
        deltas_input=whitening.back_map(deltas, config.back_map),
        n_positive=n_positive,
        skipped=tuple(int(c) for c in np.flatnonzero(~estimated)),
        orphans=orphans,
        whitening_kind=whitening.kind,
        back_map=config.back_map,
        min_samples=config.min_samples,
    )


def _sample_rows(mask: np.ndarray, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    """Indices of the positive samples, subsampled to ``cap`` without replacement."""
    rows = np.flatnonzero(mask)
    if cap is not None and rows.size > cap:
        rows = np.sort(rng.choice(rows, size=cap, replace=False))
    return rows
