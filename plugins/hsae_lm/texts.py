"""Text sources for activation capture: a text file, a JSONL file, WordNet, or concept prompts.

Every source gives a list of :class:`TextItem`. JSONL lines are objects with the text under
``field`` (default ``"text"``) and, optionally, ``"answer"`` (a substring whose last token is
the answer position), ``"positions"`` (token indices to capture, for ``positions = "mask"``)
and ``"labels"`` (concept indices, for labelled batches).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Literal

import attrs

from hsae.errors import UserError
from hsae.io import read_jsonl

TextKind = Literal["file", "jsonl", "wordnet", "concept-prompts"]


@attrs.frozen
class TextItem:
    """One text to run through the model, with what position selection and labels need."""

    text: str
    answer: str | None = None
    positions: tuple[int, ...] | None = None
    labels: tuple[int, ...] | None = None


@attrs.frozen
class TextConfig:
    """Where texts come from.

    ``source``: ``file`` (one text per non-empty line of ``path``), ``jsonl`` (``path``,
    text under ``field``), ``wordnet`` (WordNet 3.0's glosses and example sentences, about
    166k, offline) or ``concept-prompts`` (prompts whose last word is a concept's token,
    labelled with its concepts; see ``hsae_lm.prompts``). ``max_texts`` keeps the first ones.
    """

    source: TextKind = "wordnet"
    path: Path | None = None
    field: str = "text"
    max_texts: int | None = None

    def problems(self, where: str) -> list[str]:
        if self.source in ("file", "jsonl") and self.path is None:
            return [f"{where}.path: required for source = {self.source!r}"]
        return []


def read_texts(config: TextConfig, wordnet_dir: Path | None = None) -> list[TextItem]:
    """The texts of a ``file``, ``jsonl`` or ``wordnet`` source (concept prompts: see the source)."""
    if config.source == "file":
        items = [TextItem(line.strip()) for line in _read(config.path).splitlines() if line.strip()]
    elif config.source == "jsonl":
        items = _read_jsonl(config.path, config.field)
    elif config.source == "wordnet":
        from hsae_lm.wordnet_db import open_db

        sentences = open_db(wordnet_dir).sentences()
        items = [TextItem(s) for s in itertools.islice(sentences, config.max_texts)]
    else:
        raise ValueError(f"read_texts does not build {config.source!r}")
    return items[: config.max_texts] if config.max_texts is not None else items


def _read(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None


def _read_jsonl(path: Path, field: str) -> list[TextItem]:
    items = []
    for number, row in read_jsonl(path):
        if not isinstance(row.get(field), str):
            raise UserError(f"{path}:{number}: expected an object with a string {field!r}")
        positions, labels = row.get("positions"), row.get("labels")
        items.append(TextItem(
            row[field], answer=row.get("answer"),
            positions=tuple(int(p) for p in positions) if positions is not None else None,
            labels=tuple(int(c) for c in labels) if labels is not None else None,
        ))
    return items
