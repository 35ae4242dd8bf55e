"""Layer specifications: ``0-5``, ``2,5,10``, ``0-2,10,15-17``.

Layers come back in the order written (the order of the concatenated features), each once;
a layer named twice is an error rather than silently dropped. Nothing here knows how many
layers a model has: whether a layer exists is checked against the data.
"""

from __future__ import annotations

import re

from hsae.errors import UserError

_PART = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_layers(spec: str) -> tuple[int, ...]:
    """The layers of ``spec``; a UserError naming the bad part otherwise."""
    layers: list[int] = []
    for part in str(spec).split(","):
        match = _PART.match(part)
        if not match:
            raise UserError(f"bad layer specification {spec!r}: {part.strip()!r} is not a layer (N) or a range (A-B)")
        start = int(match.group(1))
        stop = int(match.group(2)) if match.group(2) is not None else start
        if stop < start:
            raise UserError(f"bad layer specification {spec!r}: range {part.strip()!r} runs backwards")
        for layer in range(start, stop + 1):
            if layer in layers:
                raise UserError(f"bad layer specification {spec!r}: layer {layer} appears twice")
            layers.append(layer)
    return tuple(layers)

