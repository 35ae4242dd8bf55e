"""The bios dataset (seed 003, step 1): persons, templates, splits, formats and ``hsae data bios``."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from hsae_bios.attributes import ATTRIBUTES
from hsae_bios.biographies import BiographyOptions, biographies
from hsae_bios.dataset import BiosConfig, build_dataset
from hsae_bios.entities import load_entities
from hsae_bios.persons import generate_persons
from hsae_bios.qa import HELDOUT_TEMPLATES, TRAIN_TEMPLATES
from hsae_bios.templates import load_templates

KG_FIELDS = ["person_id", "full_name", "birth_date", "birth_city", "university", "major", "employer",
             "work_city", "biographies"]
QA_FIELDS = ["person_id", "rule_idx", "rule_name", "question", "answer", "template_idx", "split"]
SEED_FILES = {"train_kg.json", "test_kg.json", "qa_train.jsonl", "qa_heldout_templates.jsonl",
              "qa_test_persons.jsonl", "meta.json"}


def generate(cli, out: Path, *extra: str) -> dict[str, bytes]:
    code, _, err = cli("data", "bios", "--num_persons", "60", "--output", out, *extra)
    assert code == 0, err
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_same_seed_gives_identical_bytes_and_another_seed_differs(cli, tmp_path):
    first = generate(cli, tmp_path / "a", "--bios_per_person", "3", "--permute")
    again = generate(cli, tmp_path / "b", "--bios_per_person", "3", "--permute")
    other = generate(cli, tmp_path / "c", "--bios_per_person", "3", "--permute", "--seed", "1")
    assert first == again
    assert first["train_kg.json"] != other["train_kg.json"]


def test_every_attribute_has_20_biography_and_4_question_templates():
    templates = load_templates()
    assert set(templates.biography) == set(templates.questions) == set(ATTRIBUTES)
    for attribute in ATTRIBUTES:
        assert len(set(templates.biography[attribute])) >= 20, attribute
        assert len(set(templates.questions[attribute])) == 4, attribute


def test_qa_persons_are_disjoint_and_templates_split_one_to_three():
    data = build_dataset(BiosConfig(num_persons=80, seed=3))
    train_ids = {r["person_id"] for r in data.train_kg}
    test_ids = {r["person_id"] for r in data.test_kg}
    assert train_ids and test_ids and not train_ids & test_ids and len(train_ids | test_ids) == 80
    assert TRAIN_TEMPLATES == (0,) and HELDOUT_TEMPLATES == (1, 2, 3)
    qa = data.qa
    assert {r["person_id"] for r in qa["qa_train.jsonl"]} == train_ids
    assert {r["template_idx"] for r in qa["qa_train.jsonl"]} == {0}
    assert {r["person_id"] for r in qa["qa_heldout_templates.jsonl"]} == train_ids
    assert {r["template_idx"] for r in qa["qa_heldout_templates.jsonl"]} == {1, 2, 3}
    assert {r["person_id"] for r in qa["qa_test_persons.jsonl"]} == test_ids
    assert len(qa["qa_train.jsonl"]) == 6 * len(train_ids)
    assert len(qa["qa_heldout_templates.jsonl"]) == 3 * 6 * len(train_ids)


def test_names_are_unique_and_work_city_follows_the_employer():
    entities = load_entities()
    persons = generate_persons(entities, 2000, random.Random(0))
    assert len({p.full_name for p in persons}) == 2000
    assert all(p.attributes["work_city"] == entities.company_city[p.attributes["employer"]] for p in persons)
    assert len({p.attributes["employer"] for p in persons}) > 1


def test_k_permuted_biographies_differ_in_order_but_carry_the_same_facts():
    templates = load_templates()
    person = generate_persons(load_entities(), 1, random.Random(5))[0]
    bios = biographies(person, templates, BiographyOptions(per_person=8, permute=True), random.Random(5))
    assert len(bios) == 8

    def order(bio: str) -> tuple[str, ...]:
        return tuple(sorted(ATTRIBUTES, key=lambda a: bio.index(person.attributes[a])))

    for bio in bios:
        assert all(person.attributes[a] in bio for a in ATTRIBUTES)
        assert len(re.findall(r"[.]\s", bio + " ")) == 6
    assert len({order(b) for b in bios}) > 1
    plain = biographies(person, templates, BiographyOptions(per_person=8), random.Random(5))
    assert {order(b) for b in plain} == {ATTRIBUTES}


def test_full_name_option_puts_the_name_in_every_sentence():
    templates = load_templates()
    person = generate_persons(load_entities(), 1, random.Random(2))[0]
    with_name = biographies(person, templates, BiographyOptions(full_name=True), random.Random(0))[0]
    with_pronouns = biographies(person, templates, BiographyOptions(), random.Random(0))[0]
    assert with_name.count(person.full_name) == 6
    assert with_pronouns.count(person.full_name) == 1 and with_pronouns.startswith(person.full_name)
    assert re.search(r"\b(She|He|Her|His)\b", with_pronouns)


def test_command_writes_the_seed_files_with_the_seed_fields(cli, tmp_path):
    files = generate(cli, tmp_path, "--bios_per_person", "2")
    assert set(files) == SEED_FILES
    for name in ("train_kg.json", "test_kg.json"):
        records = json.loads(files[name])
        assert records and all(list(r) == KG_FIELDS for r in records)
        assert all(len(r["biographies"]) == 2 for r in records)
        assert all(re.fullmatch(r"\d{1,2},[A-Z][a-z]+,\d{4}", r["birth_date"]) for r in records)
    kg = {r["person_id"]: r for n in ("train_kg.json", "test_kg.json") for r in json.loads(files[n])}
    for name in SEED_FILES - {"train_kg.json", "test_kg.json", "meta.json"}:
        rows = read_jsonl(tmp_path / name)
        assert rows and all(list(r) == QA_FIELDS for r in rows)
        for row in rows:
            assert row["rule_name"] == ATTRIBUTES[row["rule_idx"]]
            assert row["answer"] == kg[row["person_id"]][row["rule_name"]]
            assert kg[row["person_id"]]["full_name"] in row["question"]


@pytest.mark.parametrize("args, message", [
    (["--num_persons", "0"], "num_persons must be at least 1"),
    (["--num_persons", "1"], "num_persons must be at least 2"),
    (["--num_persons", "999999999"], "distinct full names"),
    (["--qa_train_fraction", "1.5"], "qa_train_fraction"),
])
def test_bad_input_is_a_one_line_error_with_exit_2(cli, tmp_path, args, message):
    code, out, err = cli("data", "bios", "--output", tmp_path / "out", *args)
    assert code == 2 and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_unwritable_output_is_a_one_line_error_with_exit_2(cli, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, _, err = cli("data", "bios", "--num_persons", "10", "--output", blocker / "sub")
    assert code == 2 and err.startswith("error: ") and "cannot write" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bios_command_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from hsae.cli import build_parser; build_parser(); "
            "import hsae_bios.cli; print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
