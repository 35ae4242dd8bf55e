"""Declared model–component compatibility, checked once when a run is assembled.

A loss, metric or callback lists in ``requires`` the capabilities it needs from the model
(an ``extras`` key of the forward pass, an attribute such as ``latent_parent``...). A model
declares what it offers in ``provides`` (its parts too: a standard SAE adds its encoder's,
router's and decoder's), and :meth:`hsae.model.SAE.capabilities` is the union for one
built model. A mismatch is a recipe error at the component's table, so ``hsae validate``
and ``hsae run`` both report it before anything trains.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hsae.errors import Problem, RecipeError
from hsae.model import SAE

PART_KINDS = ("model", "encoder", "router", "decoder")


def providers(capability: str) -> list[str]:
    """``type = "..."`` choices (models and model parts) that always provide ``capability``."""
    from hsae.plugins import get_registry

    registry = get_registry()
    return [
        f'{kind} type = "{name}"' if kind != "model" else f'type = "{name}"'
        for kind in PART_KINDS for name in registry.names(kind)
        if capability in getattr(registry.get(kind, name), "provides", frozenset())
    ]


def missing_message(part: Any, missing: Iterable[str], model: SAE) -> str:
    """``loss 'hsae-top-mse' needs a model that provides 'x' (type = "hsae"); model 'sae' provides: ...``."""
    missing = sorted(missing)
    wanted = ", ".join(repr(m) for m in missing)
    hints = [p for m in missing for p in providers(m)]
    hint = f" ({', '.join(dict.fromkeys(hints))})" if hints else ""
    offered = ", ".join(repr(c) for c in sorted(model.capabilities())) or "nothing"
    return f"{part.kind} {part.name!r} needs a model that provides {wanted}{hint}; model {model.name!r} provides: {offered}"


def requirement_problems(model: SAE, parts: Mapping[str, Any]) -> list[Problem]:
    """One located problem per component whose ``requires`` the model does not provide."""
    offered = model.capabilities()
    problems = []
    for name, part in parts.items():
        missing = set(getattr(part, "requires", frozenset())) - offered
        if not missing:
            continue
        message = missing_message(part, missing, model)
        spec = getattr(part, "spec", None)
        problems.append(spec.problem(message) if spec is not None else Problem(message, path=name))
    return problems


def check_requirements(model: SAE, parts: Mapping[str, Any]) -> None:
    """Raise a RecipeError listing every component the model cannot serve."""
    problems = requirement_problems(model, parts)
    if problems:
        raise RecipeError(problems)
