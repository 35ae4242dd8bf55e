"""A strict cattrs converter for recipes, and the translation of its errors into Problems.

Strict means: no silent coercions (``"5"`` is not an int, ``1`` is not a bool), no unknown
keys, and component tables dispatched on their ``type`` key through the registry (not
cattrs' subclass unions, which miss plugins registered later).
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any

import attrs
import cattrs
import cattrs.cols
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from hsae.config.bounds import bound_of, bounded_hook
from hsae.config.spec import Spec
from hsae.config.toml_io import CommandLineString
from hsae.errors import UnknownComponentError


def _strict(kind: type, name: str):
    def structure(value: Any, _: type) -> Any:
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not ok:
            raise TypeError(f"expected {name}, got {value!r}")
        return str(value) if kind is str else value  # a plain str, never a CommandLineString

    return structure


def make_converter(base_dir: Path | None = None) -> cattrs.Converter:
    """A converter; ``Path`` fields are resolved relative to ``base_dir`` (the recipe's folder)."""
    conv = cattrs.Converter(forbid_extra_keys=True)
    for kind, name in ((int, "int"), (float, "float"), (bool, "bool"), (str, "string")):
        conv.register_structure_hook(kind, _strict(kind, name))

    def structure_path(value: Any, _: type) -> Path:
        if not isinstance(value, str):
            raise TypeError(f"expected a path string, got {value!r}")
        path = Path(value).expanduser()
        base = Path.cwd() if isinstance(value, CommandLineString) else base_dir
        return path if path.is_absolute() or base is None else (base / path)

    conv.register_structure_hook(Path, structure_path)
    conv.register_unstructure_hook(Path, str)

    def structure_spec(value: Any, spec_cls: type[Spec]) -> Spec:
        if isinstance(value, str):  # shorthand: router = "topk"
            value = {"type": value}
        if not isinstance(value, dict):
            raise TypeError(f"expected a table with a 'type' key, got {value!r}")
        if "type" not in value:
            raise TypeError(f"missing 'type' (a registered {spec_cls.kind} name)")
        from hsae.plugins import get_registry

        cls = get_registry().get(spec_cls.kind, value["type"])
        rest = {k: v for k, v in value.items() if k != "type"}
        return spec_cls(value["type"], conv.structure(rest, cls.Config))

    conv.register_structure_hook_func(lambda t: isinstance(t, type) and issubclass(t, Spec), structure_spec)

    def unstructure_spec(spec: Spec) -> dict[str, Any]:
        return {"type": spec.type, **conv.unstructure(spec.resolved_config())}

    conv.register_unstructure_hook_func(lambda t: isinstance(t, type) and issubclass(t, Spec), unstructure_spec)

    def structure_literal(value: Any, literal: Any) -> Any:
        choices = typing.get_args(literal)
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(map(repr, choices))}, got {value!r}")
        return value

    conv.register_structure_hook_func(lambda t: typing.get_origin(t) is typing.Literal, structure_literal)
    conv.register_structure_hook_factory(
        lambda t: bound_of(t) is not None,
        lambda t: bounded_hook(t, lambda value, base: conv.structure(value, base)),
    )
    conv.register_structure_hook_factory(_is_homogeneous_sequence, lambda t: _strict_sequence(t, conv))
    return conv


def _is_homogeneous_sequence(tp: Any) -> bool:
    """``list[X]`` or ``tuple[X, ...]``."""
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    return origin is list and len(args) == 1 or origin is tuple and len(args) == 2 and args[1] is Ellipsis


def _strict_sequence(tp: Any, conv: cattrs.Converter):
    """cattrs' hook for a list type, refusing strings and tables (which it would iterate)."""
    inner = (cattrs.cols.list_structure_factory if typing.get_origin(tp) is list
             else cattrs.cols.homogenous_tuple_structure_factory)(tp, conv)

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"expected a list, got {value!r}")
        return inner(value, tp)

    return structure


def error_problems(exc: BaseException) -> list[tuple[str, str]]:
    """Flatten a cattrs exception tree into ``(path, message)`` pairs."""
    found: list[tuple[str, str]] = []

    def walk(err: BaseException, path: str) -> None:
        if isinstance(err, (ClassValidationError, IterableValidationError)):
            with_notes, without = err.group_exceptions()
            for sub, note in with_notes:
                name = getattr(note, "name", None)
                if name is None:
                    index = getattr(note, "index", None)
                    step = f"{path}.{index}" if isinstance(index, str) else f"{path}[{index}]"
                else:
                    step = f"{path}.{name}" if path else name
                walk(sub, step)
            for sub in without:
                walk(sub, path)
        elif isinstance(err, ForbiddenExtraKeysError):
            fields = [a.name for a in attrs.fields(err.cl)] if attrs.has(err.cl) else []
            for key in sorted(err.extra_fields):
                close = difflib.get_close_matches(key, fields, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                allowed = ", ".join(fields) if fields else "none"
                found.append((f"{path}.{key}" if path else key, f"unknown key{hint}; allowed: {allowed}"))
        elif isinstance(err, UnknownComponentError):
            found.append((f"{path}.type" if path else "type", str(err)))
        elif isinstance(err, KeyError):
            found.append((path, f"required key {err.args[0]!r} is missing" if err.args else "required key missing"))
        else:
            message = str(err) or type(err).__name__
            if "required positional argument" in message or "missing" in message and "argument" in message:
                message = "required key missing: " + message.split(": ")[-1]
            found.append((path, message))

    walk(exc, "")
    return found
