"""A separately installed distribution reaches the registry through the ``hsae`` entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import TOY_RECIPE, hsae_subprocess, write

PLUGIN = Path(__file__).parent / "external_plugin"


def test_external_plugin_trains_from_a_recipe(tmp_path, toy_data):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(PLUGIN)], check=True, capture_output=True, text=True)
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}

    listing = hsae_subprocess("plugins", "--json", cwd=tmp_path, env=env)
    plugins = {p["name"]: p for p in json.loads(listing.stdout)}
    assert plugins["threshold"]["distribution"] == "hsae-threshold-router"
    assert plugins["threshold"]["version"] == "0.0.1"
    assert plugins["threshold"]["components"] == ["router:threshold"]

    text = TOY_RECIPE.format(k=4, steps=20, checkpoint_every=0).replace(
        'router = { type = "topk", k = 4 }', 'router = { type = "threshold", threshold = 0.05 }')
    text = text.replace('[losses.auxk]\ntype = "auxk"\n', '[losses.l1]\ntype = "l1"\ncoefficient = 0.01\n')
    recipe = write(tmp_path / "r.toml", text)
    run = hsae_subprocess("run", recipe, "--run-dir", tmp_path / "run", cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "run" / "cfg.json").read_text())["hsae_model"]["router"]["type"] == "threshold"

    without = hsae_subprocess("validate", recipe, cwd=tmp_path)
    assert without.returncode == 2 and "unknown router 'threshold'" in without.stderr
