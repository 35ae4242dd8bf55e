"""Data-parallel training with torchrun (gloo on CPU) matches one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from conftest import TOY_RECIPE, hsae_subprocess, write


def test_two_process_gloo_matches_one_process(tmp_path, toy_data):
    # mse only: aux-k normalizes by the local batch's residual variance, which is per-rank by design.
    text = TOY_RECIPE.format(k=4, steps=30, checkpoint_every=0).replace('[losses.auxk]\ntype = "auxk"\n', "")
    recipe = write(tmp_path / "r.toml", text)
    single = hsae_subprocess("run", recipe, "--run-dir", tmp_path / "single", cwd=tmp_path)
    assert single.returncode == 0, single.stderr

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "hsae", "run", str(recipe), "--run-dir", str(tmp_path / "ddp")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a, b = load_file(tmp_path / "single" / "model.safetensors"), load_file(tmp_path / "ddp" / "model.safetensors")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-4), (key, (a[key] - b[key]).abs().max())
    lines = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # one training record and one final eval record, from rank 0 only
