"""Prompts that put a concept's word where activations are captured.

Each template ends with the word, so the word is the last real token of the prompt
(capture with ``positions = "last"``). Words come from a concept hierarchy's tokens; the
labels of a prompt are the concepts its word belongs to. Train and test prompts use
disjoint words (a seeded 70/30 split of the tokens, :func:`prompt_word_split`); a
``validation_fraction`` of the train words can be held out as a third, validation split
(:func:`prompt_word_splits`).
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


def prompt_word_splits(hierarchy: ConceptHierarchy, *, validation_fraction: float = 0.0,
                       train_frac: float = PROMPT_TRAIN_FRACTION, seed: int = 0) -> dict[str, np.ndarray]:
    """``{"train", "validation", "test"}`` token ids, disjoint and each sorted.

    ``test`` is :func:`prompt_word_split`'s test words (unchanged by the validation split);
    ``validation`` a seeded ``validation_fraction`` of its train words, which ``train`` then lacks.
    """
    train, test = prompt_word_split(hierarchy, train_frac=train_frac, seed=seed)
    n_validation = int(round(validation_fraction * len(train)))
    chosen = np.random.default_rng([seed, 1]).permutation(len(train))[:n_validation]
    validation = np.sort(train[chosen])
    return {"train": np.setdiff1d(train, validation), "validation": validation, "test": test}


def concept_prompts(
    hierarchy: ConceptHierarchy, *, split: str = "all", templates: Sequence[str] = TEMPLATES,
    train_frac: float = PROMPT_TRAIN_FRACTION, seed: int = 0, validation_fraction: float = 0.0,
) -> Iterator[ConceptPrompt]:
    """Every (word, template) prompt of the ``split`` (``all``, ``train``, ``validation`` or ``test``)."""
    tokens = hierarchy.token_ids()
    if split != "all":
        tokens = prompt_word_splits(hierarchy, validation_fraction=validation_fraction, train_frac=train_frac,
                                    seed=seed)[split]
    labels = hierarchy.labels(tokens)
    for row, token in enumerate(tokens):
        word = hierarchy.words[int(token)]
        concepts = tuple(int(c) for c in np.flatnonzero(labels[row]))
        for template in templates:
            yield ConceptPrompt(template.format(word=word), int(token), concepts)
