"""Checkpoints: safetensors tensors plus a JSON trainer state, one folder per step.

A checkpoint folder is written under a temporary name and renamed into place, and
``state.json`` is written last, so a folder without it (or with a ``.tmp`` name) is an
interrupted write and is ignored on resume. Nothing is ever unpickled.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import torch

from hsae.errors import UserError
from hsae.io import load_tensors, read_json, save_tensors, write_json

_STEP_DIR = re.compile(r"^step_(\d+)$")


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors and JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for index, param_state in state["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value
            else:
                plain.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "plain": plain}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, values in rest["plain"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": rest["param_groups"]}


def save_checkpoint(root: Path, step: int, parts: dict[str, dict[str, torch.Tensor]], state: dict[str, Any], keep: int) -> Path:
    """Write ``parts`` (name -> tensors) and ``state`` as ``root/step_<step>``; keep the newest ``keep``."""
    final = root / f"step_{step:08d}"
    tmp = root / f".step_{step:08d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, tensors in parts.items():
        save_tensors(tmp / f"{name}.safetensors", tensors)
    write_json(tmp / "state.json", {"step": step, **state})
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in list_checkpoints(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoint folders, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))


def load_checkpoint(path: Path, names: list[str]) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """Read back what :func:`save_checkpoint` wrote; a corrupt file is a UserError naming it."""
    state = read_json(path / "state.json")
    parts = {}
    for name in names:
        file = path / f"{name}.safetensors"
        if not file.is_file():
            raise UserError(f"{file}: missing from checkpoint")
        parts[name] = load_tensors(file)
    return parts, state
