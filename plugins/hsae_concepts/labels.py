"""s0: labelled sentences (``text`` and a concept strength ``label`` 0-3), class balance, splits.

Input is CSV (a header row naming ``text`` and ``label``; other columns are kept out) or
JSONL (one object per line with those keys). Every problem names the file and the line.
Splits are stratified by label: the classes are usually unbalanced (the original had
300/250/150/100), and a plain random split would shift the class mix between train and test.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import attrs
import numpy as np

from hsae.errors import UserError
from hsae.io import read_jsonl

LABELS = (0, 1, 2, 3)


@attrs.frozen
class Sentence:
    text: str
    label: int


def read_sentences(path: Path) -> list[Sentence]:
    """The sentences of a ``.csv`` or ``.jsonl`` file, in file order; a UserError at the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: labelled sentences file not found")
    rows = _jsonl_rows(path) if path.suffix.lower() in (".jsonl", ".json") else _csv_rows(path)
    sentences = [_sentence(path, line, record) for line, record in rows]
    if not sentences:
        raise UserError(f"{path}: no sentences")
    return sentences


def _csv_rows(path: Path):  # noqa: ANN202 - iterator of (line, dict)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"text", "label"} - set(reader.fieldnames or ())
        if missing:
            raise UserError(f"{path}:1: the header needs the columns text and label (missing: {', '.join(sorted(missing))})")
        for record in reader:
            yield reader.line_num, record


def _jsonl_rows(path: Path):  # noqa: ANN202 - iterator of (line, dict)
    return read_jsonl(path)


def _sentence(path: Path, line: int, record: dict) -> Sentence:
    text, label = record.get("text"), record.get("label")
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"{path}:{line}: text is missing or empty")
    try:
        value = int(str(label).strip())
    except ValueError:
        raise UserError(f"{path}:{line}: label must be an integer 0-3, got {label!r}") from None
    if value not in LABELS:
        raise UserError(f"{path}:{line}: label must be 0-3, got {value}")
    return Sentence(text.strip(), value)


def class_balance(labels: np.ndarray | list[int]) -> dict[int, int]:
    """Sentences per label 0-3 (zeros included)."""
    counts = Counter(int(v) for v in labels)
    return {label: counts.get(label, 0) for label in LABELS}


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(train, test)``: each class keeps ``test_fraction`` of its rows for testing.

    Deterministic in ``(labels, test_fraction, seed)``; each class with at least two rows
    puts at least one in each part.
    """
    if not 0 < test_fraction < 1:
        raise UserError(f"the test fraction must be in (0, 1), got {test_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    test: list[np.ndarray] = []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(test_fraction * len(rows)))
        if len(rows) >= 2:
            n_test = min(max(n_test, 1), len(rows) - 1)
        test.append(rows[:n_test])
    test_rows = np.sort(np.concatenate(test)) if test else np.zeros(0, dtype=np.int64)
    return np.setdiff1d(np.arange(len(labels)), test_rows), test_rows
