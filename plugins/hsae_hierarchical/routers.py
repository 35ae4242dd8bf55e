"""The two routers of an H-SAE: top-k parents after a hard threshold, top-1 child after a leaky one.

Both follow ``sae/moe_eqx.py`` of the official code (Muchane et al. 2025):

* parents: ``z = where(pre >= offset, pre, 0)`` (``leaky_offset_relu`` with slope 0), then
  the top ``k`` of ``z``;
* children: ``c = where(pre >= offset, pre, slope * pre)`` (slope 0.01; note the slope
  multiplies ``pre`` itself, not ``pre - offset``), then the argmax atom.

In both, ``offset`` defaults to ``1 / sqrt(d_in)`` of the *input* (not of the subspace).
The router cannot know ``d_in`` from its own ``d_sae``, so the model passes ``d_in`` when
it builds them; a router built standalone without ``d_in`` uses offset 0 unless its
config sets one.

They keep the :class:`hsae.model.Router` interface (``select`` / ``activate`` /
``forward`` -> :class:`Codes`), so they also run alone, and add :meth:`top`, which returns
the fixed-size ``(B, n)`` index matrix the H-SAE gathers its experts and atoms with.
"""

from __future__ import annotations

import math

import attrs
import torch
from einops import repeat

from hsae.model import Router


def hard_threshold(pre: torch.Tensor, offset: float) -> torch.Tensor:
    """``pre`` where ``pre >= offset``, else 0 (the top-level activation)."""
    return torch.where(pre >= offset, pre, torch.zeros_like(pre))


def leaky_threshold(pre: torch.Tensor, offset: float, slope: float) -> torch.Tensor:
    """``pre`` where ``pre >= offset``, else ``slope * pre`` (the child activation)."""
    return torch.where(pre >= offset, pre, slope * pre)


def _resolve_offset(offset: float | None, d_in: int | None) -> float:
    if offset is not None:
        return float(offset)
    return 1.0 / math.sqrt(d_in) if d_in else 0.0


class _FixedCountRouter(Router):
    """A sparse router that keeps the same number ``n`` of latents in every row."""

    sparse = True
    n_keep: int

    def top(self, acts: torch.Tensor) -> torch.Tensor:
        """``(B, n_keep)`` indices of the kept latents of the *activated* codes ``acts``."""
        raise NotImplementedError

    def select(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cols = self.top(self.activate(pre))
        rows = repeat(torch.arange(pre.shape[0], device=pre.device), "b -> b n", n=cols.shape[1])
        return rows.reshape(-1), cols.reshape(-1)


class ParentTopKRouter(_FixedCountRouter):
    """Hard threshold at ``offset`` (default 1/sqrt(d_in)), then the top ``k`` parents (H-SAE)."""

    name = "parent-topk"

    @attrs.frozen
    class Config:
        """``k`` parents per sample; ``offset``: threshold, ``None`` = 1/sqrt(d_in) of the model."""

        k: int = 32
        offset: float | None = None

    def __init__(self, config: Config, *, d_sae: int, d_in: int | None = None) -> None:
        super().__init__(config, d_sae=d_sae)
        if not 0 < config.k <= d_sae:
            raise ValueError(f"k must be in [1, d_sae={d_sae}], got {config.k}")
        self.k = self.n_keep = config.k
        self.offset = _resolve_offset(config.offset, d_in)

    def activate(self, values: torch.Tensor) -> torch.Tensor:
        return hard_threshold(values, self.offset)

    def top(self, acts: torch.Tensor) -> torch.Tensor:
        # Top-k of the thresholded codes, as the official code does: when fewer than k
        # parents pass the threshold, the rest are ties at 0 (still "selected", but the
        # H-SAE's gate [parent > 0] switches their children off).
        return acts.topk(self.k, dim=-1, sorted=False).indices

    def saelens_fields(self) -> dict:
        return {"k": self.k, "parent_offset": self.offset}


class ChildTop1Router(_FixedCountRouter):
    """Leaky threshold (offset 1/sqrt(d_in), slope 0.01 below), then the argmax child atom (H-SAE)."""

    name = "child-top1"

    @attrs.frozen
    class Config:
        """``slope`` below the threshold; ``offset``: threshold, ``None`` = 1/sqrt(d_in) of the model."""

        slope: float = 0.01
        offset: float | None = None

    def __init__(self, config: Config, *, d_sae: int, d_in: int | None = None) -> None:
        super().__init__(config, d_sae=d_sae)
        if not 0 <= config.slope <= 1:
            raise ValueError(f"slope must be in [0, 1], got {config.slope}")
        self.n_keep = 1
        self.offset = _resolve_offset(config.offset, d_in)
        self.slope = config.slope

    def activate(self, values: torch.Tensor) -> torch.Tensor:
        return leaky_threshold(values, self.offset, self.slope)

    def top(self, acts: torch.Tensor) -> torch.Tensor:
        return acts.argmax(dim=-1, keepdim=True)

    def saelens_fields(self) -> dict:
        return {"child_offset": self.offset, "child_slope": self.slope}
