"""The ``group-reassign`` callback: move latents to the group whose centroid they are nearest (seed runs 3-4).

Every step it keeps, per latent ``i``, an activation profile ``p_i``: the EMA of the
code-weighted mean input of the samples it fires on (the latent's counterpart of a group
centroid), and ``mass_i``, the EMA of its mean code per sample. Every ``every`` steps
inside the schedule ``[start_step, stop_fraction * total_steps)`` it:

1. measures ``dist[i, g] = 1 - cos(p_i - mu, c_g - mu)`` to every seen group centroid ``c_g``
   (``model.groups.centroids``; ``mu`` is ``model.groups.input_mean``, so the mean input that
   every profile and centroid share does not make them all look alike) and the preference
   ``pref[i, g] = dist[i, g(i)] - dist[i, g]`` (positive: group ``g`` is nearer than the
   latent's own; zero for latents with ``mass_i < min_mass`` and for groups without a
   centroid yet);
2. **momentum**: ``m <- momentum * m + (1 - momentum) * pref``, so a latent moves only after
   its preference has persisted (a constant preference ``s`` crosses ``threshold`` after
   ``log(1 - threshold / s) / log(momentum)`` updates, an alternating one maybe never);
3. **candidates**: latents whose best ``m[i, g]`` exceeds ``threshold``, largest first;
4. **cap and bounds**: at most ``max_moves`` moves, each only if the source group keeps at
   least ``min_size`` latents and the target stays at most ``max_size`` (defaults: half
   and 1.5 times the mean group size); a moved latent's momentum restarts at zero.

Profiles, masses and momenta are buffers of this callback, allocated at the first step.
"""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F

from hsae.callback import Callback
from hsae.errors import UserError
from hsae_group_ortho.groups import GroupState, code_entries


def preferences(profiles: torch.Tensor, centroids: torch.Tensor, seen: torch.Tensor, assignment: torch.Tensor,
                eligible: torch.Tensor) -> torch.Tensor:
    """``(d_sae, n_groups)``: how much nearer (in ``1 - cos``) each group is than the latent's own."""
    dist = 1 - F.normalize(profiles, dim=1) @ F.normalize(centroids, dim=1).T
    pref = dist.gather(1, assignment[:, None]) - dist
    return pref * (eligible[:, None] & seen[None, :])


def plan_moves(momentum: torch.Tensor, assignment: torch.Tensor, *, threshold: float, max_moves: int,
               min_size: int, max_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(latents, targets)`` to move: best momentum above ``threshold``, largest first, within the cap and bounds."""
    n_groups = momentum.shape[1]
    gain, target = momentum.max(dim=1)
    candidates = torch.nonzero((gain > threshold) & (target != assignment)).flatten()
    order = candidates[torch.sort(gain[candidates], descending=True, stable=True).indices]
    sizes = torch.bincount(assignment, minlength=n_groups).tolist()
    latents, targets = [], []
    for i in order.tolist():
        if len(latents) >= max_moves:
            break
        src, dst = int(assignment[i]), int(target[i])
        if sizes[src] - 1 < min_size or sizes[dst] + 1 > max_size:
            continue
        sizes[src] -= 1
        sizes[dst] += 1
        latents.append(i)
        targets.append(dst)
    as_tensor = lambda v: torch.tensor(v, dtype=torch.long, device=assignment.device)  # noqa: E731
    return as_tensor(latents), as_tensor(targets)


class GroupReassignCallback(Callback):
    """Migrate latents between groups by distance to the group centroids, damped and bounded."""

    name = "group-reassign"
    requires = frozenset({"latent_groups"})  # model.groups: a GroupState

    @attrs.frozen
    class Config:
        """Schedule (``every``, ``start_step``, ``stop_fraction``) and the run-4 stabilizers.

        ``momentum`` of the migration pressure, ``threshold`` it must exceed, ``max_moves`` per
        reassignment, group-size bounds ``min_size``/``max_size`` (unset: half and 1.5 times the
        mean group size), ``profile_decay`` of the latent profiles, ``min_mass`` below which a
        latent is too rarely active to move.
        """

        every: int = 50
        start_step: int = 200
        stop_fraction: float = 0.8
        momentum: float = 0.9
        threshold: float = 0.05
        max_moves: int = 8
        min_size: int | None = None
        max_size: int | None = None
        profile_decay: float = 0.99
        min_mass: float = 1e-3

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        c = config
        if c.every < 1 or c.max_moves < 0 or c.threshold < 0 or not 0 <= c.momentum < 1 or not 0 <= c.profile_decay < 1:
            raise ValueError("need every >= 1, max_moves >= 0, threshold >= 0, momentum and profile_decay in [0, 1)")
        self.register_buffer("profiles", torch.zeros(0, 0))
        self.register_buffer("mass", torch.zeros(0))
        self.register_buffer("momentum", torch.zeros(0, 0))
        self.register_buffer("moves", torch.zeros((), dtype=torch.long))

    def setup(self, model, data) -> None:  # noqa: ANN001
        state = model.groups
        d_sae, d_in = state.assignment.numel(), model.d_in
        self.profiles = torch.zeros(d_sae, d_in)
        self.mass = torch.zeros(d_sae)
        self.momentum = torch.zeros(d_sae, state.n_groups)

    def size_bounds(self, state: GroupState) -> tuple[int, int]:
        mean = state.assignment.numel() / state.n_groups
        lo = self.config.min_size if self.config.min_size is not None else max(1, math.floor(mean / 2))
        hi = self.config.max_size if self.config.max_size is not None else math.ceil(1.5 * mean)
        return lo, hi

    def in_schedule(self, step: int, total_steps: int) -> bool:
        c = self.config
        return c.start_step <= step < c.stop_fraction * total_steps and (step + 1) % c.every == 0

    @torch.no_grad()
    def track(self, state: GroupState, x: torch.Tensor, codes) -> None:  # noqa: ANN001
        """One EMA step of the latent profiles and masses."""
        d_sae, d_in = state.assignment.numel(), x.shape[1]
        profiles, mass = self.profiles, self.mass
        rows, cols, values = code_entries(codes)
        weighted = torch.zeros(d_sae, d_in, device=x.device).index_add_(0, cols, values.float()[:, None] * x.float()[rows])
        total = torch.zeros(d_sae, device=x.device).index_add_(0, cols, values.float())
        fired = total > 0
        first = fired & (mass == 0)
        rate = torch.where(first, 1.0, 1.0 - self.config.profile_decay) * fired
        profiles.add_(rate[:, None] * (weighted / total.clamp_min(1e-12)[:, None] - profiles))
        batch_mass = total / codes.n_rows
        decay = self.config.profile_decay
        mass.copy_(torch.where(first, batch_mass, decay * mass + (1 - decay) * batch_mass))

    @torch.no_grad()
    def reassign(self, state: GroupState) -> int:
        """Update the momenta and apply the planned moves; returns how many latents moved."""
        c = self.config
        momentum = self.momentum
        pref = preferences(self.profiles - state.input_mean, state.centered_centroids(), state.centroid_mass > 0,
                           state.assignment, self.mass >= c.min_mass)
        momentum.mul_(c.momentum).add_((1 - c.momentum) * pref)
        lo, hi = self.size_bounds(state)
        latents, targets = plan_moves(momentum, state.assignment, threshold=c.threshold, max_moves=c.max_moves,
                                      min_size=lo, max_size=hi)
        state.move(latents, targets)
        momentum[latents] = 0
        self.moves.add_(latents.numel())
        return latents.numel()

    def on_step_end(self, batch, out, model, ctx) -> None:
        state = model.groups
        self.track(state, batch.x, out.codes)
        if self.in_schedule(ctx.step, ctx.total_steps):
            if not bool((state.centroid_mass > 0).any()):
                raise UserError(f"callback {self.name!r} needs group centroids: add a \"group-centroids\" callback")
            self.reassign(state)
