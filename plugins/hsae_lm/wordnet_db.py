"""A fast, read-only view of the WordNet database files that nltk reads.

nltk's reader builds Python objects synset by synset; enumerating the 82,115 noun synsets
takes 15-30 s on a 2-core machine. The concept hierarchy needs every noun synset, its
lemmas and its hypernym/hyponym pointers, so this module parses ``data.<pos>`` and
``index.<pos>`` (format ``wndb(5WN)``) directly from the same directory nltk uses, in
about a second. Synset names follow nltk's convention (``dog.n.01``: first lemma, pos,
sense number of that lemma in the index), so results can be cross-checked against
``nltk.corpus.reader.wordnet`` (the tests do). Adjective satellites (nltk's ``.s.``) are
named ``.a.`` here with an approximate number; only their glosses are used.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cached_property, lru_cache
from pathlib import Path

import attrs

from hsae_lm.wordnet_data import corpus_dir, load_wordnet

POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
_EXAMPLE = re.compile(r'"([^"]*)"')


@attrs.frozen
class Synset:
    """One synset: its nltk-style ``name``, lemmas (underscored), pointers and gloss."""

    offset: int
    pos: str
    lemmas: tuple[str, ...]
    hypernyms: tuple[int, ...]  # offsets of hypernyms and instance hypernyms (same pos)
    hyponyms: tuple[int, ...]  # offsets of hyponyms (not instance hyponyms, as nltk's ``hyponyms()``)
    definition: str
    examples: tuple[str, ...]
    lexname: int
    name: str = ""


def parse_data_line(line: str, pos: str) -> Synset:
    """One line of ``data.<pos>`` (see ``wndb(5WN)``)."""
    fields, _, gloss = line.partition("|")
    parts = fields.split()
    offset, lexname, n_words = int(parts[0]), int(parts[1]), int(parts[3], 16)
    lemmas = tuple(re.sub(r"\([a-z]+\)$", "", parts[4 + 2 * i]) for i in range(n_words))
    at = 4 + 2 * n_words
    n_pointers = int(parts[at])
    hypernyms, hyponyms = [], []
    for i in range(n_pointers):
        symbol, target, target_pos = parts[at + 1 + 4 * i: at + 4 + 4 * i]
        same_pos = target_pos == pos or (pos in "as" and target_pos in "as")
        if symbol in ("@", "@i") and same_pos:
            hypernyms.append(int(target))
        elif symbol == "~" and same_pos:
            hyponyms.append(int(target))
    examples = tuple(_EXAMPLE.findall(gloss))
    definition = _EXAMPLE.sub("", gloss).strip().strip("; ")  # as nltk
    return Synset(offset, pos, lemmas, tuple(hypernyms), tuple(hyponyms), definition, examples, lexname)


@lru_cache(maxsize=4)
def open_db(data_dir: Path | None = None) -> "WordNetDB":
    """A shared :class:`WordNetDB` per data directory (parsed files are kept)."""
    return WordNetDB(data_dir)


class WordNetDB:
    """Synsets of the WordNet copy in an nltk data directory (prepared if needed)."""

    def __init__(self, data_dir: Path | None = None) -> None:
        from hsae_lm.wordnet_data import default_data_dir, has_wordnet

        data_dir = Path(data_dir or default_data_dir()).expanduser().resolve()
        if not has_wordnet(data_dir):
            load_wordnet(data_dir)  # prepares it from Debian's files, or explains how to install
        self.root = corpus_dir(data_dir)
        self.data_dir = data_dir
        self._synsets: dict[str, dict[int, Synset]] = {}

    def synsets(self, pos: str = "n") -> dict[int, Synset]:
        """All synsets of ``pos`` (``n``, ``v``, ``a``, ``r``) by offset, with nltk names."""
        if pos not in self._synsets:
            table = {}
            with open(self.root / f"data.{POS_FILES[pos]}", encoding="utf-8") as fh:
                for line in fh:
                    if not line.startswith("  "):
                        s = parse_data_line(line, pos)
                        table[s.offset] = s
            names = self._names(pos, table)
            self._synsets[pos] = {off: attrs.evolve(s, name=names[off]) for off, s in table.items()}
        return self._synsets[pos]

    def _names(self, pos: str, table: dict[int, Synset]) -> dict[int, str]:
        senses = self.index(pos)
        names = {}
        for off, s in table.items():
            lemma = s.lemmas[0].lower()
            offsets = senses.get(lemma, ())
            number = offsets.index(off) + 1 if off in offsets else 1
            names[off] = f"{lemma}.{pos}.{number:02d}"
        return names

    def index(self, pos: str = "n") -> dict[str, tuple[int, ...]]:
        """``index.<pos>``: lemma -> synset offsets in sense order."""
        out = {}
        with open(self.root / f"index.{POS_FILES[pos]}", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("  "):
                    continue
                parts = line.split()
                n = int(parts[2])
                out[parts[0]] = tuple(int(x) for x in parts[-n:])
        return out

    @cached_property
    def noun_exceptions(self) -> dict[str, str]:
        """Irregular plurals from ``noun.exc``: singular -> plural (the first listed)."""
        out: dict[str, str] = {}
        with open(self.root / "noun.exc", encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 2:
                    out.setdefault(parts[1], parts[0])
        return out

    def by_name(self, name: str) -> Synset:
        pos = name.split(".")[-2]
        pos = "a" if pos == "s" else pos
        for s in self.synsets(pos).values():
            if s.name == name:
                return s
        raise KeyError(name)

    def sentences(self, pos: tuple[str, ...] = ("n", "v", "a", "r")) -> Iterator[str]:
        """Glosses and example sentences of every synset, in file order."""
        for p in pos:
            for s in self.synsets(p).values():
                if s.definition:
                    yield s.definition
                yield from s.examples
