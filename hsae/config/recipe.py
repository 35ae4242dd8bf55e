"""Load a recipe: TOML -> overrides -> pipeline config (attrs), with every error located.

The top-level ``pipeline`` key (default ``"train"``) names a registered pipeline; the rest
of the document is structured into that pipeline's ``Config``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from hsae.config.converter import error_problems, make_converter
from hsae.config.spec import Spec
from hsae.config.toml_io import (Locator, apply_override, dump_toml, from_command_line, line_index, override_path,
                                 parse_override, parse_toml)
from hsae.errors import Problem, RecipeError, UnknownComponentError


@attrs.frozen
class Recipe:
    """A structured recipe: the pipeline name, its config, and where it came from."""

    pipeline: str
    config: Any
    file: str = "<recipe>"
    base_dir: Path = Path(".")

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe (defaults filled in, paths absolute) as plain data."""
        return {"pipeline": self.pipeline, **make_converter(self.base_dir).unstructure(self.config)}

    def to_toml(self) -> str:
        return dump_toml(self.to_dict())

    def build_pipeline(self) -> Any:
        from hsae.plugins import get_registry

        return get_registry().get("pipeline", self.pipeline)(self.config, recipe=self)


def load_recipe(path: str | Path, overrides: list[str] = ()) -> Recipe:
    """Read and structure a recipe file; raises :class:`RecipeError` listing every problem."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError([Problem("recipe file not found", file=str(path))])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError([Problem(f"cannot read recipe: {exc}", file=str(path))]) from None
    return loads_recipe(text, file=str(path), base_dir=path.resolve().parent, overrides=overrides)


def loads_recipe(text: str, file: str = "<recipe>", base_dir: Path | None = None, overrides: list[str] = ()) -> Recipe:
    """Structure recipe text (see :func:`load_recipe`).

    Problems in keys set by ``overrides`` name the ``--set`` argument instead of a line.
    """
    base_dir = base_dir or Path.cwd()
    doc = parse_toml(text, file)
    overridden: dict[str, str] = {}
    for item in overrides:
        key, value = parse_override(item)
        apply_override(doc, key, from_command_line(value), item)
        overridden[override_path(key)] = item
    locator = Locator(file, line_index(text), overridden)
    problem = locator.problem

    pipeline = doc.pop("pipeline", "train")
    if not isinstance(pipeline, str):
        raise RecipeError([problem("pipeline", f"expected a pipeline name, got {pipeline!r}")])
    from hsae.plugins import get_registry

    try:
        config_cls = get_registry().get("pipeline", pipeline).Config
    except UnknownComponentError as exc:
        raise RecipeError([problem("pipeline", str(exc))]) from None
    converter = make_converter(base_dir)
    try:
        config = converter.structure(doc, config_cls)
    except Exception as exc:  # cattrs raises exception groups; all become located problems
        raise RecipeError([problem(p, m) for p, m in error_problems(exc)]) from None
    config = _locate_specs(config, "", locator)
    recipe = Recipe(pipeline, config, file, base_dir)
    check = getattr(config, "check", None)
    if check is not None:
        found = [problem(p, m) for p, m in check()]
        if found:
            raise RecipeError(found)
    return recipe


def _locate_specs(value: Any, path: str, locator: Locator) -> Any:
    """A copy of ``value`` whose Specs know their recipe path and locator (for build-time
    errors) and hold explicit configs. Copies, because default Specs are shared class defaults."""
    if isinstance(value, Spec):
        where = locator.problem(path, "")
        config = value.config
        if config is None:
            try:
                config = value.cls.Config()
            except UnknownComponentError as exc:
                raise RecipeError([locator.problem(path, str(exc))]) from None
        return attrs.evolve(value, config=_locate_specs(config, path, locator), path=path, file=where.file,
                            line=where.line, locator=locator)
    if attrs.has(type(value)):
        changes = {}
        for field in attrs.fields(type(value)):
            if not field.init:
                continue
            old = getattr(value, field.name)
            new = _locate_specs(old, f"{path}.{field.name}" if path else field.name, locator)
            if new is not old:
                changes[field.name] = new
        return attrs.evolve(value, **changes) if changes else value
    if isinstance(value, dict):
        return {key: _locate_specs(item, f"{path}.{key}", locator) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_locate_specs(item, f"{path}[{i}]", locator) for i, item in enumerate(value))
    return value
