"""Warnings for the user, on stderr, as ``warning: ...`` lines (the seed's troubleshooting warnings)."""

from __future__ import annotations

import sys


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)
