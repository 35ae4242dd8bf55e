"""``hsae data bios``: write the biography QA dataset (seed 003's step 1)."""

from __future__ import annotations

import argparse
from pathlib import Path


def data_subparsers(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The subcommands of ``hsae data``, creating ``data`` when no other plugin has."""
    data = subparsers.choices.get("data")
    if data is None:
        data = subparsers.add_parser("data", help="prepare offline data")
        data.set_defaults(handler=lambda args: (data.print_help(), 2)[1])
        return data.add_subparsers(dest="data_command", metavar="WHAT")
    return next(a for a in data._actions if isinstance(a, argparse._SubParsersAction))


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_bios_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``bios`` under ``hsae data``."""
    bios = data_subparsers(subparsers).add_parser(
        "bios", help="synthetic biographies and QA pairs (bioS, seed 003)",
        description="Write train_kg.json, test_kg.json (QA-train / QA-test persons, disjoint, with their "
                    "biographies), qa_train.jsonl (QA-train persons, question template 0), "
                    "qa_heldout_templates.jsonl (QA-train persons, templates 1-3), qa_test_persons.jsonl "
                    "(QA-test persons, all 4 templates) and meta.json.")
    bios.add_argument("--num_persons", type=int, default=1000, help="number of persons (default 1000)")
    bios.add_argument("--output", type=Path, default=Path("data/generated"),
                      help="output directory (default data/generated)")
    bios.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    bios.add_argument("--qa_train_fraction", type=float, default=0.5,
                      help="share of persons whose QA pairs are for training (default 0.5)")
    bios.add_argument("--bios_per_person", type=positive_int, default=1,
                      help="biographies per person, 1 or K (default 1)")
    bios.add_argument("--permute", action="store_true", help="shuffle the sentence order of each biography")
    bios.add_argument("--full_name", action="store_true",
                      help="full name in every sentence (default: pronouns after the first)")
    bios.set_defaults(handler=run_bios)
    return bios


def run_bios(args: argparse.Namespace) -> int:
    from hsae_bios.biographies import BiographyOptions
    from hsae_bios.dataset import BiosConfig, build_dataset
    from hsae_bios.output import write_dataset

    config = BiosConfig(num_persons=args.num_persons, seed=args.seed, qa_train_fraction=args.qa_train_fraction,
                        bios=BiographyOptions(args.bios_per_person, args.permute, args.full_name))
    dataset = build_dataset(config)
    write_dataset(dataset, config, args.output)
    print(f"{len(dataset.train_kg)} QA-train and {len(dataset.test_kg)} QA-test persons, "
          + ", ".join(f"{len(rows)} in {name}" for name, rows in dataset.qa.items()) + f" -> {args.output}")
    return 0
