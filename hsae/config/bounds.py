"""Bounds on numeric recipe keys, checked while the recipe is structured.

Annotate a Config field with ``NonNegativeFloat`` / ``NonNegativeInt`` (or
``Annotated[float, AtLeast(x)]``): a value out of bounds is a problem at that key's line,
reported together with the table's other problems (a wrong type in another key, say),
not after they are fixed.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Annotated, Any

import attrs


@attrs.frozen
class AtLeast:
    """``Annotated`` marker: the key's value must be ``>= minimum``."""

    minimum: float

    def problem(self, value: float) -> str | None:
        """Why ``value`` is out of bounds, or ``None``."""
        return None if value >= self.minimum else f"must be >= {self.minimum:g}, got {value!r}"


NonNegativeFloat = Annotated[float, AtLeast(0)]
NonNegativeInt = Annotated[int, AtLeast(0)]
PositiveInt = Annotated[int, AtLeast(1)]


def bound_of(tp: Any) -> AtLeast | None:
    """The :class:`AtLeast` marker of an ``Annotated`` type, or ``None``."""
    if typing.get_origin(tp) is not Annotated:
        return None
    return next((m for m in tp.__metadata__ if isinstance(m, AtLeast)), None)


def bounded_hook(tp: Any, structure_base: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """A cattrs structure hook: the base type's hook, then the bound check."""
    base, bound = typing.get_args(tp)[0], bound_of(tp)

    def structure(value: Any, _: Any) -> Any:
        value = structure_base(value, base)
        problem = bound.problem(value)
        if problem:
            raise ValueError(problem)
        return value

    return structure
