"""Initialize an H-SAE from phase-1 teacher vectors (seed 001, phase 3).

Parent ``j`` (for the first ``min(m, P)`` teacher parents, in concept order):

* top-level decoder row and encoder column = the unit teacher parent vector ``ell_p``;
* the child deltas ``delta_c|p`` of that parent, orthogonalized against ``ell_p`` under the
  file's causal metric ``M`` (``<u, v>_M = u^T M v``, the ``causal_metric`` tensor; the
  identity when the file has none), span the expert's subspace: ``W_up_j`` is an
  orthonormal basis of their span (completed at random when they span fewer than ``s``
  dimensions), ``W_down_j = W_up_j^T``;
* child atom ``i`` (one per teacher child, up to ``a``): its child-decoder column is the
  delta's unit coordinates in that basis, its child-encoder row the same vector, so the
  atom's effective write direction ``W_up_j D_j[:, i]`` is the orthogonalized delta, so
  stage A's ``causal-ortho`` loss (same metric) starts at zero for the teacher's children.

Experts and atoms beyond what the teacher covers keep their random initialization.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import torch

from hsae.errors import UserError
from hsae.initializer import Initializer
from hsae.io import load_tensors


def _orthonormal_basis(vectors: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """``(d, size)`` orthonormal columns spanning ``vectors`` (rows) first, then random directions."""
    d = vectors.shape[1]
    filler = torch.randn(d, size, generator=generator, dtype=vectors.dtype)
    q, _ = torch.linalg.qr(torch.cat([vectors.T, filler], dim=1))
    return q[:, :size]


def orthogonalize(vectors: torch.Tensor, parent: torch.Tensor, metric: torch.Tensor) -> torch.Tensor:
    """``vectors`` (rows) minus their ``M``-projection on ``parent``: ``v - (v^T M p / p^T M p) p``."""
    m_parent = metric @ parent
    return vectors - (vectors @ m_parent / (parent @ m_parent).clamp_min(1e-12))[:, None] * parent[None, :]


def causal_metric(tensors: dict[str, torch.Tensor], d: int) -> torch.Tensor:
    """The teacher file's ``causal_metric`` in float64, or the identity when it has none."""
    metric = tensors.get("causal_metric")
    return torch.eye(d, dtype=torch.float64) if metric is None else metric.double()


class TeacherVectorsInitializer(Initializer):
    """Set an H-SAE's parents and children from a phase-1 teacher file."""

    name = "teacher-vectors"

    @attrs.frozen
    class Config:
        """``path``: a ``teacher-<metric>.safetensors`` written by the teacher pipeline's phase 1."""

        path: Path

    @classmethod
    def example_config(cls, workdir: Path) -> Config:
        return cls.Config(path=workdir / "teacher-data-covariance.safetensors")

    def apply(self, model, data) -> None:
        for attr in ("W_enc", "W_dec", "W_up", "W_down", "W_child_enc", "W_child_dec"):
            if not hasattr(model, attr):
                raise UserError(f"initializer {self.name!r} needs an H-SAE model (type = \"hsae\"); it has no {attr}")
        t = load_tensors(self.config.path)
        parents, vectors = t["parents"].tolist(), t["parent_vectors"].double()
        deltas, child_parent = t["child_deltas"].double(), t["child_parent"]
        if vectors.shape[1] != model.d_in:
            raise UserError(f"{self.config.path}: teacher vectors have d = {vectors.shape[1]}, the model d_in = {model.d_in}")
        metric = causal_metric(t, model.d_in)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for j, concept in enumerate(parents[: model.m]):
                parent = torch.nn.functional.normalize(vectors[j], dim=0)
                model.W_dec[j] = parent.to(model.W_dec.dtype)
                model.W_enc[:, j] = parent.to(model.W_enc.dtype)
                mine = deltas[child_parent == concept][: model.a]
                if len(mine) == 0:
                    continue
                orthogonal = orthogonalize(mine, parent, metric)
                basis = _orthonormal_basis(orthogonal[: model.s], model.s, generator)  # (d, s)
                model.W_up[j] = basis.to(model.W_up.dtype)
                model.W_down[j] = basis.T.to(model.W_down.dtype)
                coords = torch.nn.functional.normalize(orthogonal @ basis, dim=1)  # (n_children, s)
                model.W_child_dec[j, :, : len(coords)] = coords.T.to(model.W_child_dec.dtype)
                model.W_child_enc[j, : len(coords)] = coords.to(model.W_child_enc.dtype)
