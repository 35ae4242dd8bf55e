"""The seed's parameter files (``simple_params.json``) and where tree files are found.

A parameter file is a JSON object with the :class:`GeneratorParams` keys. The tree comes
from exactly one of ``tree_config_file`` (a path, relative to the parameter file),
``tree_config`` (the tree inline) or ``hierarchy`` (a generated SynthSAEBench-like forest,
see :class:`~hsae_synthetic.hierarchy.HierarchyConfig`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs

from hsae.errors import Problem, RecipeError, UserError
from hsae_synthetic.hierarchy import HierarchyConfig
from hsae_synthetic.tree import read_json

# The example trees shipped with hsae (the seed's "repository default" tree.json and others).
BUILTIN_TREES = Path(__file__).resolve().parents[2] / "recipes" / "trees"


@attrs.frozen
class GeneratorParams:
    """Everything that defines a synthetic world (the seed's parameter file)."""

    tree_config_file: str | None = None
    tree_config: dict[str, Any] | None = attrs.field(default=None, eq=False)
    hierarchy: HierarchyConfig | None = None
    d_model: int = 512
    orthogonal_features: bool = True
    feature_correlation: float = 0.05
    feature_scale_variation: float = 0.05
    noise_level: float = 0.0
    random_seed: int | None = None
    binary_features: bool = True

    def to_json(self, relative_to: str | Path | None = None) -> dict[str, Any]:
        """JSON object for a parameter file; ``tree_config_file`` relative to ``relative_to``'s folder."""
        out: dict[str, Any] = {}
        if self.tree_config_file is not None:
            path, here = Path(self.tree_config_file).resolve(), None
            if relative_to is not None:
                here = Path(relative_to).resolve().parent
            if path.parent == BUILTIN_TREES and (here is None or not (here / path.name).exists()):
                out["tree_config_file"] = path.name  # found again through the built-in fallback
            else:
                out["tree_config_file"] = os.path.relpath(path, here) if here is not None else str(path)
        if self.tree_config is not None:
            out["tree_config"] = self.tree_config
        if self.hierarchy is not None:
            out["hierarchy"] = self.hierarchy.to_dict()
        for key in ("d_model", "feature_correlation", "noise_level", "orthogonal_features",
                    "feature_scale_variation", "random_seed", "binary_features"):
            out[key] = getattr(self, key)
        return out


_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "tree_config_file": (str, "a file path (string)"),
    "tree_config": (dict, "a tree (object)"),
    "hierarchy": (dict, "an object"),
    "d_model": (int, "an integer"),
    "orthogonal_features": (bool, "true or false"),
    "feature_correlation": ((int, float), "a number"),
    "feature_scale_variation": ((int, float), "a number"),
    "noise_level": ((int, float), "a number"),
    "random_seed": (int, "an integer or null"),
    "binary_features": (bool, "true or false"),
}
_RANGES = {
    "d_model": (lambda v: v >= 1, "must be at least 1"),
    "feature_correlation": (lambda v: 0 <= v < 1, "is not in [0, 1)"),
    "feature_scale_variation": (lambda v: 0 <= v < 1, "is not in [0, 1)"),
    "noise_level": (lambda v: v >= 0, "must be >= 0"),
}


def check_value(key: str, value: Any, path: str, file: str = "") -> Problem | None:
    """The problem with one parameter value, if any."""
    types, kind = _TYPES[key]
    if value is None and key == "random_seed":
        return None
    wrong_bool = isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,))
    if wrong_bool or not isinstance(value, types):
        return Problem(f"expected {kind}, got {json.dumps(value) if not isinstance(value, (dict, list)) else type(value).__name__}",
                       path=path, file=file)
    if key in _RANGES and not _RANGES[key][0](value):
        return Problem(f"{value} {_RANGES[key][1]}", path=path, file=file)
    return None


def params_from_json(obj: Any, file: str = "", base_dir: Path | None = None) -> GeneratorParams:
    """Validate a parameter object (all problems at once); resolve ``tree_config_file`` against ``base_dir``."""
    if not isinstance(obj, dict):
        raise RecipeError([Problem("expected a JSON object of generator parameters", path="$", file=file)])
    problems: list[Problem] = []
    kwargs: dict[str, Any] = {}
    for key, value in obj.items():
        path = f"$.{key}"
        if key not in _TYPES:
            import difflib

            close = difflib.get_close_matches(key, list(_TYPES), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; allowed keys: {', '.join(_TYPES)}"
            problems.append(Problem(f"unknown key{hint}", path=path, file=file))
            continue
        problem = check_value(key, value, path, file)
        if problem:
            problems.append(problem)
        elif key == "hierarchy":
            try:
                kwargs[key] = HierarchyConfig.from_dict(value, path=path, file=file)
            except RecipeError as exc:
                problems.extend(exc.problems)
        else:
            kwargs[key] = float(value) if key in _RANGES and key != "d_model" else value
    sources = [k for k in ("tree_config_file", "tree_config", "hierarchy") if k in obj]
    if len(sources) > 1:
        problems.append(Problem(f"give only one of {', '.join(sources)}", path="$", file=file))
    if problems:
        raise RecipeError(problems)
    if "tree_config_file" in kwargs:
        kwargs["tree_config_file"] = str(resolve_tree_path(kwargs["tree_config_file"], base_dir))
    return GeneratorParams(**kwargs)


def load_params(path: str | Path) -> GeneratorParams:
    """Read a parameter file; ``tree_config_file`` is resolved relative to the file."""
    path = Path(path)
    return params_from_json(read_json(path), file=str(path), base_dir=path.parent)


def resolve_tree_path(name: str | Path, base_dir: str | Path | None = None) -> Path:
    """Find a tree file: absolute; else relative to ``base_dir`` (default: the working
    directory); else, for a bare file name, one of the example trees shipped in
    ``recipes/trees`` (``tree.json``, ``simple_hierarchy.json``, ``exclusive_groups.json``)."""
    path = Path(name).expanduser()
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = [Path(base_dir or ".") / path]
        if len(path.parts) == 1:
            candidates.append(BUILTIN_TREES / path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    shown = candidates[0]
    raise UserError(f"{shown}: no such tree file" + (f" (also looked in {BUILTIN_TREES})" if len(candidates) > 1 else ""))
