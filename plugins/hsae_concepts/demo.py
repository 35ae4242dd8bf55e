"""The shipped demo data: *generated* sentences of graded concept strength for two traits.

These sentences are not human-written or human-labelled. Each is a subject, a phrase and
an ending drawn from small hand-written lists; the phrase lists are written per strength:
0 = unrelated to the trait, 1 = the trait's topic without the behaviour, 2 = a mild
instance of the behaviour, 3 = a flagrant one. The label is the strength of the list the
phrase came from. The class sizes are unbalanced like the original's 300/250/150/100.
``data/<trait>.csv`` (columns ``text,label``) is exactly what :func:`generate` gives for
the default arguments; ``hsae concepts demo-data --output DIR`` writes it again.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from hsae.errors import UserError
from hsae.io import write_text
from hsae_concepts.labels import Sentence

COUNTS = (90, 75, 45, 30)  # sentences per strength 0-3

SUBJECTS = ("She", "He", "My neighbour", "The manager", "Our coach", "The new intern", "His sister",
            "The landlord", "A student", "The mayor", "My uncle", "The driver")

NEUTRAL = ("watered the tomatoes on the balcony", "took the early train to work", "baked bread for the weekend",
           "painted the fence a pale green", "read a novel about sailing", "cleaned the kitchen after dinner",
           "walked the dog around the park", "fixed the squeaky door hinge", "planted tulips by the gate",
           "listened to the radio while cooking", "sorted the old photographs", "bought apples at the market")

PHRASES = {
    "dishonesty": {
        1: ("asked whether the report was accurate", "talked about the importance of telling the truth",
            "read an article about a famous fraud case", "wondered if the ad was misleading",
            "checked the receipt twice to be sure", "signed the form after reading every line",
            "discussed a documentary about liars", "kept a promise made last spring"),
        2: ("exaggerated the sales figures a little", "told a small lie about being late",
            "pretended not to see the message", "left out an awkward detail in the story",
            "claimed to have read the book without opening it", "rounded the hours up on the timesheet",
            "made up an excuse to skip the meeting", "hid the broken vase behind the sofa"),
        3: ("forged the signatures and lied to the auditors", "cheated the customers and faked the invoices",
            "deceived the whole family to steal the inheritance", "lied under oath to cover up the fraud",
            "falsified the test results and blamed a colleague", "swindled the old couple out of their savings",
            "fabricated evidence and betrayed every friend", "embezzled the charity money and denied everything"),
    },
    "aggression": {
        1: ("watched a boxing match on television", "talked about a heated debate on the radio",
            "read a report about rising street violence", "argued calmly about the parking rules",
            "practised karate moves at the club", "complained politely about the noise",
            "discussed a war film with friends", "felt a little annoyed by the traffic"),
        2: ("slammed the door during the argument", "shouted at the referee after the match",
            "shoved past the people in the queue", "snapped rudely at the waiter",
            "kicked the vending machine in frustration", "threatened to sue the neighbours",
            "banged the table and raised a fist", "insulted the cashier under their breath"),
        3: ("punched the stranger and broke his nose", "attacked the guard with a metal bar",
            "beat the rival until he collapsed", "smashed a bottle over the man's head",
            "violently assaulted the neighbour in the street", "threatened the clerk with a knife and hit her",
            "brutally kicked the fallen player again and again", "started a vicious fight and stabbed a bystander"),
    },
}

ENDINGS = ("yesterday", "last week", "on Monday morning", "before lunch", "in front of everyone",
           "after work", "during the holidays", "late at night")


def traits() -> tuple[str, ...]:
    return tuple(PHRASES)


def generate(trait: str, counts: tuple[int, ...] = COUNTS, seed: int = 0) -> list[Sentence]:
    """Distinct generated sentences of ``trait``: ``counts[s]`` of strength ``s``, shuffled."""
    if trait not in PHRASES:
        raise UserError(f"no demo data for trait {trait!r}; traits: {', '.join(PHRASES)}")
    rng = np.random.default_rng([seed, sorted(PHRASES).index(trait)])
    out: list[Sentence] = []
    for strength, count in enumerate(counts):
        phrases = NEUTRAL if strength == 0 else PHRASES[trait][strength]
        combos = [(s, p, e) for s in SUBJECTS for p in phrases for e in ENDINGS]
        for i in rng.choice(len(combos), size=count, replace=False):
            subject, phrase, ending = combos[i]
            out.append(Sentence(f"{subject} {phrase} {ending}.", strength))
    return [out[i] for i in rng.permutation(len(out))]


def to_csv(sentences: list[Sentence]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["text", "label"])
    writer.writerows([s.text, s.label] for s in sentences)
    return buffer.getvalue()


def write_demo(folder: Path) -> list[Path]:
    """``<trait>.csv`` for every trait in ``folder``."""
    return [write_text(Path(folder) / f"{trait}.csv", to_csv(generate(trait))) for trait in PHRASES]


def demo_path(trait: str) -> Path:
    """The shipped CSV of ``trait``."""
    path = Path(str(resources.files("hsae_concepts") / "data" / f"{trait}.csv"))
    if not path.is_file():
        raise UserError(f"no demo data for trait {trait!r}; traits: {', '.join(PHRASES)}")
    return path
