"""Describing configs for ``hsae show``: where key docs come from, types, defaults, plain text."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs
import pytest

from hsae.config.describe import REQUIRED, describe_config, field_docs, first_paragraph, plain_text
from hsae.config.spec import RouterSpec


@attrs.frozen
class Inner:
    """A nested table."""

    depth: int = 3  # how deep


@attrs.frozen
class Documented:
    """Keys documented every way hsae understands.

    lines: a docstring line naming the key,
        continued on the next line.
    ``ticks``: the key in double backticks
    ``clause`` is documented by a clause; ``other`` gets the comment below.
    """

    lines: int = 1
    ticks: str = "a"
    clause: float = 0.5
    other: bool = True  # a trailing comment
    meta: int = attrs.field(default=2, metadata={"doc": "from ``metadata``"})
    path: Path | None = None
    mode: Literal["x", "y"] = "x"
    router: RouterSpec = RouterSpec("topk")
    inner: Inner = Inner()
    items: tuple[Inner, ...] = ()
    needed: str = attrs.field(kw_only=True)


@attrs.frozen
class Derived(Documented):
    """``extra`` is new here."""

    extra: int = 0


def test_field_docs_from_every_convention():
    docs = field_docs(Documented)
    assert docs == {
        "lines": "a docstring line naming the key, continued on the next line.",
        "ticks": "the key in double backticks",
        "clause": "clause is documented by a clause.",
        "other": "a trailing comment",
        "meta": "from metadata",
    }


def test_field_docs_of_a_subclass_include_inherited_keys():
    docs = field_docs(Derived)
    assert docs["extra"] == "extra is new here." and docs["lines"].startswith("a docstring line")


def test_describe_config_types_defaults_and_nesting():
    keys = {k.key: k for k in describe_config(Documented)}
    assert (keys["lines"].type, keys["lines"].default) == ("int", 1)
    assert (keys["path"].type, keys["path"].default) == ("path | none", None)
    assert keys["mode"].type == '"x" | "y"'
    assert (keys["router"].type, keys["router"].default) == ("router table", {"type": "topk"})
    assert keys["router"].doc.startswith("router component")
    assert keys["inner"].type == "table" and keys["inner"].doc == "A nested table."
    assert [(k.key, k.default, k.doc) for k in keys["inner"].keys] == [("depth", 3, "how deep")]
    assert keys["items"].type == "list of tables" and keys["items"].keys[0].key == "depth"
    assert keys["needed"].default is REQUIRED and keys["needed"].to_json()["required"] is True


@pytest.mark.parametrize("doc, plain", [
    ("Keep the ``k`` largest", "Keep the k largest"),
    ("See :class:`~hsae.model.SAE` and :func:`hsae.io.save`.", "See SAE and hsae.io.save."),
    ("A :ref:`link title <target>`.", "A link title."),
    ("*emphasis* and **strong** and `single`", "emphasis and strong and single"),
    ("Tables ``[losses.*]`` and ``[metrics.*]``", "Tables [losses.*] and [metrics.*]"),
    ("Example::\n\n    code", "Example:\n\n    code"),
    ("Text.\n\n.. note:: hidden\n", "Text."),
    ("", ""),
])
def test_plain_text(doc, plain):
    assert plain_text(doc) == plain


def test_first_paragraph_is_one_plain_line():
    assert first_paragraph("""First ``line``
        continues.

        Second paragraph.""") == "First line continues."
