"""CONTRIBUTING.md's example plugin, installed as its readers would, trains from its recipes.

The blocks tagged ``file=...`` in CONTRIBUTING.md are written out as the ``hsae-examples``
package, installed with the exact command the guide gives into a fresh virtual environment
that sees this one's packages (so nothing leaks into other tests), then run with ``hsae``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import REPO

GUIDE = (REPO / "CONTRIBUTING.md").read_text()
INSTALL = "pip install --no-build-isolation -e ."


def guide_files() -> dict[str, str]:
    """``{relative path: text}`` of every fenced block tagged ``file=PATH``."""
    return {path: text for _, path, text in re.findall(r"```(\w+) file=(\S+)\n(.*?)```", GUIDE, flags=re.S)}


def test_guide_gives_the_install_command_the_test_uses():
    assert f"cd hsae-examples && {INSTALL}" in GUIDE
    assert "pip install -e /path/to/hsae" in GUIDE


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(python of a fresh venv holding the installed example package, the package's folder)."""
    root = tmp_path_factory.mktemp("contributing")
    package = root / "hsae-examples"
    for name, text in guide_files().items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "env")], check=True)
    python = root / "env" / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # The fresh venv sees this one's packages (hsae among them), as a user's environment would.
    Path(purelib, "parent_env.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    install = subprocess.run([python, "-m", *INSTALL.split()], cwd=package, capture_output=True, text=True)
    assert install.returncode == 0, install.stdout + install.stderr
    return python, package


def hsae(python: Path, *args: object, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([python, "-m", "hsae", *map(str, args)], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_every_example_component_is_registered(installed):
    python, package = installed
    plugins = {p["name"]: p for p in json.loads(hsae(python, "plugins", "--json", cwd=package).stdout)}
    assert plugins["examples"]["distribution"] == "hsae-examples" and plugins["examples"]["status"] == "loaded"
    assert set(plugins["examples"]["components"]) == {
        "router:sign-topk", "model:gated", "loss:gated-l1", "loss:gated-aux", "loss:firing-rate-l1",
        "metric:firing-histogram", "data:parent-child", "callback:dead-reinit", "pipeline:lr-sweep"}
    listing = hsae(python, "list", "router", cwd=package).stdout
    assert "Keep the k pre-activations of largest magnitude, with their sign." in listing


def test_router_walkthrough_recipe_validates_and_trains(installed):
    python, package = installed
    hsae(python, "validate", "recipes/sign-topk.toml", cwd=package)
    run = package / "runs" / "sign-topk"
    hsae(python, "run", "recipes/sign-topk.toml", "--set", "train.steps=10", "--run-dir", run, cwd=package)
    assert json.loads((run / "cfg.json").read_text())["hsae_model"]["router"] == {"type": "sign-topk", "k": 16}
    assert records(run)[-1]["eval/l0"] <= 16


@pytest.fixture(scope="module")
def gated_run(installed) -> Path:
    python, package = installed
    run = package / "runs" / "gated"
    hsae(python, "run", "recipes/gated.toml", "--set", "train.steps=60", "--run-dir", run, cwd=package)
    return run


def test_gated_model_loss_metric_data_and_callback_train_together(gated_run):
    run = gated_run
    final = records(run)[-1]
    assert {"eval/mse", "eval/firing.median_rate", "eval/firing.dead_fraction", "eval/mcc.mcc"} <= set(final)
    assert (run / "firing.png").read_bytes()[:4] == b"\x89PNG"
    logged = [r for r in records(run) if "loss" in r]
    assert {"loss/sparsity", "loss/aux", "loss/balance"} <= set(logged[-1])
    state = json.loads(max((run / "checkpoints").glob("step_*/state.json")).read_text())
    assert "total" in state["callbacks"]["reinit"]


def test_gated_run_loads_in_hsae_and_saelens_alike(installed, gated_run):
    pytest.importorskip("sae_lens")
    python, run = installed[0], gated_run
    check = f"""
import torch, hsae
from sae_lens import SAE
ours, theirs = hsae.load_sae({str(run)!r}), SAE.load_from_disk({str(run)!r})
x = torch.randn(16, ours.d_in)
assert torch.allclose(ours.encode(x).dense(), theirs.encode(x), atol=1e-5)
assert torch.allclose(ours(x).x_hat, theirs(x), atol=1e-5)
"""
    result = subprocess.run([python, "-c", check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_sweep_pipeline_trains_one_run_per_learning_rate(installed):
    python, package = installed
    run = package / "runs" / "sweep"
    result = hsae(python, "run", "recipes/sweep.toml", "--set", "train.steps=10", "--run-dir", run, cwd=package)
    assert set(json.loads((run / "sweep.json").read_text())) == {"lr-0.001", "lr-0.003"}
    assert (run / "lr-0.003" / "model.safetensors").is_file()
    assert "best: lr-" in result.stderr


def test_the_example_packages_own_tests_pass(installed):
    python, package = installed
    result = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=package,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_gate_losses_on_another_model_fail_validation_at_their_table(installed):
    python, package = installed
    result = subprocess.run([python, "-m", "hsae", "validate", "recipes/gated.toml",
                             "--set", 'model={type="sae", d_sae=64}'], cwd=package, capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "needs a model that provides 'gate_pre'" in result.stderr
