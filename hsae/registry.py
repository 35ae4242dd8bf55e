"""Component registries: one per kind, filled by plugins through the ``hsae_register`` hook.

A component is a class with three class attributes:

* ``kind``: which registry it belongs to (``"router"``, ``"loss"``, ...), set by its base class;
* ``name``: the name a recipe uses in ``type = "..."``;
* ``Config``: a frozen attrs class holding its recipe keys.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, ClassVar

import attrs

from hsae.errors import DuplicateComponentError, UnknownComponentError

KINDS = ("data", "model", "encoder", "decoder", "router", "loss", "metric", "initializer", "callback", "pipeline")


class Component:
    """Base of everything a recipe can name with ``type = "..."``."""

    kind: ClassVar[str]
    name: ClassVar[str]

    @attrs.frozen
    class Config:
        """No recipe keys."""

    @classmethod
    def example_config(cls, workdir: Path) -> Any:
        """A config that builds on CPU, for the contract test; files it needs go in ``workdir``.

        The default is ``Config()``; components with required keys override this.
        """
        return cls.Config()

    @classmethod
    def summary(cls) -> str:
        """First paragraph of the class docstring, on one line (``hsae list`` shows it as plain text)."""
        doc = inspect.getdoc(cls) or ""
        return " ".join(doc.split("\n\n", 1)[0].split())


@attrs.frozen
class Entry:
    """A registered component and the plugin that provided it."""

    cls: type[Component]
    provider: str


class Registry:
    """All registered components, indexed by kind and name."""

    def __init__(self, parent: "Registry | None" = None) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self._provider = "<direct>"
        self._parent = parent  # a staging registry also sees (and refuses to shadow) its parent's names

    def staging(self) -> "Registry":
        """An empty registry that reads through to this one; :meth:`merge` adds its entries here.

        One plugin registers into a staging registry, so a clash refuses the whole plugin
        instead of leaving it half registered.
        """
        return Registry(parent=self)

    def merge(self, staged: "Registry") -> None:
        """Add every entry of ``staged`` (which :meth:`add` already checked against this registry)."""
        for kind, table in staged._entries.items():
            self._entries[kind].update(table)

    def add(self, cls: type[Component], provider: str | None = None) -> type[Component]:
        """Register ``cls`` under ``(cls.kind, cls.name)``. Usable as a decorator."""
        provider = provider or self._provider
        for attr in ("kind", "name", "Config"):
            if not hasattr(cls, attr):
                raise TypeError(f"{cls.__qualname__} ({provider}) has no {attr!r} attribute")
        if cls.kind not in self._entries:
            raise TypeError(f"{cls.__qualname__} ({provider}): unknown kind {cls.kind!r}; kinds are {KINDS}")
        if not attrs.has(cls.Config):
            raise TypeError(f"{cls.__qualname__}.Config ({provider}) must be an attrs class")
        table = self._entries[cls.kind]
        old = self._find(cls.kind, cls.name)
        if old is not None and old.cls is not cls:
            raise DuplicateComponentError(
                f"{cls.kind} {cls.name!r} is registered twice: by {old.provider} "
                f"({old.cls.__module__}.{old.cls.__qualname__}) and by {provider} "
                f"({cls.__module__}.{cls.__qualname__})"
            )
        table[cls.name] = Entry(cls, provider)
        return cls

    def _find(self, kind: str, name: str) -> Entry | None:
        """The entry of ``name`` here or in the parent, or ``None``."""
        found = self._entries[kind].get(name)
        if found is None and self._parent is not None:
            return self._parent._find(kind, name)
        return found

    def get(self, kind: str, name: str) -> type[Any]:
        """The class registered as ``name`` in ``kind``; unknown names list what exists."""
        return self.entry(kind, name).cls

    def entry(self, kind: str, name: str) -> Entry:
        """The entry (class and provider) registered as ``name`` in ``kind``."""
        found = self._find(kind, name)
        if found is None:
            raise UnknownComponentError(kind, name, self.names(kind))
        return found

    def names(self, kind: str) -> list[str]:
        inherited = self._parent.names(kind) if self._parent is not None else []
        return sorted({*inherited, *self._entries[kind]})

    def entries(self, kind: str | None = None) -> list[tuple[str, str, Entry]]:
        """``(kind, name, entry)`` triples, sorted."""
        kinds = [kind] if kind else list(KINDS)
        return [(k, n, self._entries[k][n]) for k in kinds for n in sorted(self._entries[k])]

    def remove_provider(self, provider: str) -> None:
        for table in self._entries.values():
            for name in [n for n, e in table.items() if e.provider == provider]:
                del table[name]

    def providing(self, provider: str):
        """Context manager that attributes registrations to ``provider``."""
        registry = self

        class _Scope:
            def __enter__(self_inner):
                self_inner.previous, registry._provider = registry._provider, provider

            def __exit__(self_inner, *exc):
                registry._provider = self_inner.previous

        return _Scope()
