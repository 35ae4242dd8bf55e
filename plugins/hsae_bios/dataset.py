"""Assemble the bios dataset: persons, biographies, the person split and the QA files' rows."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hsae_bios.biographies import BiographyOptions, biographies
from hsae_bios.entities import Entities, load_entities
from hsae_bios.persons import Person, generate_persons
from hsae_bios.qa import HELDOUT_TEMPLATES, TRAIN_TEMPLATES, qa_pairs, split_persons
from hsae_bios.templates import Templates, load_templates

# QA file name -> (person side, question template indices, value of its "split" field)
QA_FILES: dict[str, tuple[str, tuple[int, ...], str]] = {
    "qa_train.jsonl": ("train", TRAIN_TEMPLATES, "train"),
    "qa_heldout_templates.jsonl": ("train", HELDOUT_TEMPLATES, "test_template"),
    "qa_test_persons.jsonl": ("test", TRAIN_TEMPLATES + HELDOUT_TEMPLATES, "test_person"),
}


@dataclass(frozen=True)
class BiosConfig:
    """What ``hsae data bios`` generates; the same config gives byte-identical files."""

    num_persons: int = 1000
    seed: int = 0
    qa_train_fraction: float = 0.5
    bios: BiographyOptions = field(default_factory=BiographyOptions)


@dataclass
class BiosDataset:
    """The knowledge graphs (with biographies) of both person sides and the QA rows per file."""

    train_kg: list[dict]
    test_kg: list[dict]
    qa: dict[str, list[dict]]


def kg_record(person: Person, bios: list[str]) -> dict:
    """A person in the seed's knowledge-graph format."""
    return {"person_id": person.person_id, "full_name": person.full_name, **person.attributes, "biographies": bios}


def build_dataset(config: BiosConfig, entities: Entities | None = None, templates: Templates | None = None) -> BiosDataset:
    """Generate everything from ``config.seed``; each stage has its own random stream, so the
    biography options change the biographies only, never the persons or the split."""
    entities = entities or load_entities()
    templates = templates or load_templates()
    persons = generate_persons(entities, config.num_persons, random.Random(f"{config.seed}:persons"))
    split = split_persons(persons, config.qa_train_fraction, random.Random(f"{config.seed}:split"))
    bio_rng = random.Random(f"{config.seed}:biographies")
    records = {p.person_id: kg_record(p, biographies(p, templates, config.bios, bio_rng)) for p in persons}
    sides = {"train": split.train, "test": split.test}
    qa = {name: qa_pairs(sides[side], templates, indices, label) for name, (side, indices, label) in QA_FILES.items()}
    return BiosDataset(train_kg=[records[p.person_id] for p in split.train],
                       test_kg=[records[p.person_id] for p in split.test], qa=qa)
