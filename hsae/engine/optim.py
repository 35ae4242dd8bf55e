"""The trainer's optimizer: Adam that steps column-major matrices through contiguous aliases.

The linear encoder stores ``W_enc`` ``(d_in, d_sae)`` column-major (see
``plugins/hsae_standard/linear.py``). torch's fused Adam kernel copies a non-contiguous
gradient to a contiguous one on every step: for a 768 x 4096 matrix on CPU that is
~9 ms against ~1.7 ms for the same update on a contiguous tensor, about a tenth of a
TopK training step. So each such parameter is stepped through ``p.detach().t()``, a
contiguous tensor sharing its storage, whose gradient is ``p.grad.t()`` (a view, no copy).

Checkpoints do not see the aliases: ``state_dict`` returns every state tensor in its
parameter's shape, and ``load_state_dict`` takes that form back and gives each state
tensor its parameter's strides (checkpoints hold contiguous tensors; the fused kernel
needs parameter, gradient and state laid out alike, see :meth:`Adam.step`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


def _is_column_major(p: torch.Tensor) -> bool:
    return p.dim() == 2 and not p.is_contiguous() and p.t().is_contiguous()


class Adam(torch.optim.Adam):
    """``torch.optim.Adam`` over ``params``, stepping each column-major matrix through its contiguous transpose."""

    def __init__(self, params: Iterable[nn.Parameter], **kwargs: Any) -> None:
        self.originals = list(params)
        stepped = [p.detach().t() if _is_column_major(p) else p for p in self.originals]
        # (original, alias) for every aliased parameter, in parameter order.
        self.aliases = [(p, s) for p, s in zip(self.originals, stepped) if s is not p]
        super().__init__(stepped, **kwargs)

    @torch.no_grad()
    def step(self, closure: Any = None, grad_divisor: torch.Tensor | None = None) -> Any:
        """One Adam step on the gradients divided by ``grad_divisor`` (a scalar tensor), if given.

        The fused kernel divides each gradient as it reads it (its AMP-unscaling input),
        so clipping costs no extra pass over the gradients; otherwise they are divided here.
        """
        if grad_divisor is not None and not self.defaults["fused"]:
            torch._foreach_div_([p.grad for p in self.originals if p.grad is not None], grad_divisor)
            grad_divisor = None
        for original, alias in self.aliases:
            alias.grad = None if original.grad is None else original.grad.t()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.grad.stride() != p.stride():
                    # torch 2.13's fused CPU kernel walks param and grad by raw pointer: their
                    # strides must agree, or it silently pairs up the wrong elements.
                    p.grad = torch.empty_like(p).copy_(p.grad)
        self.grad_scale = None if grad_divisor is None else grad_divisor.float()  # read by torch's Adam.step
        try:
            return super().step(closure)
        finally:
            self.grad_scale = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        for original, _ in self.aliases:  # the gradients autograd writes live on the originals
            if set_to_none:
                original.grad = None
            elif original.grad is not None:
                original.grad.zero_()

    def _aliased_indices(self) -> set[int]:
        aliased = {id(original) for original, _ in self.aliases}
        return {i for i, p in enumerate(self.originals) if id(p) in aliased}

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict with every state tensor in its parameter's shape."""
        state = super().state_dict()
        state["state"] = {i: dict(s) for i, s in state["state"].items()}  # torch shares these dicts with self.state
        for index in self._aliased_indices():
            for key, value in state["state"].get(index, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() == 2:
                    state["state"][index][key] = value.t()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`: state tensors in parameter shape, re-laid out for the aliases."""
        state = {**state_dict, "state": {i: dict(s) for i, s in state_dict["state"].items()}}
        for index in self._aliased_indices():
            for key, value in state["state"].get(index, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() == 2:
                    state["state"][index][key] = value.t().contiguous()
        super().load_state_dict(state)
        for param, param_state in self.state.items():
            for key, value in param_state.items():
                if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                    param_state[key] = torch.empty_like(param).copy_(value)
