"""Causal inner product: whitening samples into the causal space and mapping vectors back.

Park, Choe, Jiang & Veitch (2024) estimate concept vectors in a *causal space* in which the
Euclidean inner product is the causal inner product. For a matrix ``M`` of row vectors
(an LM unembedding ``gamma`` of shape ``(V, d)``, or data samples ``x`` of shape ``(n, d)``):

    mean = M.mean(0)
    Cov  = (M - mean)^T (M - mean) / n        # exact, eigh, no shrinkage
    g(m) = Cov^{-1/2} (m - mean)              # the sample map (:meth:`Whitening.transform`)

Three metric kinds build a :class:`Whitening`:

* ``"euclidean"``: ``Cov = I`` (no whitening); the mean is still subtracted when one is given.
* ``"matrix"``: ``Cov`` and ``mean`` from a given matrix, e.g. an unembedding ``gamma``.
* ``"data-covariance"``: ``Cov`` and ``mean`` from the data samples themselves.

Back-map convention (chosen explicitly)
---------------------------------------
A vector ``v`` estimated from whitened samples ``g`` lives in the causal space. Two maps
send it back to ``d``-dimensional input coordinates, and they differ whenever ``Cov != I``:

* ``"sample"`` (**the default**, :meth:`Whitening.to_input`): ``Cov^{1/2} v``. This is the
  exact inverse of the sample map (without the mean, since ``v`` is a displacement):
  if samples carrying a concept are displaced by ``v`` in causal space, they are displaced by
  ``Cov^{1/2} v`` in input space. It is the consistent choice whenever the samples fed to the
  estimator live in the same space as the vectors you want back, e.g. SAE inputs ``x`` whose
  decoder columns are to be initialised from the teacher (synthetic data, data-covariance
  or euclidean metric), or unembedding rows ``gamma(y)`` when you want unembedding-space
  directions.
* ``"dual"`` (:meth:`Whitening.to_dual`): ``Cov^{-1/2} v``. In Park et al. the unembedding
  ``gamma`` is whitened by ``A = Cov(gamma)^{-1/2}`` while the *representations* (residual
  stream / embedding vectors ``lambda``) transform by ``A^{-T} = Cov^{1/2}``, so that
  ``lambda^T gamma`` is preserved. A causal-space vector therefore corresponds to the
  residual-stream direction ``Cov^{-1/2} v``. **A user of an LM unembedding who estimates
  from token unembedding rows and wants a vector to add to (or to initialise an SAE on) the
  residual stream should use ``back_map="dual"``.**

Rank deficiency
---------------
Eigenvalues ``<= rel_eps * max_eigenvalue`` (default ``rel_eps = 1e-6``) are treated as
exactly zero: ``Cov^{-1/2}`` and ``Cov^{1/2}`` are then pseudo-powers that act on the
retained eigenspace only (the null space maps to 0). Samples lying in the retained
subspace round-trip exactly, and whitened data has covariance equal to the projector onto
that subspace (the identity when ``Cov`` has full rank).

Arrays may be numpy or torch (any device, any float dtype); everything returned is a numpy
``float64`` array.
"""

from __future__ import annotations

from typing import Literal

import attrs
import numpy as np

MetricKind = Literal["euclidean", "matrix", "data-covariance"]
BackMap = Literal["sample", "dual"]
METRIC_KINDS: tuple[str, ...] = ("euclidean", "matrix", "data-covariance")
BACK_MAPS: tuple[str, ...] = ("sample", "dual")
DEFAULT_REL_EPS = 1e-6
_CHUNK_ROWS = 8192


def as_numpy(a, dtype=np.float64) -> np.ndarray:
    """A numpy copy/view of a numpy array or torch tensor (detached, on the CPU)."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=dtype)


def _array(a) -> np.ndarray:
    return as_numpy(a, np.float64)


@attrs.frozen(eq=False)
class Whitening:
    """An affine map into the causal space, ``g = Cov^{-1/2} (x - mean)``, and its inverses.

    Build one with :meth:`euclidean`, :meth:`from_matrix`, :meth:`from_data` or
    :func:`fit_whitening`; do not fill the fields by hand.
    """

    kind: str
    mean: np.ndarray  # (d,)
    inv_sqrt: np.ndarray  # (d, d), symmetric Cov^{-1/2} (pseudo-power)
    sqrt: np.ndarray  # (d, d), symmetric Cov^{1/2} (pseudo-power)
    eigenvalues: np.ndarray  # (d,), ascending, as returned by eigh (floored ones kept as is)
    rank: int
    rel_eps: float = DEFAULT_REL_EPS

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def euclidean(cls, dim: int, mean=None) -> Whitening:
        """The identity metric; subtracts ``mean`` if given (so the LDA mean is centred)."""
        m = np.zeros(dim) if mean is None else _array(mean).reshape(dim)
        eye = np.eye(dim)
        return cls("euclidean", m, eye, eye.copy(), np.ones(dim), dim, 0.0)

    @classmethod
    def from_matrix(cls, matrix, *, rel_eps: float = DEFAULT_REL_EPS, kind: str = "matrix") -> Whitening:
        """Whitening from the rows of ``matrix`` (e.g. an unembedding ``gamma``, ``(V, d)``)."""
        mean, cov = _mean_and_covariance(matrix)
        return cls.from_covariance(cov, mean, rel_eps=rel_eps, kind=kind)

    @classmethod
    def from_data(cls, x, *, rel_eps: float = DEFAULT_REL_EPS) -> Whitening:
        """Whitening from the covariance of data samples ``x`` (``(n, d)``)."""
        return cls.from_matrix(x, rel_eps=rel_eps, kind="data-covariance")

    @classmethod
    def from_covariance(cls, cov, mean, *, rel_eps: float = DEFAULT_REL_EPS, kind: str = "matrix") -> Whitening:
        """Whitening from a given covariance (exact ``eigh``, eigenvalue floor ``rel_eps``)."""
        cov = _array(cov)
        cov = (cov + cov.T) / 2
        eigvals, eigvecs = np.linalg.eigh(cov)
        keep = eigvals > rel_eps * max(float(eigvals[-1]), 0.0)
        safe = np.where(keep, eigvals, 1.0)
        inv_sqrt = (eigvecs * np.where(keep, 1.0 / np.sqrt(safe), 0.0)) @ eigvecs.T
        sqrt = (eigvecs * np.where(keep, np.sqrt(safe), 0.0)) @ eigvecs.T
        return cls(kind, _array(mean), inv_sqrt, sqrt, eigvals, int(keep.sum()), rel_eps)

    # -- maps -----------------------------------------------------------------------------

    def transform(self, x) -> np.ndarray:
        """Samples ``(n, d)`` -> causal space: ``Cov^{-1/2} (x - mean)``."""
        return (_array(x) - self.mean) @ self.inv_sqrt

    def inverse_transform(self, g) -> np.ndarray:
        """Causal-space samples -> input space: ``mean + Cov^{1/2} g`` (inverse of transform)."""
        return _array(g) @ self.sqrt + self.mean

    def to_input(self, v) -> np.ndarray:
        """Causal-space vector(s) -> input-space displacement ``Cov^{1/2} v`` ("sample" map)."""
        return _array(v) @ self.sqrt

    def to_dual(self, v) -> np.ndarray:
        """Causal-space vector(s) -> dual (LM residual-stream) direction ``Cov^{-1/2} v``."""
        return _array(v) @ self.inv_sqrt

    def to_causal(self, v) -> np.ndarray:
        """Input-space displacement(s) -> causal space ``Cov^{-1/2} v`` (inverse of to_input)."""
        return _array(v) @ self.inv_sqrt

    def back_map(self, v, how: str = "sample") -> np.ndarray:
        """Map causal vectors back with the named convention (see the module docstring)."""
        if how == "sample":
            return self.to_input(v)
        if how == "dual":
            return self.to_dual(v)
        raise ValueError(f"unknown back_map {how!r}; choose one of {BACK_MAPS}")

    def causal_inner(self, u, v) -> np.ndarray:
        """Causal inner product of input-space displacements: ``u^T Cov^{+} v``."""
        return self.to_causal(u) @ self.to_causal(v).T


def fit_whitening(
    kind: str,
    *,
    data=None,
    matrix=None,
    center: bool = True,
    rel_eps: float = DEFAULT_REL_EPS,
) -> Whitening:
    """Build a :class:`Whitening` of ``kind`` from data samples and/or a ``matrix``.

    ``"euclidean"`` centres on the mean of ``data`` when ``center`` (and ``data`` is given);
    ``"matrix"`` needs ``matrix`` (e.g. an unembedding, ``(V, d)``); ``"data-covariance"``
    needs ``data`` (``(n, d)`` samples).
    """
    if kind == "euclidean":
        source = data if data is not None else matrix
        if source is None:
            raise ValueError("euclidean whitening needs data= (or matrix=) to know the dimension")
        mean = _mean_and_covariance(source, mean_only=True)[0] if center and data is not None else None
        return Whitening.euclidean(int(source.shape[1]), mean)
    if kind == "matrix":
        if matrix is None:
            raise ValueError("matrix whitening needs matrix= (e.g. an unembedding, V x d)")
        return Whitening.from_matrix(matrix, rel_eps=rel_eps)
    if kind == "data-covariance":
        if data is None:
            raise ValueError("data-covariance whitening needs data=")
        return Whitening.from_data(data, rel_eps=rel_eps)
    raise ValueError(f"unknown metric kind {kind!r}; choose one of {METRIC_KINDS}")


def _mean_and_covariance(m, mean_only: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Exact float64 mean and ``(M - mean)^T (M - mean) / n``, accumulated in row chunks.

    Chunking keeps memory at O(chunk * d) for large unembeddings (V ~ 256k rows).
    """
    n, d = int(m.shape[0]), int(m.shape[1])
    total = np.zeros(d)
    for start in range(0, n, _CHUNK_ROWS):
        total += _array(m[start : start + _CHUNK_ROWS]).sum(0)
    mean = total / n
    if mean_only:
        return mean, None
    cov = np.zeros((d, d))
    for start in range(0, n, _CHUNK_ROWS):
        chunk = _array(m[start : start + _CHUNK_ROWS]) - mean
        cov += chunk.T @ chunk
    return mean, cov / n


def cosine(u, v) -> float:
    """Cosine between two vectors (nan if either is zero)."""
    u, v = _array(u).ravel(), _array(v).ravel()
    denom = float(np.linalg.norm(u) * np.linalg.norm(v))
    return float(u @ v / denom) if denom > 0 else float("nan")


def angle_deg(u, v) -> float:
    """Angle between two vectors in degrees (nan if either is zero)."""
    c = cosine(u, v)
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))) if c == c else float("nan")
