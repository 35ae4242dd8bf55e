"""Biographies in the style of Physics of LMs 3.1: one sentence per attribute, K per person,
optionally in permuted order, with the full name in every sentence or pronouns after the first."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hsae_bios.attributes import ATTRIBUTES
from hsae_bios.persons import Person
from hsae_bios.templates import Templates, fill


@dataclass(frozen=True)
class BiographyOptions:
    """``per_person``: biographies per person (1 or K); ``permute``: shuffle sentence order per
    biography; ``full_name``: the full name in every sentence (else pronouns after the first)."""

    per_person: int = 1
    permute: bool = False
    full_name: bool = False


def biography(person: Person, templates: Templates, options: BiographyOptions, rng: random.Random) -> str:
    """One biography: a random template per attribute, in ATTRIBUTES order unless permuted."""
    order = list(ATTRIBUTES)
    if options.permute:
        rng.shuffle(order)
    sentences = []
    for position, attribute in enumerate(order):
        template = rng.choice(templates.biography[attribute])
        pronoun = None if options.full_name or position == 0 else person.gender
        sentences.append(fill(template, person.full_name, person.attributes[attribute], pronoun))
    return " ".join(sentences)


def biographies(person: Person, templates: Templates, options: BiographyOptions, rng: random.Random) -> list[str]:
    """``options.per_person`` biographies of ``person``."""
    return [biography(person, templates, options, rng) for _ in range(options.per_person)]
