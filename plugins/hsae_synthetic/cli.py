"""``hsae generate``: the seed's ``data_generator.py`` command line.

Values given on the command line override the parameter file (``--config``); the
parameter file overrides the defaults. ``--create_config`` writes a parameter file and
stops. Otherwise ``--n_samples`` samples are written to ``--output`` (``.pt``,
``.safetensors`` or ``.npz``; see :mod:`hsae_synthetic.output`) and, with ``--save_stats``,
their statistics to ``<output stem>_stats.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

import attrs

from hsae.errors import Problem, RecipeError, UserError

if TYPE_CHECKING:
    from hsae_synthetic.params import GeneratorParams

# The generator, torch and numpy are imported by the handlers, not here: building the
# ``hsae`` parser (``hsae --help``) imports this module and must stay fast.

DEFAULT_OUTPUT = "generated_data.pt"
CHUNK = 65536  # samples generated at a time
OVERRIDES = ("d_model", "noise_level", "feature_correlation", "feature_scale_variation", "orthogonal_features",
             "random_seed", "binary_features")


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_generate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``generate`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "generate", help="generate hierarchical synthetic data (tree-structured sparse features)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_argument_group("what to generate")
    src.add_argument("--config", metavar="PARAMS_JSON", help="parameter file (tree_config_file is relative to it)")
    src.add_argument("--tree_config", metavar="TREE_JSON", help="tree file (a bare name may be one of recipes/trees)")
    src.add_argument("--d_model", type=int, help="dimension of the data vectors (default 512)")
    src.add_argument("--noise_level", type=float, help="std of the Gaussian noise (default 0)")
    src.add_argument("--feature_correlation", type=float, help="mean pairwise cosine of the directions (default 0.05)")
    src.add_argument("--feature_scale_variation", type=float, help="direction norms uniform in [1-v, 1+v] (default 0.05)")
    src.add_argument("--orthogonal_features", type=_bool, nargs="?", const=True, metavar="BOOL",
                     help="orthogonal (QR) directions; needs n_features <= d_model (default true)")
    src.add_argument("--binary_features", type=_bool, nargs="?", const=True, metavar="BOOL",
                     help="magnitude 1 (true) or uniform(0, 1] (false) where a node sets no is_binary (default true)")
    src.add_argument("--random_seed", type=int, help="seed for the directions and the samples (default: fresh)")
    out = p.add_argument_group("output")
    out.add_argument("--n_samples", type=int, default=1000, help="number of samples (default 1000)")
    out.add_argument("--output", default=DEFAULT_OUTPUT, help=f"output file .pt/.safetensors/.npz (default {DEFAULT_OUTPUT})")
    out.add_argument("--save_stats", action="store_true", help="also write <output stem>_stats.json")
    out.add_argument("--create_config", metavar="PARAMS_JSON", help="only write a parameter file with these settings")
    out.add_argument("--print_tree", action="store_true", help="print the tree")
    custom = p.add_argument_group("random tree (--generate_custom_tree)")
    custom.add_argument("--generate_custom_tree", action="store_true", help="use a random tree built from the options below")
    custom.add_argument("--n_levels", type=int, default=3, help="levels of features below the root (default 3)")
    custom.add_argument("--branching_factor", type=float, default=3, help="mean number of children (default 3)")
    custom.add_argument("--root_prob", type=float, default=0.1, help="active_prob of the top features (default 0.1)")
    custom.add_argument("--decay_factor", type=float, default=0.7, help="active_prob factor per level (default 0.7)")
    custom.add_argument("--mutually_exclusive_prob", type=float, default=0.3,
                        help="probability that a feature's children are exclusive (default 0.3)")
    p.set_defaults(handler=run_generate)
    return p


def params_from_args(args: argparse.Namespace) -> GeneratorParams:
    """Defaults, then the parameter file, then the command line."""
    from hsae_synthetic.hierarchy import create_custom_tree_config
    from hsae_synthetic.params import GeneratorParams, check_value, load_params, resolve_tree_path

    params = load_params(args.config) if args.config else GeneratorParams()
    changes: dict[str, Any] = {}
    problems = []
    for key in OVERRIDES:
        value = getattr(args, key, None)
        if value is None:
            continue
        problem = check_value(key, value, f"--{key}")
        if problem:
            problems.append(problem)
        changes[key] = value
    if problems:
        raise RecipeError(problems)
    if args.tree_config:
        changes.update(tree_config_file=str(resolve_tree_path(args.tree_config)), tree_config=None, hierarchy=None)
    if args.generate_custom_tree:
        try:
            tree = create_custom_tree_config(
                n_levels=args.n_levels, branching_factor=args.branching_factor, root_prob=args.root_prob,
                decay_factor=args.decay_factor, mutually_exclusive_prob=args.mutually_exclusive_prob,
                seed=changes.get("random_seed", params.random_seed),
            )
        except ValueError as exc:
            raise UserError(f"--generate_custom_tree: {exc}") from None
        changes.update(tree_config=tree, tree_config_file=None, hierarchy=None)
    return attrs.evolve(params, **changes)


def create_config(params: GeneratorParams, path: Path) -> None:
    """Write a parameter file; an inline tree goes to ``<stem>_tree.json`` beside it."""
    from hsae_synthetic.output import write_json

    if params.tree_config is not None:
        tree_path = path.with_name(f"{path.stem}_tree.json")
        write_json(tree_path, params.tree_config)
        params = attrs.evolve(params, tree_config=None, tree_config_file=str(tree_path))
    write_json(path, params.to_json(relative_to=path))


def run_generate(args: argparse.Namespace) -> int:
    """Handler of ``hsae generate``; returns the exit code. Bad input raises a UserError."""
    import torch

    from hsae_synthetic.generator import HierarchicalDataGenerator
    from hsae_synthetic.output import DENSE_LIMIT, check_format, write_generated, write_json
    from hsae_synthetic.world import ActivationStats

    params = params_from_args(args)
    if args.create_config:
        path = Path(args.create_config)
        create_config(params, path)
        print(f"wrote parameter file {path}")
        return 0
    if params.tree_config_file is None and params.tree_config is None and params.hierarchy is None:
        raise UserError("no tree to generate from: give --config, --tree_config or --generate_custom_tree")
    if args.n_samples < 1:
        raise RecipeError([Problem(f"must be at least 1, got {args.n_samples}", path="--n_samples")])
    output = Path(args.output)
    check_format(output)
    gen = HierarchicalDataGenerator.from_params(params)
    if args.print_tree:
        gen.print_tree()

    stats = ActivationStats(gen.n_features)
    xs, rows, cols, vals = [], [], [], []
    for start in range(0, args.n_samples, CHUNK):
        batch = gen.sample(min(CHUNK, args.n_samples - start))
        stats.update(batch.activations)
        xs.append(batch.x)
        rows.append(batch.activations.rows + start)
        cols.append(batch.activations.cols)
        vals.append(batch.activations.values)
    tensors = {"data": torch.cat(xs)}
    rows_t, cols_t, vals_t = torch.cat(rows), torch.cat(cols), torch.cat(vals)
    if args.n_samples * gen.n_features <= DENSE_LIMIT:
        dense = torch.zeros(args.n_samples, gen.n_features)
        dense[rows_t, cols_t] = vals_t
        tensors["activations"] = dense
    else:
        tensors.update(activation_rows=rows_t, activation_cols=cols_t, activation_values=vals_t)
    tensors.update(
        feature_directions=gen.feature_directions,
        feature_parent=torch.from_numpy(gen.tree.feature_parent),
        feature_level=torch.from_numpy(gen.tree.feature_level),
    )
    recorded = attrs.evolve(gen.params, random_seed=gen.world.seed).to_json()
    write_generated(output, tensors, gen.get_tree_config(), recorded)

    emp = stats.result()
    print(f"{gen.n_features} features, d_model {gen.d_model}, expected L0 {gen.get_ground_truth_l0():.4f}, "
          f"empirical L0 {emp['l0']:.4f} over {args.n_samples} samples")
    print(f"wrote {output} (data {tuple(tensors['data'].shape)}"
          + (", activations dense)" if "activations" in tensors else ", activations as COO)"))
    if args.save_stats:
        stats_path = output.with_name(f"{output.stem}_stats.json")
        write_json(stats_path, gen.statistics_report(emp, args.n_samples))
        print(f"wrote {stats_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m hsae_synthetic.cli``) until ``hsae generate`` is wired."""
    parser = argparse.ArgumentParser(prog="hsae")
    add_generate_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except UserError as exc:
        import sys

        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
