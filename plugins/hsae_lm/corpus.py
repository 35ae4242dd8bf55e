"""Offline English text for the small causal LM: WordNet glosses, examples and hypernym statements.

WordNet 3.0 holds about 166k glosses and example sentences. Templated statements add the
noun hierarchy itself ("a dog is a kind of canine", "a dog is a kind of carnivore"): for
every single-word noun lemma, one statement for each of its first ``max_up`` ancestors on
its first hypernym path (each with the ancestor's first single-word lemma), in a template
drawn with a fixed seed.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np

from hsae_lm.wordnet_db import WordNetDB

TEMPLATES = ("{a} {child} is a kind of {parent}", "{a} {child} is a type of {parent}",
             "every {child} is {a2} {parent}")


@attrs.frozen
class CorpusConfig:
    """Which texts: WordNet sentences, hypernym statements, and any text files (one text a line)."""

    wordnet_sentences: bool = True
    hypernym_statements: bool = True
    max_up: int = 3
    templates: tuple[str, ...] = TEMPLATES
    text_files: tuple[Path, ...] = ()
    max_texts: int | None = None
    seed: int = 0


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def hypernym_statements(db: WordNetDB, templates=TEMPLATES, max_up: int = 3, seed: int = 0) -> list[str]:
    """Statements "a <lemma> is a kind of <ancestor>" for the first ``max_up`` ancestors."""
    synsets = db.synsets("n")
    rng = np.random.default_rng(seed)

    def word(s) -> str | None:  # noqa: ANN001
        return next((l.lower() for l in s.lemmas if "_" not in l), None)

    out = []
    for s in synsets.values():
        ancestors, node = [], s
        while node.hypernyms and len(ancestors) < max_up:
            node = synsets[node.hypernyms[0]]
            ancestors.append(node)
        for lemma in (l.lower() for l in s.lemmas if "_" not in l):
            for parent in filter(None, map(word, ancestors)):
                template = templates[rng.integers(len(templates))]
                out.append(template.format(a=article(lemma), child=lemma, a2=article(parent), parent=parent))
    return out


def build_corpus(config: CorpusConfig, db: WordNetDB | None) -> list[str]:
    """The texts of ``config``, in a fixed order (the trainer shuffles)."""
    texts: list[str] = []
    if config.wordnet_sentences:
        texts += list(db.sentences())
    if config.hypernym_statements:
        texts += hypernym_statements(db, config.templates, config.max_up, config.seed)
    for path in config.text_files:
        texts += [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if config.max_texts is not None and len(texts) > config.max_texts:
        keep = np.sort(np.random.default_rng(config.seed).choice(len(texts), config.max_texts, replace=False))
        texts = [texts[i] for i in keep]
    return texts
