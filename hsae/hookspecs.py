"""The hook specifications every hsae plugin implements (one module, as in pytest and llm).

A plugin is a module listed in the ``hsae`` entry-point group. It implements any of these
hooks with ``@hsae.hookimpl``. Built-in plugins under ``plugins/`` use the same hooks and
the same entry points as third-party packages.
"""

from __future__ import annotations

import argparse

import pluggy

hookspec = pluggy.HookspecMarker("hsae")
hookimpl = pluggy.HookimplMarker("hsae")


@hookspec
def hsae_register(registry) -> None:  # noqa: ANN001 - hsae.registry.Registry
    """Add this plugin's components with ``registry.add(ComponentClass)``."""


@hookspec
def hsae_add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add CLI subcommands. Each parser sets ``handler=fn(args) -> int`` via ``set_defaults``."""
