"""Prompts that put a concept's word where activations are captured.

Each template ends with the word, so the word is the last real token of the prompt
(capture with ``positions = "last"``). Words come from a concept hierarchy's tokens; the
labels of a prompt are the concepts its word belongs to. Train and test prompts use
disjoint words (a seeded 70/30 split of the tokens, :func:`prompt_word_split`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import attrs
import numpy as np

from hsae_lm.concepts import ConceptHierarchy, split_tokens

TEMPLATES = (
    "{word}",
    "The word is {word}",
    "Here is an example: {word}",
    "She pointed at the {word}",
    "I am thinking of a {word}",
)


@attrs.frozen
class ConceptPrompt:
    """One prompt, the token id of its word, and the concepts of that word."""

    text: str
    token_id: int
    concepts: tuple[int, ...]


PROMPT_TRAIN_FRACTION = 0.7  # the share of a hierarchy's words that train prompts use


def prompt_word_split(hierarchy: ConceptHierarchy, *, train_frac: float = PROMPT_TRAIN_FRACTION,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` token ids of the words of train and test prompts (a seeded split, each sorted).

    The ``lm-activations`` source's ``eval`` split holds the test words' prompts, which the
    ``lm-concepts`` metric scores; the LM teacher is estimated on the train words only.
    """
    return split_tokens(hierarchy.token_ids(), train_frac, seed)


def concept_prompts(
    hierarchy: ConceptHierarchy, *, split: str = "all", templates: Sequence[str] = TEMPLATES,
    train_frac: float = PROMPT_TRAIN_FRACTION, seed: int = 0,
) -> Iterator[ConceptPrompt]:
    """Every (word, template) prompt of the ``split`` (``all``, ``train`` or ``test``)."""
    tokens = hierarchy.token_ids()
    if split != "all":
        train, test = prompt_word_split(hierarchy, train_frac=train_frac, seed=seed)
        tokens = {"train": train, "test": test}[split]
    labels = hierarchy.labels(tokens)
    for row, token in enumerate(tokens):
        word = hierarchy.words[int(token)]
        concepts = tuple(int(c) for c in np.flatnonzero(labels[row]))
        for template in templates:
            yield ConceptPrompt(template.format(word=word), int(token), concepts)
