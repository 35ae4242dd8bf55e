"""The hook specifications every hsae plugin implements (one module, as in pytest and llm).

A plugin is a module listed in the ``hsae`` entry-point group. It implements any of these
hooks with ``@hsae.hookimpl``. Built-in plugins under ``plugins/`` use the same hooks and
the same entry points as third-party packages.

Every command, ``hsae --help`` included, imports each plugin's module, so that module
should import only ``hookimpl`` at its top and leave torch and its components to the
hooks' bodies (``hsae_register`` runs only when a command needs the registry).
"""

from __future__ import annotations

import argparse

import pluggy

hookspec = pluggy.HookspecMarker("hsae")
hookimpl = pluggy.HookimplMarker("hsae")


@hookspec
def hsae_register(registry) -> None:  # noqa: ANN001 - hsae.registry.Registry
    """Add this plugin's components with ``registry.add(ComponentClass)``.

    Called once, the first time the registry is needed (not for ``hsae --help``); import the
    component modules here, not at the plugin module's top.
    """


@hookspec
def hsae_add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add CLI subcommands. Each parser sets ``handler=fn(args) -> int`` via ``set_defaults``.

    Called for every command line, ``hsae --help`` too: the module that builds the parsers
    must not import torch or components at its top (the handlers import what they need).
    """
