"""Synthetic persons: a unique full name and the six attributes; work city follows the employer."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hsae.errors import UserError
from hsae_bios.attributes import ATTRIBUTES, MONTHS
from hsae_bios.entities import Entities

BIRTH_YEARS = range(1950, 2006)


@dataclass(frozen=True)
class Person:
    """One person of the knowledge graph; ``attributes`` maps each of ATTRIBUTES to its value."""

    person_id: str
    full_name: str
    gender: str
    attributes: dict[str, str]


def birth_date(rng: random.Random) -> str:
    """A date in the seed's format, ``12,March,1985`` (days 1-28, so every month has them)."""
    return f"{rng.randint(1, 28)},{rng.choice(MONTHS)},{rng.choice(BIRTH_YEARS)}"


def unique_names(entities: Entities, n: int, rng: random.Random) -> list[tuple[str, str]]:
    """``n`` distinct (full name, gender) pairs, drawn without replacement from all combinations."""
    n_first, n_middle, n_last = len(entities.first_names), len(entities.middle_names), len(entities.last_names)
    total = n_first * n_middle * n_last
    if n > total:
        raise UserError(f"num_persons {n} exceeds the {total} distinct full names the entity lists allow")
    names = []
    for index in rng.sample(range(total), n):
        first, gender = entities.first_names[index // (n_middle * n_last)]
        middle = entities.middle_names[(index // n_last) % n_middle]
        last = entities.last_names[index % n_last]
        names.append((f"{first} {middle} {last}", gender))
    return names


def generate_persons(entities: Entities, n: int, rng: random.Random) -> list[Person]:
    """``n`` persons ``person_0000``... with independent uniform attributes (bioS style)."""
    if n < 1:
        raise UserError(f"num_persons must be at least 1, got {n}")
    persons = []
    width = max(4, len(str(n - 1)))
    for i, (name, gender) in enumerate(unique_names(entities, n, rng)):
        employer = rng.choice(entities.companies)
        values = {
            "birth_date": birth_date(rng),
            "birth_city": rng.choice(entities.cities),
            "university": rng.choice(entities.universities),
            "major": rng.choice(entities.majors),
            "employer": employer,
            "work_city": entities.company_city[employer],
        }
        persons.append(Person(f"person_{i:0{width}d}", name, gender, {a: values[a] for a in ATTRIBUTES}))
    return persons
