"""Shared fixtures: a planted-feature activation file, recipe writing, in-process CLI runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def planted_features(n: int = 20000, n_features: int = 64, d: int = 32, p: float = 0.05, seed: int = 0):
    """``x = a @ D`` with sparse nonnegative ``a``; returns (x, D, a)."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(n_features, d, generator=g)
    directions /= directions.norm(dim=1, keepdim=True)
    active = torch.rand(n, n_features, generator=g) < p
    acts = active.float() * (0.5 + torch.rand(n, n_features, generator=g))
    return acts @ directions, directions, acts


@pytest.fixture
def toy_data(tmp_path: Path) -> Path:
    x, directions, _ = planted_features()
    np.save(tmp_path / "toy.npy", x.numpy())
    np.save(tmp_path / "toy_directions.npy", directions.numpy())
    return tmp_path / "toy.npy"


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


TOY_RECIPE = """
[data]
type = "tensor-file"
path = "toy.npy"

[model]
type = "sae"
d_sae = 64
router = {{ type = "topk", k = {k} }}

[losses.mse]
type = "mse"

[losses.auxk]
type = "auxk"

[train]
steps = {steps}
batch_size = 256
lr = 3e-3
log_every = 50
checkpoint_every = {checkpoint_every}
progress = false
"""


@pytest.fixture
def toy_recipe(tmp_path: Path, toy_data: Path) -> Path:
    return write(tmp_path / "toy.toml", TOY_RECIPE.format(k=4, steps=60, checkpoint_every=30))


@pytest.fixture
def cli(capsys):
    """Run ``hsae ARGS`` in-process; returns (exit code, stdout, stderr)."""
    from hsae.cli import main

    def run(*args: str):
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def hsae_subprocess(*args: str, cwd: Path, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run the real ``hsae`` console entry in a fresh interpreter."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "hsae", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, **kwargs)
