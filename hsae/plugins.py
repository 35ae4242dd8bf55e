"""Plugin loading: pluggy over the ``hsae`` entry-point group.

Every entry point is loaded on its own: one that fails to import is reported as a warning,
listed as failed by ``hsae plugins``, and never stops the others. A name clash is treated
the same way: a plugin that registers a component under a name another plugin already
holds is refused as a whole (none of its components are registered), warned about and
listed as failed with both providers named. The built-in plugins (entry points of the
``hsae`` distribution) register first, so they win over third parties whatever the load
order; between third parties, the first in entry-point name order wins. ``HSAE_DISABLE_PLUGINS``
(comma separated entry-point names) skips plugins.

Loading is cheap and registration is lazy: :meth:`PluginManager.load_entry_points` imports
each plugin's top module (which imports only ``hookimpl``) and registers it with pluggy, so
``hsae --help`` can collect the plugins' commands without importing torch. Each plugin's
``hsae_register`` hook, which imports its components, runs the first time the registry (or
``infos``, which lists components) is needed.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import warnings
from types import ModuleType

import attrs
import pluggy

from hsae import hookspecs
from hsae.errors import DuplicateComponentError
from hsae.registry import Registry

GROUP = "hsae"
BUILTIN_DISTRIBUTION = "hsae"


@attrs.define
class PluginInfo:
    """What ``hsae plugins`` shows about one entry point."""

    name: str
    distribution: str
    version: str
    module: str
    status: str = "loaded"  # loaded | failed | disabled
    error: str = ""
    components: list[str] = attrs.field(factory=list)
    hooks: list[str] = attrs.field(factory=list)
    doc: str = ""  # the plugin module's docstring
    plugin: object = attrs.field(default=None, repr=False, eq=False)  # the loaded module or object


class PluginManager:
    """Loads plugins and fills a :class:`Registry` from them, the first time it is needed."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("hsae")
        self.pm.add_hookspecs(hookspecs)
        self._registry = Registry()
        self._infos: list[PluginInfo] = []
        self._pending: list[tuple[object, PluginInfo]] = []  # loaded, hsae_register not called yet
        self._registering = False

    @property
    def registry(self) -> Registry:
        """The components of every plugin; runs pending ``hsae_register`` hooks first."""
        self.register_pending()
        return self._registry

    @property
    def infos(self) -> list[PluginInfo]:
        """What ``hsae plugins`` shows; runs pending ``hsae_register`` hooks first."""
        self.register_pending()
        return self._infos

    def load_entry_points(self) -> None:
        """Import every ``hsae`` entry point and register it with pluggy (not yet with the registry)."""
        disabled = {n.strip() for n in os.environ.get("HSAE_DISABLE_PLUGINS", "").split(",") if n.strip()}
        seen = set()
        for ep in sorted(md.entry_points(group=GROUP), key=lambda e: e.name):
            if ep.name in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add(ep.name)
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            info = PluginInfo(ep.name, dist, version, ep.value)
            self._infos.append(info)
            if ep.name in disabled:
                info.status = "disabled"
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                info.status, info.error = "failed", f"{type(exc).__name__}: {exc}"
                warnings.warn(f"hsae plugin {ep.name!r} ({dist}) failed to load: {info.error}", stacklevel=2)
                continue
            self._attach(module, info)
        self._pending.sort(key=lambda pending: not _is_builtin(pending[1]))  # stable: built-ins first
        self.pm.check_pending()

    def register(self, plugin: ModuleType | object, info: PluginInfo | None = None) -> None:
        """Register one plugin object (a module or any object with hookimpls) and its components now.

        A name clash refuses the plugin (as for entry points) and, since this call asked for
        it explicitly, raises :class:`DuplicateComponentError` naming both providers.
        """
        self.register_pending()
        info = self._attach(plugin, info)
        self._pending.pop()  # registered right away instead
        clash = self._call_register(plugin, info, explicit=True)
        if clash is not None:
            raise clash

    def register_pending(self) -> None:
        """Run ``hsae_register`` of every plugin loaded but not yet registered, built-ins first.

        A plugin that fails, or registers a name another plugin holds, is unregistered as a
        whole and listed as failed; the others are unaffected.
        """
        if self._registering or not self._pending:
            return
        self._registering = True
        try:
            while self._pending:
                plugin, info = self._pending[0]
                self._call_register(plugin, info)
                self._pending.pop(0)
        finally:
            self._registering = False

    def add_commands(self, subparsers: argparse._SubParsersAction) -> None:
        """Let every plugin add CLI subcommands; a plugin whose hook fails is skipped with a warning."""
        for impl in self.pm.hook.hsae_add_commands.get_hookimpls():
            try:
                impl.function(subparsers=subparsers)
            except Exception as exc:  # one broken plugin must not break the whole CLI
                info = self._info_named(impl.plugin_name)
                error = f"{type(exc).__name__}: {exc}"
                if info is not None:
                    info.status, info.error = "failed", error
                warnings.warn(f"hsae plugin {impl.plugin_name!r} failed to add commands: {error}", stacklevel=2)

    def unregister(self, plugin: object) -> None:
        """Forget ``plugin`` and its components (also one that was refused or failed)."""
        self._pending = [(p, i) for p, i in self._pending if p is not plugin]
        for info in [i for i in self._infos if i.plugin is plugin]:
            self._registry.remove_provider(_provider(info))
            self._infos.remove(info)
        if self.pm.is_registered(plugin):
            self.pm.unregister(plugin)

    def _attach(self, plugin: object, info: PluginInfo | None) -> PluginInfo:
        """Register ``plugin`` with pluggy and queue its ``hsae_register`` hook."""
        name = info.name if info else getattr(plugin, "__name__", repr(plugin))
        if info is None:
            info = PluginInfo(name, "<direct>", "", getattr(plugin, "__name__", ""))
            self._infos.append(info)
        self.pm.register(plugin, name=name)
        info.plugin = plugin
        info.doc = getattr(plugin, "__doc__", None) or ""
        info.hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
        self._pending.append((plugin, info))
        return info

    def _call_register(self, plugin: object, info: PluginInfo, explicit: bool = False) -> DuplicateComponentError | None:
        """Run one plugin's ``hsae_register`` into a staging registry and merge it if all went well.

        Any failure, a name clash included, refuses the whole plugin with a warning; the clash
        is returned (an ``explicit`` registration raises it instead of warning).
        """
        impl = getattr(plugin, "hsae_register", None)
        if impl is None:
            return None
        provider = _provider(info)
        staged = self._registry.staging()
        try:
            with staged.providing(provider):
                impl(registry=staged)
        except Exception as exc:  # a broken or clashing plugin must not take the others down
            clash = exc if isinstance(exc, DuplicateComponentError) else None
            self._refuse(plugin, info, exc, warn=not (explicit and clash))
            return clash
        self._registry.merge(staged)
        info.components = [f"{k}:{n}" for k, n, e in self._registry.entries() if e.provider == provider]
        return None

    def _refuse(self, plugin: object, info: PluginInfo, exc: Exception, warn: bool = True) -> None:
        """Unregister ``plugin`` and list it as failed (with a warning)."""
        self.pm.unregister(plugin)
        info.status, info.error = "failed", f"{type(exc).__name__}: {exc}"
        if isinstance(exc, DuplicateComponentError):
            info.error += "; the first registration is kept and this plugin is not loaded"
        if warn:
            warnings.warn(f"hsae plugin {info.name!r} failed to register: {info.error}", stacklevel=4)

    def _info_named(self, name: str) -> PluginInfo | None:
        return next((i for i in self._infos if i.name == name), None)


def _provider(info: PluginInfo) -> str:
    """How the registry names the plugin that provided a component."""
    return f"{info.name} ({info.distribution})" if info.distribution != "<direct>" else info.name


def _is_builtin(info: PluginInfo) -> bool:
    """Whether the entry point belongs to hsae itself (built-ins win name clashes)."""
    return info.distribution == BUILTIN_DISTRIBUTION


_manager: PluginManager | None = None


def get_manager() -> PluginManager:
    """The process-wide plugin manager, loading entry points on first use."""
    global _manager
    if _manager is None:
        manager = PluginManager()
        manager.load_entry_points()
        _manager = manager
    return _manager


def get_registry() -> Registry:
    """The process-wide registry with every loaded plugin's components."""
    return get_manager().registry


def reset() -> None:
    """Forget loaded plugins (tests; after installing a new distribution)."""
    global _manager
    _manager = None
