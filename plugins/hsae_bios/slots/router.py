"""The slot router: a Gumbel-softmax over slot logits, and its temperature schedule.

Training draws ``softmax((logits + g) / T)`` with Gumbel noise ``g`` (Jang et al. 2017);
``hard`` makes the forward value the one-hot argmax of that sample while gradients flow
through the soft sample (straight-through). Evaluation is deterministic: no noise, the
one-hot argmax when ``hard``, else ``softmax(logits / T)``.

The temperature falls from ``start`` to ``end`` over training. The seed's README says
"1.0 -> 0.1 (linear anneal)", so ``linear`` is the default; ``exponential`` (geometric,
constant ratio per step, the schedule of Jang et al.) is offered because a linear schedule
spends most of training at temperatures well above ``end``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SCHEDULES = ("linear", "exponential")


def slot_code(logits: torch.Tensor, temperature: float | torch.Tensor, *, hard: bool, training: bool) -> torch.Tensor:
    """The ``(B, n_slots)`` slot code from slot logits (see the module docstring).

    ``temperature`` may be a 0-d tensor (the model's buffer), which avoids a device sync per step.
    """
    if training:
        return F.gumbel_softmax(logits, tau=temperature, hard=hard, dim=-1)
    if hard:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    return torch.softmax(logits / temperature, dim=-1)


def temperature_at(step: int, n_steps: int, start: float, end: float, schedule: str = "linear") -> float:
    """Temperature of training step ``step`` (0-based) of an anneal lasting ``n_steps`` steps.

    Step 0 runs at ``start``, step ``n_steps - 1`` and every later one at ``end``;
    ``linear`` interpolates the temperature, ``exponential`` its logarithm.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    fraction = min(1.0, max(0, step) / max(1, n_steps - 1))
    if schedule == "linear":
        return start + (end - start) * fraction
    return math.exp(math.log(start) + (math.log(end) - math.log(start)) * fraction)
