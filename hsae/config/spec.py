"""Spec: a recipe table ``{type = "name", ...keys}`` resolved to a registered component.

Component configs declare nested components with a Spec subclass per kind, e.g.
``router: RouterSpec = RouterSpec("topk")``. A Spec built without a config uses that
component's defaults.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import attrs

from hsae.errors import Problem, RecipeError, UserError


@attrs.frozen(eq=False)
class Spec:
    """A component choice from a recipe: its registered ``type`` and structured ``config``.

    Two specs are equal when they name the same component with equal effective configs
    (an omitted config equals the component's defaults).
    """

    kind: ClassVar[str] = ""
    type: str
    config: Any = None
    # Where the table sits in the recipe, filled in after loading, for build-time errors.
    path: str = attrs.field(default="", eq=False, repr=False)
    file: str = attrs.field(default="", eq=False, repr=False)
    line: int | None = attrs.field(default=None, eq=False, repr=False)
    locator: Any = attrs.field(default=None, eq=False, repr=False)  # hsae.config.toml_io.Locator of the recipe

    def _relocate(self, problem: Problem) -> Problem:
        """A problem reported relative to this table, made relative to the whole recipe."""
        if problem.file:
            return problem
        path = f"{self.path}.{problem.path}" if self.path and problem.path else (problem.path or self.path)
        if self.locator is None:
            return attrs.evolve(problem, path=path, file=self.file, line=self.line)
        return self.locator.problem(path, problem.message)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Spec):
            return NotImplemented
        if (self.kind, self.type) != (other.kind, other.type):
            return False
        return self.config == other.config or self.resolved_config() == other.resolved_config()

    def __hash__(self) -> int:
        return hash((self.kind, self.type))

    @property
    def cls(self) -> type:
        from hsae.plugins import get_registry

        return get_registry().get(self.kind, self.type)

    def resolved_config(self) -> Any:
        """The structured config, or the component's defaults when none was given."""
        return self.config if self.config is not None else self.cls.Config()

    def build(self, **kwargs: Any) -> Any:
        """Instantiate the component; its ValueErrors become errors located at this table."""
        with self.locating():
            instance = self.cls(self.resolved_config(), **kwargs)
        instance.spec = self  # every built component knows the recipe table it came from
        return instance

    def problem(self, message: str) -> Problem:
        """A problem with this table, located in the recipe (``file:line: path: message``)."""
        return self._relocate(Problem(message))

    @contextmanager
    def locating(self) -> Iterator[None]:
        """Turn the component's RecipeError, UserError, ValueError or FileNotFoundError raised
        inside the block (its constructor, its ``setup``) into a RecipeError at this table."""
        try:
            yield
        except RecipeError as exc:  # problems found by the component: locate them under this table
            raise RecipeError([self._relocate(p) for p in exc.problems]) from None
        except (UserError, ValueError, FileNotFoundError) as exc:
            message = exc.args[0] if isinstance(exc, UserError) and exc.args else str(exc)
            raise RecipeError([self.problem(message)]) from None


def _spec_kind(kind: str) -> type[Spec]:
    return attrs.frozen(eq=False)(type(f"{kind.capitalize()}Spec", (Spec,), {"kind": kind, "__module__": __name__}))


DataSpec = _spec_kind("data")
ModelSpec = _spec_kind("model")
EncoderSpec = _spec_kind("encoder")
DecoderSpec = _spec_kind("decoder")
RouterSpec = _spec_kind("router")
LossSpec = _spec_kind("loss")
MetricSpec = _spec_kind("metric")
InitializerSpec = _spec_kind("initializer")
CallbackSpec = _spec_kind("callback")
