"""The LM's training texts: Physics of LMs 3.1's mixed training.

Every person's biographies (QA-train and QA-test persons alike: the model must *know* all
facts) plus the QA pairs of the QA-train persons with their training template. QA-test
persons' questions are never trained on; their answer accuracy measures knowledge extraction.
"""

from __future__ import annotations

import json
from pathlib import Path

from hsae.errors import UserError
from hsae.io import read_jsonl
from hsae_bios.qa_format import qa_text

KG_FILES = ("train_kg.json", "test_kg.json")
QA_TRAIN_FILE = "qa_train.jsonl"


def read_kg(path: Path) -> list[dict]:
    """A knowledge-graph file (list of persons with ``biographies``)."""
    try:
        persons = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: file not found (write the dataset with `hsae data bios`)") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(persons, list) or not all(isinstance(p, dict) and "person_id" in p for p in persons):
        raise UserError(f"{path}: expected a JSON list of persons with person_id")
    return persons


def read_qa(path: Path) -> list[dict]:
    """A QA file: one JSON object per line with person_id, rule_idx, question and answer."""
    rows = []
    for number, row in read_jsonl(path, hint="write the dataset with `hsae data bios`"):
        missing = {"person_id", "rule_idx", "question", "answer"} - set(row)
        if missing:
            raise UserError(f"{path}:{number}: missing {', '.join(sorted(missing))}")
        rows.append(row)
    return rows


def check_qa_matches_kg(rows: list[dict], persons: list[dict], path: Path) -> None:
    """Every QA row's person exists in the KG and its answer is that person's attribute value."""
    by_id = {p["person_id"]: p for p in persons}
    for number, row in enumerate(rows, 1):
        person = by_id.get(row["person_id"])
        if person is None:
            raise UserError(f"{path}: row {number}: person {row['person_id']!r} is not in the knowledge graph; "
                            "the QA file does not belong to this dataset")
        attribute = row.get("rule_name")
        if attribute is not None and person.get(attribute) != row["answer"]:
            raise UserError(f"{path}: row {number}: answer {row['answer']!r} is not {row['person_id']}'s "
                            f"{attribute} ({person.get(attribute)!r}); the QA file does not match its knowledge graph")


def training_texts(data_dir: Path) -> list[str]:
    """All biographies of both person sides, then the QA-train pairs (training template)."""
    data_dir = Path(data_dir)
    persons = [p for name in KG_FILES for p in read_kg(data_dir / name)]
    texts = [bio for p in persons for bio in p["biographies"]]
    qa = read_qa(data_dir / QA_TRAIN_FILE)
    check_qa_matches_kg(qa, persons, data_dir / QA_TRAIN_FILE)
    return texts + [qa_text(row["question"], row["answer"]) for row in qa]
