"""Callback: anneal the slot SAE's Gumbel-softmax temperature."""

from __future__ import annotations

from typing import Literal

import attrs

from hsae.callback import Callback
from hsae.config.bounds import NonNegativeInt
from hsae_bios.slots.router import temperature_at


class SlotTemperature(Callback):
    """Anneal the slot-sae's temperature from temperature_start to temperature_end (the seed's 1.0 -> 0.1).

    After optimizer step ``s`` it sets the model's ``temperature`` buffer to the schedule's
    value for step ``s + 1`` (:func:`hsae_bios.slots.router.temperature_at`): step 0 runs at
    the start temperature, the last step of the anneal at the end one. The temperature lives
    in the model's state, so checkpoints hold it and ``--resume`` continues the schedule
    exactly; the final model is saved at the end temperature.
    """

    name = "slot-temperature"
    requires = frozenset({"slot_temperature"})

    @attrs.frozen
    class Config:
        """schedule: linear (the seed's) or exponential (geometric) in the step
        steps: steps the anneal lasts, then the end temperature holds (0: the whole run, train.steps)
        """

        schedule: Literal["linear", "exponential"] = "linear"
        steps: NonNegativeInt = 0

    def setup(self, model, data) -> None:
        model.temperature.fill_(model.config.temperature_start)

    def temperature(self, model, step: int, total_steps: int) -> float:
        """The temperature of training step ``step`` of a ``total_steps``-step run."""
        c = model.config
        return temperature_at(step, self.config.steps or total_steps, c.temperature_start, c.temperature_end,
                              self.config.schedule)

    def on_step_end(self, batch, out, model, ctx) -> None:
        model.temperature.fill_(self.temperature(model, ctx.step + 1, ctx.total_steps))
