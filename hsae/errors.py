"""User-facing errors.

Anything a user can cause (a recipe typo, a missing file, an unknown plugin) raises a
subclass of :class:`UserError`. The CLI prints its message on one line per problem and
exits with code 2; it never shows a traceback for these.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs


class UserError(Exception):
    """An error caused by the user's input, reported without a traceback."""

    exit_code = 2


@attrs.frozen
class Problem:
    """One located problem: ``file:line: path: message``."""

    message: str
    path: str = ""
    file: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = self.file
        if where and self.line is not None:
            where = f"{where}:{self.line}"
        parts = [p for p in (where, self.path, self.message) if p]
        return ": ".join(parts)


class RecipeError(UserError):
    """One or more problems in a recipe, all reported at once."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UnknownComponentError(UserError):
    """A ``type = "..."`` that no plugin registered."""

    def __init__(self, kind: str, name: str, available: list[str]):
        import difflib

        self.kind, self.name, self.available = kind, name, available
        close = difflib.get_close_matches(name, available, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listing = ", ".join(sorted(available)) or "none registered"
        super().__init__(f"unknown {kind} {name!r}{hint}; available: {listing}")


class DuplicateComponentError(UserError):
    """Two plugins registered the same (kind, name)."""
