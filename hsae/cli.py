"""The ``hsae`` command line: run, validate, plugins, list, and commands that plugins add."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from hsae.errors import RecipeError, UserError


def _recipe_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="path to a TOML recipe")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe key, e.g. --set train.steps=100 (repeatable)")


def cmd_run(args: argparse.Namespace) -> int:
    from hsae.config import load_recipe
    from hsae.runner import RunInterrupted, run_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    try:
        run_recipe(recipe, args.run_dir, resume=args.resume, phase=args.phase, announce=True)
    except RunInterrupted as stop:
        print(f"interrupted; continue with:\n  {resume_command(args, stop.root)}", file=sys.stderr)
        return 130
    return 0


def resume_command(args: argparse.Namespace, root: Path) -> str:
    """The ``hsae run ... --resume`` line that continues an interrupted run exactly."""
    from hsae.run_summary import shown_path

    words = ["hsae", "run", args.recipe, *(w for item in args.overrides for w in ("--set", item)),
             "--run-dir", shown_path(root), "--resume"]
    if args.phase is not None:
        words += ["--phase", str(args.phase)]
    return shlex.join(words)


def cmd_validate(args: argparse.Namespace) -> int:
    from hsae.config import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    recipe.build_pipeline().validate()
    print(f"{args.recipe}: ok ({recipe.pipeline} pipeline)")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from hsae.plugins import get_manager

    infos = get_manager().infos
    if args.json:
        print(json.dumps([{
            "name": i.name, "distribution": i.distribution, "version": i.version, "module": i.module,
            "status": i.status, "error": i.error, "hooks": i.hooks, "components": i.components,
        } for i in infos], indent=2))
        return 0
    for i in infos:
        print(f"{i.name}  ({i.distribution} {i.version})  [{i.status}]")
        if i.error:
            print(f"    error: {i.error}")
        if i.hooks:
            print(f"    hooks: {', '.join(i.hooks)}")
        if i.components:
            print(f"    components: {', '.join(i.components)}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from hsae.plugins import get_registry
    from hsae.registry import KINDS

    registry = get_registry()
    if args.kind and args.kind not in KINDS:
        raise UserError(f"unknown kind {args.kind!r}; kinds are {', '.join(KINDS)}")
    rows = [{"kind": k, "name": n, "summary": e.cls.summary(), "provider": e.provider}
            for k, n, e in registry.entries(args.kind)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    kind = None
    for row in rows:
        if row["kind"] != kind:
            kind = row["kind"]
            print(f"{kind}:")
        print(f"  {row['name']:<24} {row['summary']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from hsae import __version__

    parser = argparse.ArgumentParser(prog="hsae", description="Hierarchical sparse autoencoders from plugins and recipes.")
    parser.add_argument("--version", action="version", version=f"hsae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a recipe (train, evaluate, pipelines)")
    _recipe_args(run)
    run.add_argument("--run-dir", help="output directory (default: runs/<recipe>-<time>)")
    run.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    run.add_argument("--phase", type=int, help="run only phase N of a multi-phase pipeline (1-based)")
    run.set_defaults(handler=cmd_run)

    validate = sub.add_parser("validate", help="check a recipe and build its components without training")
    _recipe_args(validate)
    validate.set_defaults(handler=cmd_validate)

    plugins = sub.add_parser("plugins", help="list installed plugins, their versions and components")
    plugins.add_argument("--json", action="store_true")
    plugins.set_defaults(handler=cmd_plugins)

    listing = sub.add_parser("list", help="list registered components with their one-line docs")
    listing.add_argument("kind", nargs="?", help="only this kind (router, loss, metric, ...)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)

    from hsae.plugins import get_manager

    get_manager().pm.hook.hsae_add_commands(subparsers=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hsae`` console script."""
    warnings.filterwarnings("default", module="hsae")
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "handler", None):
            parser.print_help()
            return 2
        return int(args.handler(args) or 0)
    except RecipeError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return exc.exit_code
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
