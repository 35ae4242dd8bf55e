"""The ``hsae`` command line: run, validate, plugins, list, and commands that plugins add."""

from __future__ import annotations

import argparse
import difflib
import inspect
import json
import os
import shlex
import sys
import textwrap
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
    from hsae.config.describe import first_paragraph
    from hsae.plugins import get_manager

    infos = get_manager().infos
    if args.json:
        print(json.dumps([{
            "name": i.name, "distribution": i.distribution, "version": i.version, "module": i.module,
            "status": i.status, "error": i.error, "summary": first_paragraph(i.doc), "hooks": i.hooks,
            "components": i.components,
        } for i in infos], indent=2))
        return 0
    for i in infos:
        print(f"{i.name}  ({i.distribution} {i.version})  [{i.status}]")
        if i.doc:
            print(f"    {first_paragraph(i.doc)}")
        if i.error:
            print(f"    error: {i.error}")
        if i.hooks:
            print(f"    hooks: {', '.join(i.hooks)}")
        if i.components:
            print(f"    components: {', '.join(i.components)}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from hsae.config.describe import plain_text
    from hsae.plugins import get_registry
    from hsae.registry import KINDS

    if args.name:
        return show_component(args.kind, args.name, as_json=args.json)
    registry = get_registry()
    if args.kind and args.kind not in KINDS and any(n == args.kind for _, n, _ in registry.entries()):
        raise UserError(f"{args.kind!r} is a component, not a kind; hsae show {args.kind} shows its keys")
    _check_kind(args.kind)
    rows = [{"kind": k, "name": n, "summary": plain_text(e.cls.summary()), "provider": e.provider}
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


def cmd_show(args: argparse.Namespace) -> int:
    if len(args.what) > 2:
        raise UserError(f"show takes NAME, KIND NAME or KIND:NAME, got {' '.join(args.what)!r}")
    kind, name = args.what if len(args.what) == 2 else (None, args.what[0])
    if kind is None and ":" in name:
        kind, name = name.split(":", 1)
    return show_component(kind, name, as_json=args.json)


def _check_kind(kind: str | None) -> None:
    from hsae.registry import KINDS

    if kind and kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"unknown kind {kind!r}{hint}; kinds are {', '.join(KINDS)}")


def find_component(kind: str | None, name: str) -> tuple[str, str]:
    """``(kind, name)`` of a registered component; without a kind, the only kind that has ``name``."""
    from hsae.plugins import get_registry

    registry = get_registry()
    _check_kind(kind)
    if kind:
        registry.get(kind, name)  # unknown names raise with a did-you-mean
        return kind, name
    kinds = [k for k, n, _ in registry.entries() if n == name]
    if len(kinds) > 1:
        choices = ", ".join(f"{k}:{name}" for k in kinds)
        raise UserError(f"{name!r} names several components ({choices}); say which, e.g. hsae show {kinds[0]} {name}")
    if not kinds:
        names = sorted({n for _, n, _ in registry.entries()})
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"no component named {name!r}{hint}; hsae list shows them all")
    return kinds[0], name


def describe_component(kind: str, name: str) -> dict:
    """What ``hsae show`` prints about a component, as JSON-ready data."""
    from hsae.config.describe import describe_config, plain_text
    from hsae.plugins import get_registry

    entry = get_registry().entry(kind, name)
    return {
        "kind": kind, "name": name, "provider": entry.provider, "summary": plain_text(entry.cls.summary()),
        "doc": plain_text(inspect.getdoc(entry.cls)),
        "keys": [k.to_json() for k in describe_config(entry.cls.Config)],
    }


def show_component(kind: str | None, name: str, *, as_json: bool = False) -> int:
    """Print a component's recipe keys (types, defaults, docs); a pipeline's are the whole recipe's."""
    kind, name = find_component(kind, name)
    info = describe_component(kind, name)
    if as_json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"{kind} {name}  (from {info['provider']})")
    if info["doc"]:
        print(textwrap.indent(info["doc"], "  "))
    print()
    if kind == "pipeline":
        print(f'recipe keys (a recipe with pipeline = "{name}"):')
    else:
        print(f'keys (in its table, beside type = "{name}"):')
    lines = format_keys(info["keys"], indent=2)
    print("\n".join(lines) if lines else "  (none)")
    return 0


def format_keys(keys: list[dict], indent: int) -> list[str]:
    """Text lines for described keys: ``key: type = default``, its doc below, nested keys indented."""
    lines = []
    pad = " " * indent
    for key in keys:
        head = f"{pad}{key['key']}: {key['type']}"
        if key["required"]:
            head += "  (required)"
        elif not (key.get("keys") and isinstance(key["default"], dict)):
            head += f" = {toml_inline(key['default'])}"
        lines.append(head)
        if key["doc"]:
            lines += textwrap.wrap(key["doc"], width=100, initial_indent=pad + "    ", subsequent_indent=pad + "    ")
        lines += format_keys(key.get("keys", []), indent + 2)
    return lines


def toml_inline(value: object) -> str:
    """A default as it would be written in a recipe; ``None`` (TOML has no null) as ``(unset)``."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_inline(v) for v in value) + "]"
    return str(value)


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

    listing = sub.add_parser("list", help="list registered components with their one-line docs",
                             description="List components; with KIND and NAME, show that component's keys.")
    listing.add_argument("kind", nargs="?", help="only this kind (router, loss, metric, ...)")
    listing.add_argument("name", nargs="?", help="show this component's recipe keys, types, defaults and docs")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)

    show = sub.add_parser("show", help="show a component's recipe keys with types, defaults and docs",
                          description="Show a component's recipe keys. NAME alone finds its kind; a pipeline "
                                      "(e.g. train) shows the whole recipe, [train] and [eval] included.")
    show.add_argument("what", nargs="+", metavar="[KIND] NAME", help="e.g. topk, router topk, loss:mse, train")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_show)

    from hsae.plugins import get_manager

    get_manager().add_commands(sub)
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
    except BrokenPipeError:  # `hsae plugins | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
