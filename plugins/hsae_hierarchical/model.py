"""The H-SAE of Muchane, Richardson, Park and Veitch (2025), faithful to ``sae/moe_eqx.py``.

Shapes: ``d`` input size, ``m`` parents (experts), ``s`` expert subspace size, ``a`` child
atoms per expert, ``k`` parents kept per sample, ``B`` batch.

Forward pass (ANCHORS.md section 1)::

    z      = threshold(E x)                      (B, m)   hard threshold at 1/sqrt(d)
    J      = top-k(z)                            (B, k)   parent router
    for each selected j in J (gathered, never all m experts):
      u_j  = W_down_j x                          (B, k, s) on the full input, not a residual
      c_j  = leaky(E_j u_j)                      (B, k, a) offset 1/sqrt(d), slope 0.01
      i_j  = argmax c_j                          (B, k)   child router, top-1
      c_j  = c_j[i_j] * [z_j > 0]                (B, k)   binary gate by the parent
    x_hat_top = sum_j z_j d_j
    x_hat     = x_hat_top + sum_j W_up_j D_j[:, i_j] c_j

Parameters, stored under SAELens-style names so the top level exports like a plain SAE:

=============== ============ ==============================================================
name            shape        meaning
=============== ============ ==============================================================
``W_enc``       (d, m)       top-level encoder, ``E = W_enc.T`` (m, d)
``W_dec``       (m, d)       top-level decoder, ``D = W_dec.T`` (d, m); row j = parent j
``W_down``      (m, s, d)    per-expert projection into its subspace
``W_up``        (m, d, s)    per-expert projection back to the input space
``W_child_enc`` (m, a, s)    per-expert child encoder ``E_j``
``W_child_dec`` (m, s, a)    per-expert child decoder ``D_j``
=============== ============ ==============================================================

Initialization follows the official code: ``E`` is He-uniform (fan-in d) and ``D`` its
transpose, trained as a separate parameter; ``W_down`` is He-uniform with each of its
``s`` rows scaled to unit norm and ``W_up`` its transpose; ``E_j`` likewise with unit rows
and ``D_j`` its transpose. The top-level decoder is *not* normalized at init (its columns
have norm about sqrt(2)); the trainer renormalizes it after the first step, as the
official ``normalize_decoders`` does. Unit-norm constraints (gradient projection and
renormalization, by the trainer) apply to the columns of ``D`` and of every ``D_j``,
exactly the two the official code normalizes; ``W_up`` and ``W_down`` are free.

No bias: the published configuration has ``bias = false``. Inputs are not normalized
here; the official pipeline L2-normalizes them in its data loader (ANCHORS section 1).

Details kept from the official code: thresholds pass values ``>= offset``; the leaky slope
multiplies the code itself (``0.01 * c``, not ``0.01 * (c - offset)``); the argmax child
is kept whatever its value, so a gated-in child can be small or even negative. One
unavoidable difference: when fewer than k parents pass the threshold, the top-k picks
among zeros, and which zero parents get selected (gated off, but their children still
count in the L1) follows ``torch.topk``'s tie order, not JAX's lowest-index-first.

Latent numbering of the ``d_sae = m + m * a`` codes: parent j is column ``j``; child i of
parent j is column ``m + j * a + i``.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from torch import nn

from hsae.config.spec import RouterSpec
from hsae.model import SAE, Codes, SAEOutput, saelens_incompatible
from hsae_hierarchical.routers import ChildTop1Router, ParentTopKRouter
from hsae_hierarchical.sparse import SlotGrouping, gather_dot, routed_entries, scatter_rows


def _he_uniform(*shape: int, fan_in: int) -> torch.Tensor:
    """``jax.nn.initializers.he_uniform``: U(-b, b) with b = sqrt(6 / fan_in)."""
    bound = (6.0 / fan_in) ** 0.5
    return torch.empty(*shape).uniform_(-bound, bound)


def _unit_rows(w: torch.Tensor) -> torch.Tensor:
    return w / w.norm(dim=-1, keepdim=True).clamp_min(1e-12)


class HierarchicalSAE(SAE):
    """H-SAE (Muchane et al. 2025): top-k parents, each gating a top-1 child in its own subspace."""

    name = "hsae"
    # extras["x_hat_top"]; extras["parent_acts"], ["child_acts"]; W_enc and W_dec; latent_parent()
    provides = frozenset({"top_reconstruction", "level_activations", "linear_encoder", "linear_decoder",
                          "latent_parent"})
    architecture = "hsae"

    @attrs.frozen
    class Config:
        """``n_parents`` (m) experts, each with a ``subspace`` (s) of ``n_children`` (a) atoms;
        ``parent_router`` picks k parents (``k`` lives there), ``child_router`` one child each."""

        n_parents: int = 1024
        subspace: int = 4
        n_children: int = 16
        parent_router: RouterSpec = RouterSpec("parent-topk")
        child_router: RouterSpec = RouterSpec("child-top1")

    def __init__(self, config: Config, *, d_in: int) -> None:
        super().__init__(config, d_in=d_in)
        m, s, a, d = config.n_parents, config.subspace, config.n_children, d_in
        for key in ("n_parents", "subspace", "n_children"):
            if getattr(config, key) <= 0:
                raise ValueError(f"{key} must be positive, got {getattr(config, key)}")
        self.m, self.s, self.a = m, s, a
        self.d_sae = m + m * a
        for key, base in (("parent_router", ParentTopKRouter), ("child_router", ChildTop1Router)):
            if not issubclass(getattr(config, key).cls, base):
                raise ValueError(f"{key} must be a {base.name} router (or a subclass), got {getattr(config, key).type!r}")
        # Both thresholds default to 1/sqrt(d) of the input, so the routers get d_in too.
        self.parent_router = config.parent_router.build(d_sae=m, d_in=d)
        self.child_router = config.child_router.build(d_sae=a, d_in=d)
        self.k = self.parent_router.k

        encoder = _he_uniform(m, d, fan_in=d)  # E (m, d)
        self.W_enc = nn.Parameter(encoder.t().contiguous())  # (d, m)
        self.W_dec = nn.Parameter(encoder.clone())  # (m, d): D = E^T
        down = _unit_rows(_he_uniform(m, s, d, fan_in=d))
        self.W_down = nn.Parameter(down)  # (m, s, d)
        # (m, d, s), stored s-major so that each (expert, subspace axis) column is a contiguous row.
        self.W_up = nn.Parameter(down.clone().transpose(1, 2))
        child = _unit_rows(_he_uniform(m, a, s, fan_in=s))
        self.W_child_enc = nn.Parameter(child)  # (m, a, s)
        self.W_child_dec = nn.Parameter(rearrange(child, "m a s -> m s a").contiguous())  # (m, s, a)

    # -- forward ---------------------------------------------------------------------------

    def _parents(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Top-level pre-codes ``E x`` (B, m), thresholded codes (B, m), selected parents (B, k)."""
        pre = x @ self.W_enc
        acts = self.parent_router.activate(pre)
        with torch.no_grad():
            idx = self.parent_router.top(acts)
        return pre, acts, idx

    def forward(self, x: torch.Tensor) -> SAEOutput:
        """Gathered forward: children are computed for the k routed experts of each sample only."""
        B, m, s, a, k = x.shape[0], self.m, self.s, self.a, self.k
        pre, parent_acts, idx = self._parents(x)
        z = parent_acts.gather(1, idx)  # (B, k) parent codes of the selected experts
        with torch.no_grad():  # index lists of the gathered products
            slots = SlotGrouping.of(idx, m)
            per_parent = routed_entries(slots, 1, rows_per_slot=False)  # rows: samples, cols: j
            per_axis = routed_entries(slots, s, rows_per_slot=False)  # rows: samples, cols: (j, s)
        # u_j = W_down_j x, then the child codes E_j u_j, for the selected experts only. The
        # child encoders are tiny (a * s values), so gathering them outright is cheapest.
        u = gather_dot(x, self.W_down.reshape(m * s, self.d_in), per_axis).view(B, k, 1, s)
        W_child_enc = F.embedding(idx, self.W_child_enc.reshape(m, a * s)).view(B, k, a, s)
        child_pre = (W_child_enc * u).sum(-1)  # (B, k, a)
        child_acts = self.child_router.activate(child_pre)
        with torch.no_grad():
            atom = self.child_router.top(child_acts).squeeze(-1)  # (B, k)
        c = child_acts.gather(2, atom.unsqueeze(-1)).squeeze(-1) * (z > 0)  # (B, k), gated by the parent
        # Decode: sum_j z_j d_j + W_up_j (D_j[:, i_j] c_j).
        x_hat_top = scatter_rows(z.reshape(-1), self.W_dec, per_parent)
        lifted = self.W_child_dec[idx, :, atom] * c.unsqueeze(-1)  # (B, k, s)
        W_up_rows = self.W_up.transpose(1, 2).reshape(m * s, self.d_in)  # a view: W_up is stored s-major
        x_hat = x_hat_top + scatter_rows(lifted.reshape(-1), W_up_rows, per_axis)

        codes = Codes.from_sparse(
            torch.cat([per_parent.rows, per_parent.rows]), torch.cat([idx.reshape(-1), (m + idx * a + atom).reshape(-1)]),
            torch.cat([z.reshape(-1), c.reshape(-1)]), B, self.d_sae,
        )
        extras = {
            "x_hat_top": x_hat_top,
            "parent_pre": pre,  # (B, m) E x, with gradient
            "parent_acts": parent_acts,  # (B, m) thresholded, before top-k: the L1 term's
            "parent_idx": idx,  # (B, k) selected experts
            "parent_values": z,  # (B, k)
            "child_pre": child_pre,  # (B, k, a) E_j W_down_j x of the selected experts
            "child_acts": child_acts,  # (B, k, a) leaky, before the argmax: the L1 term's
            "child_idx": atom,  # (B, k) argmax atom of each selected expert
            "child_values": c,  # (B, k) gated
        }
        return SAEOutput(x_hat=x_hat, codes=codes, pre=pre.detach(), extras=extras)

    def forward_dense(self, x: torch.Tensor) -> SAEOutput:
        """Reference forward that computes children for all m experts, then masks.

        For tests and benchmarks only: it does m/k times the child work of :meth:`forward`.
        Codes are dense ``(B, d_sae)``; ``extras`` hold the same keys as :meth:`forward`.
        """
        pre, parent_acts, idx = self._parents(x)
        selected = torch.zeros_like(parent_acts).scatter(1, idx, 1.0)  # (B, m)
        z_all = parent_acts * selected
        gate = selected * (parent_acts > 0)
        u = einsum(self.W_down, x, "m s d, b d -> b m s")
        child_pre_all = einsum(self.W_child_enc, u, "m a s, b m s -> b m a")
        child_acts_all = self.child_router.activate(child_pre_all)
        with torch.no_grad():
            atom_all = self.child_router.top(child_acts_all).squeeze(-1)  # (B, m)
        onehot = F.one_hot(atom_all, self.a).to(x.dtype)
        c_all = child_acts_all * onehot * gate.unsqueeze(-1)  # (B, m, a)
        x_hat_top = z_all @ self.W_dec
        lifted = einsum(self.W_child_dec, c_all, "m s a, b m a -> b m s")
        x_hat = x_hat_top + einsum(self.W_up, lifted, "m d s, b m s -> b d")

        def at_selected(t: torch.Tensor) -> torch.Tensor:
            return t[torch.arange(x.shape[0], device=x.device).unsqueeze(1), idx]

        extras = {
            "x_hat_top": x_hat_top,
            "parent_pre": pre,
            "parent_acts": parent_acts,
            "parent_idx": idx,
            "parent_values": parent_acts.gather(1, idx),
            "child_pre": at_selected(child_pre_all),
            "child_acts": at_selected(child_acts_all),
            "child_idx": at_selected(atom_all),
            "child_values": at_selected(c_all.sum(-1)),
        }
        codes = Codes.from_dense(torch.cat([z_all, c_all.flatten(1)], dim=1))
        return SAEOutput(x_hat=x_hat, codes=codes, pre=pre.detach(), extras=extras)

    # -- decoding and directions -----------------------------------------------------------

    def child_directions(self) -> torch.Tensor:
        """``(m, a, d)``: what child i of parent j writes, ``W_up_j D_j[:, i]``."""
        return einsum(self.W_up, self.W_child_dec, "m d s, m s a -> m a d")

    def decoder_directions(self) -> torch.Tensor:
        """``(m + m * a, d)``: the parent directions, then each parent's child directions."""
        return torch.cat([self.W_dec, self.child_directions().flatten(0, 1)], dim=0)

    def decode(self, codes: Codes, bias: bool = True) -> torch.Tensor:
        """Reconstruction from any codes over the ``m + m * a`` latents (the H-SAE has no bias)."""
        if not codes.is_sparse:
            dense = codes.values.to(self.W_dec.dtype)
            return dense[:, : self.m] @ self.W_dec + dense[:, self.m :] @ self.child_directions().flatten(0, 1)
        is_child = codes.cols >= self.m
        expert = torch.where(is_child, (codes.cols - self.m) // self.a, codes.cols)
        atom = (codes.cols - self.m).clamp_min(0) % self.a
        parent_dir = self.W_dec[expert]
        child_dir = einsum(self.W_up[expert], self.W_child_dec[expert, :, atom], "n d s, n s -> n d")
        directions = torch.where(is_child.unsqueeze(1), child_dir, parent_dir)
        out = directions.new_zeros(codes.n_rows, self.d_in)
        return out.index_add(0, codes.rows, codes.values.to(directions.dtype).unsqueeze(1) * directions)

    def latent_parent(self) -> torch.Tensor:
        """``(d_sae,)`` long: the parent of each latent, -1 for the parents themselves."""
        parents = torch.full((self.m,), -1, dtype=torch.long)
        return torch.cat([parents, torch.arange(self.m).repeat_interleave(self.a)]).to(self.W_dec.device)

    # -- training hooks --------------------------------------------------------------------

    def unit_norm_parameters(self) -> list[tuple[nn.Parameter, int]]:
        """Columns of the top decoder (rows of ``W_dec``) and of every child decoder ``D_j``."""
        return [(self.W_dec, 1), (self.W_child_dec, 1)]

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Freezable groups; ``decoders`` / ``encoders`` cover every parameter on that side."""
        return {
            "encoder": [self.W_enc],
            "decoder": [self.W_dec],
            "experts": [self.W_down, self.W_up],
            "child_encoder": [self.W_child_enc],
            "child_decoder": [self.W_child_dec],
            "encoders": [self.W_enc, self.W_down, self.W_child_enc],
            "decoders": [self.W_dec, self.W_up, self.W_child_dec],
            "all": list(self.parameters()),
        }

    def saelens_cfg(self) -> dict[str, Any]:
        return {
            **saelens_incompatible("hsae", "H-SAE routes each sample to child latents in per-parent subspaces, "
                                           "which no SAELens architecture does"),
            "n_parents": self.m,
            "subspace": self.s,
            "n_children": self.a,
            **self.parent_router.saelens_fields(),
            **self.child_router.saelens_fields(),
        }
