"""Write the bios dataset: ``train_kg.json``, ``test_kg.json``, ``qa_*.jsonl`` and ``meta.json``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from hsae.errors import UserError
from hsae_bios.attributes import ATTRIBUTES
from hsae_bios.dataset import QA_FILES, BiosConfig, BiosDataset


def _dump(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def meta(config: BiosConfig, dataset: BiosDataset) -> dict:
    """What generated the files and what each QA file holds."""
    return {
        "generator": "hsae data bios",
        "config": dataclasses.asdict(config),
        "attributes": list(ATTRIBUTES),
        "counts": {"train_kg.json": len(dataset.train_kg), "test_kg.json": len(dataset.test_kg),
                   **{name: len(rows) for name, rows in dataset.qa.items()}},
        "qa_files": {name: {"persons": f"{side}_kg.json", "template_idx": list(indices), "split": label}
                     for name, (side, indices, label) in QA_FILES.items()},
    }


def write_dataset(dataset: BiosDataset, config: BiosConfig, output: Path) -> list[Path]:
    """Write every file under ``output`` (created if needed); returns the paths written."""
    texts = {"train_kg.json": _dump(dataset.train_kg), "test_kg.json": _dump(dataset.test_kg)}
    for name, rows in dataset.qa.items():
        texts[name] = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    texts["meta.json"] = _dump(meta(config, dataset))
    written = []
    try:
        output.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            path = output / name
            path.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise UserError(f"{exc.filename or output}: cannot write ({exc.strerror or exc})") from None
    return written
