"""Commands: ``hsae generate-datasets`` (s4, the seed's flags) and ``hsae concepts ...``
(``features`` s1, ``rank`` s2, ``classify`` and ``layer-sweep`` s5, ``demo-data`` s0)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hsae.errors import UserError

_SEED_DOC = """Generate classifier datasets from s1 sentence files (seed 004's generate_datasets.py).

  hsae generate-datasets --strategy embedding-to-feature --input DIR --target-layer 12 --target-feature 1234 --output X.npz
  hsae generate-datasets --strategy hidden-to-feature   --input DIR --target-layer 12 --target-feature 1234 --output X.npz
  hsae generate-datasets --strategy hidden-to-concept   --input DIR --layer 12 --output X.npz
  hsae generate-datasets --strategy hidden-to-concept   --input DIR --layers 0-2,10,15-17 --output X.npz

Only the final-token slice of each file is read. The output holds X, y, meta_*, norm_*
(np.load(..., allow_pickle=False) reads it) and <output>.json beside it. --test-fraction
fits the normalization on a stratified training split and stores split_*_indices."""


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    add_generate_parser(subparsers)
    add_concepts_parser(subparsers)


def add_generate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from hsae_concepts.choices import NORMALIZATIONS, SEED_STRATEGIES

    p = subparsers.add_parser("generate-datasets", help="classifier datasets from s1 sentence files (seed 004, s4)",
                              description=_SEED_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strategy", required=True, choices=SEED_STRATEGIES, help="dataset strategy")
    p.add_argument("--input", required=True, type=Path, help="directory with the s1 sentence_*.npz files")
    p.add_argument("--output", required=True, type=Path, help="output .npz file (parent folders are created)")
    p.add_argument("--normalize", choices=NORMALIZATIONS, default="standardize", help="normalization of X (default standardize)")
    p.add_argument("--target-layer", type=int, help="*-to-feature: layer of the target SAE feature")
    p.add_argument("--target-feature", type=int, help="*-to-feature: SAE feature index (range from the data)")
    layers = p.add_mutually_exclusive_group()
    layers.add_argument("--layer", type=int, help="hidden-to-concept: one layer")
    layers.add_argument("--layers", help="hidden-to-concept: several layers, e.g. 0-5, 2,5,10 or 0-2,10,15-17 "
                                         "(concatenated in this order)")
    p.add_argument("--test-fraction", type=float, default=0.0,
                   help="hold out this share of each label; normalization is fitted on the rest and the split "
                        "indices are stored (default 0: fitted on all samples, as the seed did)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the stratified split (default 0)")
    p.set_defaults(handler=run_generate)
    return p


def run_generate(args: argparse.Namespace) -> int:
    from hsae_concepts.datasets import DatasetSpec, build_dataset, save_dataset
    from hsae_concepts.layers import parse_layers

    concept = args.strategy == "hidden-to-concept"
    if concept and (args.target_layer is not None or args.target_feature is not None):
        raise UserError("--target-layer and --target-feature are for the *-to-feature strategies; "
                        "hidden-to-concept takes --layer or --layers")
    if not concept and (args.layer is not None or args.layers is not None):
        raise UserError(f"--layer and --layers are for hidden-to-concept; {args.strategy} takes --target-layer")
    layers = (args.layer,) if args.layer is not None else parse_layers(args.layers) if args.layers else ()
    spec = DatasetSpec(args.strategy, layers=layers, target_layer=args.target_layer, target_feature=args.target_feature,
                       normalize=args.normalize, test_fraction=args.test_fraction, split_seed=args.split_seed)
    dataset = build_dataset(args.input, spec)
    save_dataset(dataset, args.output, args.input)
    split = f", split {len(dataset.extra['split_train_indices'])}/{len(dataset.extra['split_test_indices'])}" \
        if "split_train_indices" in dataset.extra else ""
    print(f"{args.strategy}: X {list(dataset.X.shape)}, y {list(dataset.y.shape)} ({args.normalize}{split}) "
          f"-> {args.output}")
    return 0


def add_concepts_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    concepts = subparsers.add_parser("concepts", help="concept features (seed 004): s1 files, s2 ranking, s5 classifiers")
    sub = concepts.add_subparsers(dest="concepts_command", metavar="STEP")
    concepts.set_defaults(handler=lambda args: (concepts.print_help(), 2)[1])

    f = sub.add_parser("features", help="s1: sentence_NNNNNN.npz per sentence (one forward pass per batch)")
    source = f.add_mutually_exclusive_group(required=True)
    source.add_argument("--sentences", type=Path, help="CSV or JSONL with text and label (0-3)")
    source.add_argument("--demo", help="a shipped generated trait (dishonesty, aggression)")
    f.add_argument("--model", required=True, help="local HF model directory, pkg:<package>, smollm2, or hub name")
    f.add_argument("--layers", required=True, help="layers, e.g. 0-5 or 0,12,25")
    f.add_argument("--sae", action="append", default=[], metavar="LAYER=DIR", required=True,
                   help="the SAE of a layer: an hsae run or SAELens-format directory (repeat for each layer)")
    f.add_argument("--output", required=True, type=Path, help="output directory (must not hold sentence files)")
    f.add_argument("--sparse", action="store_true", help="store SAE activations sparsely (CSR) instead of dense")
    f.add_argument("--batch-size", type=int, default=16, help="sentences per forward pass (default 16)")
    f.add_argument("--no-bos", action="store_true", help="do not prepend the tokenizer's BOS token")
    f.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    f.set_defaults(handler=run_features)

    r = sub.add_parser("rank", help="s2: ranked_features.csv on the training split")
    r.add_argument("--input", required=True, type=Path, help="s1 sentence file directory")
    r.add_argument("--output", required=True, type=Path, help="output CSV")
    r.add_argument("--top", type=int, default=100, help="rows to keep (default 100)")
    _split_args(r, "used when the directory's features.json records no split")
    r.set_defaults(handler=run_rank)

    c = sub.add_parser("classify", help="s5: logistic regression and linear SVM on s4 datasets")
    c.add_argument("datasets", nargs="+", type=Path, help="hidden-to-concept .npz files from generate-datasets")
    c.add_argument("--folds", type=int, default=5, help="stratified CV folds (default 5)")
    c.add_argument("--json", type=Path, help="also write the results here")
    c.set_defaults(handler=run_classify)

    w = sub.add_parser("layer-sweep", help="s4 + s5 at every layer against the embedding baseline (PNG + JSON)")
    w.add_argument("--input", required=True, type=Path, help="s1 sentence file directory")
    w.add_argument("--output", required=True, type=Path, help="output directory")
    w.add_argument("--layers", help="layers to compare (default: every layer in the data)")
    w.add_argument("--folds", type=int, default=5, help="stratified CV folds (default 5)")
    _split_args(w, "the test split of every dataset")
    w.set_defaults(handler=run_sweep)

    d = sub.add_parser("demo-data", help="s0: write the generated demo sentences (the shipped CSVs)")
    d.add_argument("--output", required=True, type=Path, help="output directory")
    d.set_defaults(handler=run_demo)
    return concepts


def _split_args(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--test-fraction", type=float, default=0.2, help=f"held-out share of each label ({what}; default 0.2)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the stratified split (default 0)")


def run_features(args: argparse.Namespace) -> int:
    from hsae_concepts import demo
    from hsae_concepts.capture import CaptureOptions
    from hsae_concepts.features import write_features
    from hsae_concepts.labels import read_sentences
    from hsae_concepts.layers import parse_layers
    from hsae_concepts.saes import LayerSAE

    layers = parse_layers(args.layers)
    dirs = _sae_dirs(args.sae)
    missing = [layer for layer in layers if layer not in dirs]
    if missing or set(dirs) - set(layers):
        raise UserError(f"--sae must name exactly the --layers {list(layers)}: missing {missing}, "
                        f"extra {sorted(set(dirs) - set(layers))}")
    path = args.sentences if args.sentences is not None else demo.demo_path(args.demo)
    sentences = read_sentences(path)
    saes = {layer: LayerSAE(dirs[layer]) for layer in layers}
    options = CaptureOptions(batch_size=args.batch_size, prepend_bos=not args.no_bos)
    write_features(sentences, args.model, saes, args.output, options=options, sparse=args.sparse, device=args.device,
                   extra={"sentences": str(path)})
    print(f"{len(sentences)} sentence files -> {args.output}")
    return 0


def _sae_dirs(items: list[str]) -> dict[int, Path]:
    out = {}
    for item in items:
        layer, sep, path = item.partition("=")
        if not sep or not layer.strip().isdigit():
            raise UserError(f"--sae {item!r}: expected LAYER=DIR, e.g. --sae 12=runs/cf/saes/layer_12")
        out[int(layer)] = Path(path)
    return out


def run_rank(args: argparse.Namespace) -> int:
    import numpy as np

    from hsae_concepts.featurefile import read_sidecar
    from hsae_concepts.labels import stratified_split
    from hsae_concepts.ranking import rank_features, write_ranked_csv
    from hsae_concepts.reader import Request, open_directory, read_final_tokens

    info = open_directory(args.input)
    split = (read_sidecar(args.input) or {}).get("split")
    if split is not None:
        train = set(split["train"])
        print(f"ranking on the {len(train)} training sentences of {args.input / 'features.json'}", file=sys.stderr)
    else:
        tokens = read_final_tokens(info, Request())
        rows, _ = stratified_split(tokens.labels, args.test_fraction, args.split_seed)
        train = set(np.asarray(tokens.sentence_indices)[rows].tolist())
        print(f"ranking on a stratified {1 - args.test_fraction:.0%} training split ({len(train)} sentences)",
              file=sys.stderr)
    ranked = rank_features(info, train, args.top)
    write_ranked_csv(ranked, args.output)
    print(f"{len(ranked)} features -> {args.output}")
    return 0


def run_classify(args: argparse.Namespace) -> int:
    from hsae.io import write_json
    from hsae_concepts.classifiers import MODELS, evaluate_file

    results = {}
    for path in args.datasets:
        result = evaluate_file(path, folds=args.folds)
        results[str(path)] = result
        scores = "; ".join(f"{m}: CV {result[m]['cv_mean']:.3f} ± {result[m]['cv_std']:.3f}"
                           + (f", test {result[m]['test']:.3f}" if "test" in result[m] else "") for m in MODELS)
        print(f"{path}: {scores} (majority {result['majority']:.3f}, {result['n_train']} train / {result['n_test']} test)")
    if args.json:
        write_json(args.json, results)
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    from hsae_concepts.layers import parse_layers
    from hsae_concepts.reader import open_directory
    from hsae_concepts.sweep import classify_layer_datasets, write_layer_datasets

    info = open_directory(args.input)
    layers = parse_layers(args.layers) if args.layers else info.layers
    write_layer_datasets(info, layers, args.output / "datasets", test_fraction=args.test_fraction,
                         split_seed=args.split_seed)
    classify_layer_datasets(args.output / "datasets", layers, args.output, folds=args.folds, seed=args.split_seed)
    print(f"{args.output / 'classifiers.json'}, {args.output / 'accuracy_by_layer.png'}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from hsae_concepts.demo import write_demo

    for path in write_demo(args.output):
        print(path)
    return 0
