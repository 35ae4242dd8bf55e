"""Plugin loading: pluggy over the ``hsae`` entry-point group.

Every entry point is loaded on its own: one that fails to import is reported as a warning,
listed as failed by ``hsae plugins``, and never stops the others. ``HSAE_DISABLE_PLUGINS``
(comma separated entry-point names) skips plugins.
"""

from __future__ import annotations

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


class PluginManager:
    """Loads plugins and fills a :class:`Registry` from them."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("hsae")
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.infos: list[PluginInfo] = []

    def load_entry_points(self) -> None:
        disabled = {n.strip() for n in os.environ.get("HSAE_DISABLE_PLUGINS", "").split(",") if n.strip()}
        seen = set()
        for ep in sorted(md.entry_points(group=GROUP), key=lambda e: e.name):
            if ep.name in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add(ep.name)
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            info = PluginInfo(ep.name, dist, version, ep.value)
            self.infos.append(info)
            if ep.name in disabled:
                info.status = "disabled"
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                info.status, info.error = "failed", f"{type(exc).__name__}: {exc}"
                warnings.warn(f"hsae plugin {ep.name!r} ({dist}) failed to load: {info.error}", stacklevel=2)
                continue
            self.register(module, info)
        self.pm.check_pending()

    def register(self, plugin: ModuleType | object, info: PluginInfo | None = None) -> None:
        """Register one plugin object (a module or any object with hookimpls)."""
        name = info.name if info else getattr(plugin, "__name__", repr(plugin))
        if info is None:
            info = PluginInfo(name, "<direct>", "", getattr(plugin, "__name__", ""))
            self.infos.append(info)
        self.pm.register(plugin, name=name)
        info.hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
        impl = getattr(plugin, "hsae_register", None)
        if impl is None:
            return
        provider = f"{info.name} ({info.distribution})" if info.distribution != "<direct>" else info.name
        try:
            with self.registry.providing(provider):
                impl(registry=self.registry)
        except DuplicateComponentError:
            raise
        except Exception as exc:
            self.registry.remove_provider(provider)
            self.pm.unregister(plugin)
            info.status, info.error = "failed", f"{type(exc).__name__}: {exc}"
            warnings.warn(f"hsae plugin {name!r} failed to register: {info.error}", stacklevel=2)
            return
        info.components = [f"{k}:{n}" for k, n, e in self.registry.entries() if e.provider == provider]

    def unregister(self, plugin: object) -> None:
        name = self.pm.get_name(plugin)
        for info in [i for i in self.infos if i.name == name]:
            provider = f"{info.name} ({info.distribution})" if info.distribution != "<direct>" else info.name
            self.registry.remove_provider(provider)
            self.infos.remove(info)
        self.pm.unregister(plugin)


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
