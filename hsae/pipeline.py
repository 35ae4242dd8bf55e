"""Pipeline: what ``hsae run`` executes, as a sequence of named phases.

The recipe's top-level ``pipeline`` key picks one (default ``"train"``: train one SAE).
Multi-phase experiments (the teacher pipeline: extract, baseline, teacher, evaluate)
are pipelines too; ``--phase N`` runs one phase, reusing earlier phases' outputs from
the run directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from hsae.engine.distributed import DistInfo
from hsae.engine.rundir import RunDir
from hsae.registry import Component

if TYPE_CHECKING:
    from hsae.config.recipe import Recipe


@attrs.define
class RunContext:
    """Where and how a pipeline runs."""

    run_dir: RunDir
    resume: bool = False
    dist: DistInfo = DistInfo()
    recipe_text: str = ""


class Pipeline(Component):
    """A recipe's top level: builds components and runs phases."""

    kind: ClassVar[str] = "pipeline"
    phases: ClassVar[tuple[str, ...]] = ("run",)

    def __init__(self, config: Any, *, recipe: "Recipe") -> None:
        self.config, self.recipe = config, recipe

    def validate(self) -> None:
        """Build every component without running anything; raise RecipeError on problems."""
        raise NotImplementedError

    def run_phase(self, phase: str, ctx: RunContext) -> None:
        raise NotImplementedError

    def headline(self, ctx: RunContext) -> list[str]:
        """A few ``name: value`` lines printed when the run ends (default: the run's ``eval.json``)."""
        return []
