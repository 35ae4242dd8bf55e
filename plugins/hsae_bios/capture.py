"""Step 3: residual-stream activations at the answer position, at every layer, for each QA set.

Each QA file becomes a JSONL of prompts (``qa_prompt(question)``) labelled ``[rule,
n_rules + value_id]`` (the multi-hot layout of ``hsae_bios.slots.labels``), captured by
``lm-activations`` with ``positions = "last"``: the prompt's last token is the answer
position. Layer ``L`` is the hook ``resid:L``: the residual stream after ``L`` blocks
(``0`` = embeddings; the last layer is the final block's output *before* GPT-2's ``ln_f``,
unlike ``hidden_states[-1]``, which is after it). Interventions (``hsae_bios.interventions``)
edit the same hook point, so capture and intervention sites agree by construction.

Captures are cached under ``<run>/capture/<set>/layer-<L>``; the cache's fingerprint holds a
digest of the model's weight files and of the prompt file, so a retrained model or a
regenerated dataset is captured again instead of being mixed up with an old capture.
"""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import numpy as np
import torch

from hsae_bios.attributes import ATTRIBUTES
from hsae_bios.lm_corpus import KG_FILES, read_kg
from hsae_bios.qa_format import qa_prompt

N_RULES = len(ATTRIBUTES)
# set name -> QA file; the slot SAE trains on "train" (QA-train persons, training template)
QA_SETS = {"train": "qa_train.jsonl", "heldout_templates": "qa_heldout_templates.jsonl",
           "test_persons": "qa_test_persons.jsonl"}


def value_vocabulary(data_dir: Path) -> list[tuple[str, str]]:
    """Every (attribute, value) of the dataset's persons, attribute by attribute, values sorted.

    The index of a pair is its global value id; the slot SAE's value heads predict it.
    """
    persons = [p for name in KG_FILES for p in read_kg(Path(data_dir) / name)]
    return [(a, v) for a in ATTRIBUTES for v in sorted({p[a] for p in persons})]


def write_prompts(rows: list[dict], vocabulary: list[tuple[str, str]], path: Path) -> None:
    """A JSONL of ``{"text", "labels"}`` for ``lm-activations`` (labels: rule and value columns)."""
    index = {pair: i for i, pair in enumerate(vocabulary)}
    with Path(path).open("w", encoding="utf-8") as out:
        for row in rows:
            value_id = index[(ATTRIBUTES[row["rule_idx"]], row["answer"])]
            out.write(json.dumps({"text": qa_prompt(row["question"]),
                                  "labels": [int(row["rule_idx"]), N_RULES + value_id]}) + "\n")


def adds_bos(tokenizer) -> bool:  # noqa: ANN001
    """Whether the tokenizer puts its BOS token first by itself (else capture prepends it)."""
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return tokenizer.bos_token_id is None or ids[:1] == [tokenizer.bos_token_id]


@attrs.frozen
class CaptureSettings:
    """How activations are captured: batch size in prompts, device and dtype of the LM."""

    batch_texts: int = 64
    device: str = "auto"
    dtype: str = "float32"


def source_config(model_dir: Path, layer: int, prompts: Path, cache_dir: Path, prepend_bos: bool,
                  settings: CaptureSettings, d_model: int | None = None) -> dict:
    """The ``lm-activations`` table capturing ``prompts`` at ``resid:<layer>`` (every row in ``train``)."""
    return {"type": "lm-activations", "model": str(model_dir), "hook": f"resid:{layer}", "positions": "last",
            "texts": {"source": "jsonl", "path": str(prompts)}, "eval_fraction": 0.0,
            "prepend_bos": prepend_bos, "cache_dir": str(cache_dir), "batch_texts": settings.batch_texts,
            "device": settings.device, "dtype": settings.dtype, "d_model": d_model, "progress": False,
            "shard_rows": 65_536, "max_rows": 10_000_000}


def rule_and_value(labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Rule index and global value id of each row of ``[rule, value]`` multi-hot labels, as numpy."""
    from hsae_bios.slots.labels import split_labels

    rule, value = split_labels(labels, N_RULES)
    return rule.numpy(), value.numpy()
