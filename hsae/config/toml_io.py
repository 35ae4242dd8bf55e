"""TOML reading and writing: parse with line locations, apply ``--set`` overrides, dump."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

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


def parse_override(item: str) -> tuple[list[str | int], Any]:
    """``train.steps=100`` -> (["train", "steps"], 100). Values are TOML; bare words are strings."""
    if "=" not in item:
        raise RecipeError([Problem(f"override {item!r} is not KEY=VALUE", file="--set")])
    key, raw = item.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    path: list[str | int] = [int(p) if p.isdigit() else p for p in key.strip().split(".")]
    return path, value


def apply_override(doc: dict[str, Any], path: list[str | int], value: Any, item: str) -> None:
    """Set ``doc[path] = value``, creating tables on the way."""
    node: Any = doc
    for i, part in enumerate(path[:-1]):
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise RecipeError([Problem(f"no element {part} to override in {item!r}", file="--set")])
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise RecipeError([Problem(f"{'.'.join(map(str, path[:i]))} is not a table in {item!r}", file="--set")])
            node = node.setdefault(part, {})
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise RecipeError([Problem(f"no element {last} to override in {item!r}", file="--set")])
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise RecipeError([Problem(f"cannot set {item!r}: parent is not a table", file="--set")])


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
