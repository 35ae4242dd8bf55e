"""Steps 1-2 of ``bio-slots``: the dataset, the LM that must know its facts, and its QA accuracy.

The main LM trains on the recipe's biographies (by default K = 5 permuted biographies per
person with full names). With ``lm.compare_single`` a second LM of the same shape, steps
and learning rate trains on a copy of the dataset with one unpermuted biography per person
(same persons, same QA files): Physics of LMs 3.1's contrast, at equal compute. Each LM's
exact-match accuracy is measured on the three QA sets (``hsae_bios.qa_eval``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import attrs

from hsae.io import read_json, write_json
from hsae_bios.biographies import BiographyOptions
from hsae_bios.capture import QA_SETS
from hsae_bios.dataset import BiosConfig, build_dataset
from hsae_bios.lm_corpus import read_qa, training_texts
from hsae_bios.output import write_dataset
from hsae_bios.qa_format import qa_text
from hsae_bios.recipe import BioSlotsRecipe

DATA_DIR, SINGLE_DATA_DIR = "data", "data-single"
LM_DIR, SINGLE_LM_DIR = "lm", "lm-single"
ACCURACY_FILE = "lm_accuracy.json"


def data_dir(config: BioSlotsRecipe, run_root: Path) -> Path:
    """The dataset the pipeline uses: ``data.dir`` or the one generated into the run."""
    return Path(config.data.dir) if config.data.dir is not None else run_root / DATA_DIR


def bios_config(config: BioSlotsRecipe, single: bool = False) -> BiosConfig:
    d = config.data
    options = BiographyOptions(1, False, False) if single else BiographyOptions(d.bios_per_person, d.permute, d.full_name)
    return BiosConfig(num_persons=d.num_persons, seed=d.seed, qa_train_fraction=d.qa_train_fraction, bios=options)


def generate(config: BioSlotsRecipe, run_root: Path) -> None:
    """Phase ``data``: write the dataset (and the single-biography copy) unless ``data.dir`` is given."""
    variants = [] if config.data.dir is not None else [(DATA_DIR, False)]
    if config.lm.compare_single and config.data.dir is None:
        variants.append((SINGLE_DATA_DIR, True))
    for name, single in variants:
        bios = bios_config(config, single)
        write_dataset(build_dataset(bios), bios, run_root / name)
        print(f"dataset ({'1 biography' if single else f'{bios.bios.per_person} biographies'} per person) -> "
              f"{run_root / name}", file=sys.stderr)


def lm_dirs(config: BioSlotsRecipe, run_root: Path) -> dict[str, tuple[Path, Path]]:
    """``{arm: (dataset, model dir)}``: ``main`` (the LM the SAEs study) and ``single`` if compared."""
    arms = {"main": (data_dir(config, run_root), run_root / LM_DIR)}
    if config.lm.compare_single and config.data.dir is None:
        arms["single"] = (run_root / SINGLE_DATA_DIR, run_root / SINGLE_LM_DIR)
    return arms


def train_lm(config: BioSlotsRecipe, dataset: Path, out_dir: Path) -> dict:
    """Train (or fine-tune) one LM on the dataset's mixed-training texts; reuse a finished one."""
    from hsae_lm.lm_train import is_trained, read_record, train_causal_lm

    if is_trained(out_dir):
        print(f"reusing the trained LM in {out_dir}", file=sys.stderr)
        return read_record(out_dir)
    texts = training_texts(dataset)
    if config.lm.method == "sft":
        from hsae_bios.sft import sft_causal_lm
        from hsae_lm.models import resolve_model

        return sft_causal_lm(Path(resolve_model(config.lm.base_model)), texts, out_dir, config.lm.sft)
    held_out = [qa_text(r["question"], r["answer"]) for r in read_qa(dataset / QA_SETS["test_persons"])]
    return train_causal_lm(texts, out_dir, tokenizer_config=config.lm.tokenizer, shape=config.lm.model,
                           config=config.lm.train, eval_texts=held_out)


def qa_accuracy(model_dir: Path, dataset: Path, max_rows: int) -> dict[str, float]:
    """Exact-match accuracy on each QA set (its first ``max_rows`` rows)."""
    from hsae_bios import qa_eval
    from hsae_lm.models import load_model, load_tokenizer

    model, tokenizer = load_model(str(model_dir), causal_lm=True), load_tokenizer(str(model_dir))
    return {name: qa_eval.accuracy(qa_eval.correct(model, tokenizer, read_qa(dataset / file)[:max_rows]))
            for name, file in QA_SETS.items()}


def train_and_score(config: BioSlotsRecipe, run_root: Path) -> dict:
    """Phase ``lm``: every LM arm trained and scored; writes ``lm_accuracy.json``."""
    out = {}
    for arm, (dataset, model_dir) in lm_dirs(config, run_root).items():
        record = train_lm(config, dataset, model_dir)
        accuracy = qa_accuracy(model_dir, dataset, config.lm.eval_rows)
        meta = read_json(dataset / "meta.json") if (dataset / "meta.json").is_file() else {}
        out[arm] = {"accuracy": accuracy, "biographies": meta.get("config", {}).get("bios"),
                    "training": {k: v for k, v in record.items() if k != "log"}}
        print(f"LM {arm}: " + ", ".join(f"{k} {v:.1%}" for k, v in accuracy.items()), file=sys.stderr)
    out["lm"] = {"method": config.lm.method, **({"shape": attrs.asdict(config.lm.model)} if config.lm.method == "train"
                                                 else {"base_model": config.lm.base_model})}
    write_json(run_root / ACCURACY_FILE, out)
    return out
