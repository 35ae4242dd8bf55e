"""Step 5's causal tests: edit the slot code at the answer position, inside the running LM.

An edit runs at the hook point the activations were captured from (``resid:L``, see
``hsae_bios.capture``) and changes only the answer position (the prompt's last column). It
keeps the SAE's error term: the activation ``x`` becomes ``x + decode(z') - decode(z)``,
where ``z`` is the SAE's code of ``x`` and ``z'`` the edited code, so only what the edit
changes in the code reaches the model.

* :func:`ablate`: ``z'_i = 0`` (slot ``i`` removed);
* :func:`swap`: ``z'_j = alpha * z_i`` and ``z'_i = 0`` (slot ``i``'s content moved to ``j``);
* :func:`splice`: ``x -> x_hat`` (the reconstruction in place of the activation, no error term);
* :func:`identity`: ``x -> x`` through the hook (proves the hook changes nothing by itself).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch

from hsae.model import Codes
from hsae_lm.hooks import HookPoint, hooked

ActivationEdit = Callable[[torch.Tensor], torch.Tensor]  # (B, d) answer-position activations -> edited
CodeEdit = Callable[[torch.Tensor], torch.Tensor]  # (B, n_latents) code -> edited code


def at_answer(point: HookPoint, edit: ActivationEdit) -> Callable[[torch.Tensor, int], AbstractContextManager]:
    """An ``edit(mask, answer_column)`` for :func:`hsae_bios.qa_eval.correct` applying ``edit`` at ``point``."""

    def context(mask: torch.Tensor, column: int) -> AbstractContextManager:
        def sink(act: torch.Tensor) -> torch.Tensor:
            out = act.clone()
            out[:, column] = edit(act[:, column].float()).to(act.dtype)
            return out

        return hooked(point, sink, stop=False)

    return context


def code_edit(sae, change: CodeEdit) -> ActivationEdit:  # noqa: ANN001 - hsae SAE
    """``x -> x + decode(change(z)) - decode(z)`` with ``z`` the SAE's code of ``x`` (error term kept)."""

    @torch.no_grad()
    def edit(x: torch.Tensor) -> torch.Tensor:
        z = sae.encode(x).dense()
        new = change(z.clone())
        delta = sae.decode(Codes.from_dense(new), bias=False) - sae.decode(Codes.from_dense(z), bias=False)
        return x + delta

    return edit


def ablate(slot: int) -> CodeEdit:
    def change(z: torch.Tensor) -> torch.Tensor:
        z[:, slot] = 0
        return z

    return change


def swap(source: int, target: int, alpha: float) -> CodeEdit:
    def change(z: torch.Tensor) -> torch.Tensor:
        moved = alpha * z[:, source]
        z[:, source] = 0
        z[:, target] = moved
        return z

    return change


def splice(sae) -> ActivationEdit:  # noqa: ANN001
    @torch.no_grad()
    def edit(x: torch.Tensor) -> torch.Tensor:
        return sae(x).x_hat

    return edit


def identity(x: torch.Tensor) -> torch.Tensor:
    return x
