"""Describe a config class for people: its keys, their types, defaults and one-line docs.

Used by ``hsae show`` / ``hsae list KIND NAME``. Where a key's doc comes from, first
match wins (base classes are searched too):

1. the field's attrs metadata: ``k: int = attrs.field(default=32, metadata={"doc": "..."})``;
2. a line of the Config docstring that starts with the key and a colon, ``k: latents per
   sample`` (the key may be in double backticks, the line may be a ``-`` or ``*`` bullet);
3. a trailing comment on the field's line: ``k: int = 32  # latents per sample``;
4. the clause (up to ``;`` or the end of a sentence) of the Config docstring that starts
   with the key in double backticks, as in a docstring reading "``k`` latents per sample.";
5. for a nested table, its class's docstring; for a component key, which kind it takes.

Every doc is passed through :func:`plain_text`, so reST markup never reaches the terminal.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from pathlib import Path
from typing import Any

import attrs

from hsae.config.bounds import bound_of
from hsae.config.spec import Spec

_ROLE = re.compile(r":[\w:.-]+:`(~?)([^`]+)`")  # :class:`~a.B`, :ref:`text <target>`
_DOUBLE = re.compile(r"``(.+?)``", re.DOTALL)
_SINGLE = re.compile(r"(?<![\w`])`([^`]+)`(?:_)?(?![\w`])")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
_EMPH = re.compile(r"(?<![\w*])\*(?!\s)([^*]+?)(?<!\s)\*(?![\w*])")
_DIRECTIVE = re.compile(r"^\s*\.\. [\w-]+::.*$", re.MULTILINE)


def plain_text(doc: str | None) -> str:
    """A docstring without reST markup: ````x````, ``:role:`x```, ``*x*``, ``**x**``, ``::``, directives.

    Literal text (in double backticks) is kept as written, ``*`` and all.
    """
    if not doc:
        return ""
    parts = _DOUBLE.split(_DIRECTIVE.sub("", doc))  # odd indices: the insides of ``literals``
    text = "".join(part if i % 2 else _strip_markup(part) for i, part in enumerate(parts))
    return text.strip()


def _strip_markup(text: str) -> str:
    """Roles, single backticks, emphasis and ``::`` of reST text that holds no literals."""
    text = _ROLE.sub(_role_text, text)
    text = _SINGLE.sub(r"\1", text)
    text = _STRONG.sub(r"\1", text)
    text = _EMPH.sub(r"\1", text)
    text = re.sub(r"(\S)::(\s|$)", r"\1:\2", text)  # "Example::" -> "Example:"
    return re.sub(r"(^|\s)::(\s|$)", r"\1\2", text)


def _role_text(match: re.Match) -> str:
    """``:ref:`title <target>``` shows the title; ``:class:`~a.b.C``` shows ``C``; else the target."""
    tilde, inner = match.group(1), match.group(2)
    if "<" in inner and inner.endswith(">"):
        return inner.split("<", 1)[0].strip()
    return inner.rsplit(".", 1)[-1] if tilde else inner


def first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line, as plain text."""
    text = inspect.cleandoc(doc or "")
    paragraph = text.split("\n\n", 1)[0]
    return plain_text(" ".join(line.strip() for line in paragraph.splitlines()))


@attrs.frozen
class KeyDoc:
    """One recipe key of a config: what ``hsae show`` prints for it."""

    key: str
    type: str
    default: Any  # a plain (TOML-like) value; ``REQUIRED`` when the key must be given
    doc: str = ""
    keys: tuple[KeyDoc, ...] = ()  # the keys of a nested table

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "type": self.type, "required": self.default is REQUIRED,
                               "default": None if self.default is REQUIRED else self.default, "doc": self.doc}
        if self.keys:
            out["keys"] = [k.to_json() for k in self.keys]
        return out


REQUIRED = object()


def describe_config(config_cls: type) -> list[KeyDoc]:
    """The recipe keys of an attrs config class, nested tables expanded."""
    _resolve(config_cls)
    docs = field_docs(config_cls)
    return [_describe_field(f, docs.get(f.name, "")) for f in attrs.fields(config_cls) if f.init]


def _resolve(cls: type) -> None:
    try:
        attrs.resolve_types(cls)
    except Exception:  # an annotation that does not resolve is shown as written
        pass


def _describe_field(field: attrs.Attribute, doc: str) -> KeyDoc:
    tp = field.type
    nested = _nested_config(tp)
    keys = tuple(describe_config(nested)) if nested is not None else ()
    doc = doc or _type_doc(tp, nested)
    return KeyDoc(field.name, type_name(tp), _default_value(field), doc, keys)


def _type_doc(tp: Any, nested: type | None) -> str:
    """A doc for an undocumented key from its type: a nested table's docstring, or which components fit."""
    if nested is not None:
        return first_paragraph(_own_doc(nested))
    spec = _spec_of(tp)
    if spec is None:
        return ""
    if _origin(tp) is dict:
        return f"{spec.kind} tables by name, each with its type (see hsae list {spec.kind}) and keys."
    return f"{spec.kind} component: its type (see hsae list {spec.kind}) and keys."


def _spec_of(tp: Any) -> type[Spec] | None:
    """The Spec class of a component key (also in ``X | None`` and ``dict[str, X]``), if any."""
    if isinstance(tp, type):
        return tp if issubclass(tp, Spec) else None
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if _origin(tp) is dict and len(args) == 2:
        return _spec_of(args[1])
    if _origin(tp) is typing.Union and len(args) == 1:
        return _spec_of(args[0])
    return None


def _nested_config(tp: Any) -> type | None:
    """The attrs class of a nested table (also inside ``X | None`` and ``tuple[X, ...]``), if any."""
    if isinstance(tp, type):
        return tp if attrs.has(tp) and not issubclass(tp, Spec) else None
    args = [a for a in typing.get_args(tp) if a is not type(None) and a is not Ellipsis]
    if _origin(tp) in (typing.Union, tuple, list) and len(args) == 1:
        return _nested_config(args[0])
    return None


def _origin(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    return typing.Union if origin is types.UnionType else origin


def _default_value(field: attrs.Attribute) -> Any:
    default = field.default
    if default is attrs.NOTHING:
        return REQUIRED
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        if default.takes_self:
            return None
        default = default.factory()
    return plain_value(default)


def plain_value(value: Any) -> Any:
    """A default as plain data: specs as ``{"type": name}``, attrs configs as their keys, paths as strings."""
    if isinstance(value, Spec):
        return {"type": value.type}
    if attrs.has(type(value)):
        return {f.name: plain_value(getattr(value, f.name)) for f in attrs.fields(type(value)) if f.init}
    if isinstance(value, dict):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def type_name(tp: Any) -> str:
    """A recipe-level name for an annotation: ``int``, ``string``, ``path``, ``router``, ``list of int``."""
    if isinstance(tp, str):
        return tp
    if tp is type(None):
        return "none"
    if isinstance(tp, type):
        if issubclass(tp, Spec):
            return f"{tp.kind} table" if tp.kind else "component table"
        if attrs.has(tp):
            return "table"
        return {str: "string", Path: "path", bool: "bool", int: "int", float: "float"}.get(tp, tp.__name__)
    origin, args = _origin(tp), typing.get_args(tp)
    bound = bound_of(tp)
    if bound is not None:
        return f"{type_name(args[0])} >= {bound.minimum:g}"
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin is typing.Union:
        return " | ".join(type_name(a) for a in args)
    if origin in (tuple, list):
        items = [a for a in args if a is not Ellipsis]
        return f"list of {type_name(items[0]).replace('table', 'tables')}" if len(items) == 1 else "list"
    if origin is dict and len(args) == 2:
        return f"tables of {type_name(args[1]).removesuffix(' table')}"
    return str(tp).replace("typing.", "")


def field_docs(config_cls: type) -> dict[str, str]:
    """One-line plain-text docs of a config's keys, from the sources listed in the module doc."""
    docs: dict[str, str] = {}
    for cls in config_cls.__mro__:
        if not attrs.has(cls):
            continue
        names = [f.name for f in attrs.fields(cls)]
        found = _metadata_docs(cls)
        for source in (_docstring_lines, _comment_docs, _clauses_starting):
            for name, doc in source(cls, names).items():
                found.setdefault(name, doc)
        for name, doc in found.items():
            docs.setdefault(name, plain_text(doc))
    return docs


def _metadata_docs(cls: type) -> dict[str, str]:
    return {f.name: str(f.metadata["doc"]) for f in attrs.fields(cls) if f.metadata.get("doc")}


def _own_doc(cls: type) -> str:
    """The class's own docstring (not inherited, not attrs' generated signature)."""
    doc = cls.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if doc else ""


_ENTRY = re.compile(r"^\s*(?:[-*]\s+)?(?:``(\w+)``|(\w+))\s*(?:\([^)]*\))?\s*:\s+(\S.*)$")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def _docstring_lines(cls: type, names: list[str]) -> dict[str, str]:
    """Docstring lines that start with ``name:`` (optionally bulleted, the name in double backticks).

    The doc is the line; when the line stops mid-sentence, the sentence goes on over the next
    lines (up to a blank line or the next key's line). Text about another key is cut off.
    """
    found: dict[str, str] = {}
    lines = _own_doc(cls).splitlines()
    for i, line in enumerate(lines):
        match = _ENTRY.match(line)
        name = match and (match.group(1) or match.group(2))
        if not match or name not in names or name in found:
            continue
        first = _cut_at_other_key(match.group(3).strip(), names)
        rest = []
        for more in lines[i + 1:]:
            if not more.strip() or _starts_with_key(more, names):
                break
            rest.append(more.strip())
        found[name] = first if _SENTENCE_END.search(first) or not rest else _first_sentence(first, rest, names)
    return found


def _starts_with_key(line: str, names: list[str]) -> bool:
    """Whether a docstring line begins an entry or a sentence about one of the keys."""
    entry = _ENTRY.match(line)
    tag = re.match(r"^\s*(?:[-*]\s+)?``(\w+)``", line)
    return bool(entry and (entry.group(1) or entry.group(2)) in names or tag and tag.group(1) in names)


def _first_sentence(first: str, rest: list[str], names: list[str]) -> str:
    """``first`` continued over ``rest`` to the end of its sentence."""
    text = _cut_at_other_key(" ".join([first, *rest]), names)
    end = _SENTENCE_END.search(text, len(first))
    return text[: end.end()] if end else text


def _cut_at_other_key(text: str, names: list[str]) -> str:
    """``text`` up to where a sentence or clause about another key (````other````) begins."""
    for match in re.finditer(r"(?<=[.;])\s+``(\w+)``", text):
        if match.group(1) in names:
            return text[: match.start()]
    return text


def _comment_docs(cls: type, names: list[str]) -> dict[str, str]:
    """Trailing ``# comments`` on the field lines of the class source."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    found: dict[str, str] = {}
    for line in source.splitlines():
        match = re.match(r"^\s*(\w+)\s*:[^#]*#\s*(.+)$", line)
        if match and match.group(1) in names and not match.group(2).startswith(("noqa", "type:")):
            found.setdefault(match.group(1), match.group(2).strip())
    return found


def _clauses_starting(cls: type, names: list[str]) -> dict[str, str]:
    """The clause of the docstring that starts with ````name```` (``;`` and sentence ends split clauses)."""
    pieces = re.split(r";\s+|(?<=[.!?])\s+(?=[A-Z`])|\n(?=\s*(?:[-*]\s+)?``)", _own_doc(cls))
    clauses = [" ".join(c.split()).lstrip("-* ") for c in pieces]
    found: dict[str, str] = {}
    for name in names:
        tag = f"``{name}``"
        clause = next((c for c in clauses if c.startswith(tag)), "")
        if clause:
            found[name] = _clause_text(clause, tag)
    return found


def _clause_text(clause: str, tag: str) -> str:
    """A clause as a key's doc: without a leading ``name:``, ending in a period."""
    if clause.startswith(tag + ":"):
        clause = clause[len(tag) + 1:].strip()
    clause = clause.rstrip(",")
    return clause if clause.endswith((".", "!", "?", ")")) else clause + "."
