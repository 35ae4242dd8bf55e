"""TOML reading and writing: parse with line locations, apply ``--set`` overrides, dump."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import attrs
import tomli_w

from hsae.errors import Problem, RecipeError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\.\"' ]+?)\s*=")


def parse_toml(text: str, file: str) -> dict[str, Any]:
    """Parse TOML text; a syntax error becomes a located :class:`RecipeError`."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = int(match.group(1)) if match else None
        raise RecipeError([Problem(f"invalid TOML: {exc}", file=file, line=line)]) from None


def _split_dotted(key: str) -> list[str]:
    return [part.strip().strip("\"'") for part in key.split(".")]


def line_index(text: str) -> dict[str, int]:
    """Map dotted recipe paths (``model.router.k``, ``stages[1].steps``) to 1-based lines.

    Covers standard tables, arrays of tables and plain or dotted keys, which is what
    recipes use; inline tables resolve to the line of their key.
    """
    index: dict[str, int] = {}
    array_counts: dict[str, int] = {}
    prefix = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            parts = _split_dotted(header.group(2))
            name = ".".join(parts)
            if header.group(1) == "[[":
                count = array_counts.get(name, -1) + 1
                array_counts[name] = count
                prefix = f"{name}[{count}]"
            else:
                prefix = _resolve_arrays(name, array_counts)
            index.setdefault(prefix, number)
            continue
        key = _KEY.match(line)
        if key and not line.lstrip().startswith("#"):
            path = ".".join(_split_dotted(key.group(1)))
            index.setdefault(f"{prefix}.{path}" if prefix else path, number)
    return index


def _resolve_arrays(name: str, array_counts: dict[str, int]) -> str:
    """``stages.losses`` inside the current ``[[stages]]`` becomes ``stages[i].losses``."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:cut])
        if head in array_counts:
            return f"{head}[{array_counts[head]}]." + ".".join(parts[cut:])
    return name


def locate(index: dict[str, int], path: str) -> int | None:
    """Line of ``path`` or of its nearest enclosing table."""
    while path:
        if path in index:
            return index[path]
        path = re.sub(r"(\.[^.\[]+|\[[^\]]+\])$", "", path) if re.search(r"[.\[]", path) else ""
    return None


_STRUCTURED = ("[", "{", '"', "'")  # values that must be valid TOML: lists, tables, quoted strings


def parse_override(item: str) -> tuple[list[str | int], Any]:
    """``train.steps=100`` -> (["train", "steps"], 100). Values are TOML; bare words are strings.

    A value that starts like a list, table or quoted string must parse as TOML: a typo in it
    is one error naming the ``--set`` argument, not a string that is then misread.
    """
    if "=" not in item:
        raise RecipeError([Problem("not KEY=VALUE", file=override_origin(item))])
    key, raw = item.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError as exc:
        if raw.strip().startswith(_STRUCTURED):
            reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
            raise RecipeError([Problem(f"invalid TOML value {raw.strip()!r}: {reason}",
                                       file=override_origin(item))]) from None
        value = raw
    path: list[str | int] = [int(p) if p.isdigit() else p for p in key.strip().split(".")]
    return path, value


class CommandLineString(str):
    """A string typed on the command line (``--set``): a relative path in it is relative to the
    working directory, where the user typed it, not to the recipe's folder."""


def from_command_line(value: Any) -> Any:
    """``value`` with every string in it marked as a :class:`CommandLineString`."""
    if isinstance(value, str):
        return CommandLineString(value)
    if isinstance(value, list):
        return [from_command_line(v) for v in value]
    if isinstance(value, dict):
        return {k: from_command_line(v) for k, v in value.items()}
    return value


def override_origin(item: str) -> str:
    """How errors name a ``--set`` argument: ``--set train.steps=5``."""
    return f"--set {item}"


def override_path(path: list[str | int]) -> str:
    """The recipe path an override sets, spelled as problems spell it: ``stages[1].steps``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def apply_override(doc: dict[str, Any], path: list[str | int], value: Any, item: str) -> None:
    """Set ``doc[path] = value``, creating tables on the way."""
    node: Any = doc
    for i, part in enumerate(path[:-1]):
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise RecipeError([Problem(f"no element {part} to override", file=override_origin(item))])
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise RecipeError([Problem(f"{override_path(path[:i])} is not a table", file=override_origin(item))])
            node = node.setdefault(part, {})
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise RecipeError([Problem(f"no element {last} to override", file=override_origin(item))])
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise RecipeError([Problem("cannot set: parent is not a table", file=override_origin(item))])


@attrs.frozen
class Locator:
    """Where a recipe path came from: a line of the recipe file, or a ``--set`` argument."""

    file: str
    lines: dict[str, int] = attrs.field(factory=dict)
    overrides: dict[str, str] = attrs.field(factory=dict)  # recipe path -> the --set item that set it

    def problem(self, path: str, message: str) -> Problem:
        """A problem at ``path``, located at its ``--set`` argument or its recipe line."""
        found = self.override_of(path) or (None if path in self.lines else self._override_inside(path))
        if found is not None:
            prefix, item = found
            return Problem(message, path="" if path == prefix else path, file=override_origin(item))
        return Problem(message, path=path, file=self.file, line=locate(self.lines, path))

    def override_of(self, path: str) -> tuple[str, str] | None:
        """``(overridden path, --set item)`` that set ``path`` or a table above it, if any."""
        for prefix, item in reversed(list(self.overrides.items())):
            if path == prefix or path.startswith((prefix + ".", prefix + "[")):
                return prefix, item
        return None

    def _override_inside(self, path: str) -> tuple[str, str] | None:
        """The ``--set`` item that created the table at ``path`` (it sets a key inside it)."""
        for prefix, item in self.overrides.items():
            if prefix.startswith((path + ".", path + "[")):
                return prefix, item
        return None


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_none(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def dump_toml(doc: dict[str, Any]) -> str:
    """TOML text for a plain dict; ``None`` values are omitted (TOML has no null)."""
    return tomli_w.dumps(_drop_none(doc))
