"""QA pairs and the seed's splits: QA-train / QA-test persons (disjoint), and per attribute
question template 0 for training, templates 1-3 held out."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hsae.errors import UserError
from hsae_bios.attributes import ATTRIBUTES
from hsae_bios.persons import Person
from hsae_bios.templates import Templates, fill

TRAIN_TEMPLATES: tuple[int, ...] = (0,)
HELDOUT_TEMPLATES: tuple[int, ...] = (1, 2, 3)


@dataclass(frozen=True)
class PersonSplit:
    """QA-train persons (their QA pairs are trained on) and QA-test persons (never in QA training)."""

    train: list[Person]
    test: list[Person]


def split_persons(persons: list[Person], train_fraction: float, rng: random.Random) -> PersonSplit:
    """A random disjoint split; each side keeps at least one person."""
    if not 0.0 < train_fraction < 1.0:
        raise UserError(f"qa_train_fraction must be strictly between 0 and 1, got {train_fraction}")
    if len(persons) < 2:
        raise UserError(f"num_persons must be at least 2 to have QA-train and QA-test persons, got {len(persons)}")
    order = list(range(len(persons)))
    rng.shuffle(order)
    n_train = min(max(1, round(train_fraction * len(persons))), len(persons) - 1)
    chosen = set(order[:n_train])
    return PersonSplit(train=[p for i, p in enumerate(persons) if i in chosen],
                       test=[p for i, p in enumerate(persons) if i not in chosen])


def qa_pairs(persons: list[Person], templates: Templates, template_indices: tuple[int, ...], split: str) -> list[dict]:
    """Rows in the seed's QA format, one per person x attribute x template index."""
    rows = []
    for person in persons:
        for rule_idx, attribute in enumerate(ATTRIBUTES):
            for template_idx in template_indices:
                rows.append({
                    "person_id": person.person_id,
                    "rule_idx": rule_idx,
                    "rule_name": attribute,
                    "question": fill(templates.questions[attribute][template_idx], person.full_name),
                    "answer": person.attributes[attribute],
                    "template_idx": template_idx,
                    "split": split,
                })
    return rows
