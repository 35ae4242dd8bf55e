"""A plugin that registers a name another plugin holds is refused as a whole; everything else keeps working."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import sys
import textwrap
import types
from pathlib import Path

import pytest
from conftest import TOY_RECIPE, hsae_subprocess, write

from hsae import hookimpl, plugins
from hsae.errors import DuplicateComponentError
from hsae.loss import Loss
from hsae.plugins import PluginManager


class ClashingMSE(Loss):
    """A third party's loss named like the built-in ``mse``."""

    name = "mse"


class ExtraLoss(Loss):
    """A loss only the clashing plugin has."""

    name = "clash-extra"


def plugin_module(name: str, *components: type) -> types.ModuleType:
    module = types.ModuleType(name)

    @hookimpl
    def hsae_register(registry):
        for component in components:
            registry.add(component)

    module.hsae_register = hsae_register
    return module


def manager_with(monkeypatch, **modules: types.ModuleType) -> PluginManager:
    """A manager over the real entry points plus in-memory ones (named so they load before the built-ins)."""
    real = md.entry_points(group="hsae")
    for module in modules.values():
        monkeypatch.setitem(sys.modules, module.__name__, module)
    extra = [md.EntryPoint(name=n, value=m.__name__, group="hsae") for n, m in modules.items()]
    monkeypatch.setattr(md, "entry_points", lambda group: [*extra, *real])
    manager = PluginManager()
    manager.load_entry_points()
    return manager


def test_builtins_win_a_clash_whatever_the_load_order(monkeypatch):
    manager = manager_with(monkeypatch, aa_clash=plugin_module("hsae_test_clash", ExtraLoss, ClashingMSE))
    with pytest.warns(UserWarning, match="hsae plugin 'aa_clash' failed to register: DuplicateComponentError"):
        registry = manager.registry
    assert registry.get("loss", "mse").__module__ == "hsae_standard.losses"
    assert "clash-extra" not in registry.names("loss")  # refused as a whole, not half registered
    info = {i.name: i for i in manager.infos}
    assert info["aa_clash"].status == "failed" and info["aa_clash"].components == []
    assert "by standard (hsae)" in info["aa_clash"].error and "by aa_clash (?)" in info["aa_clash"].error
    assert info["standard"].status == "loaded" and "loss:mse" in info["standard"].components


def test_between_third_parties_the_first_in_name_order_wins(monkeypatch):
    class Other(Loss):
        name = "clash-extra"

    manager = manager_with(monkeypatch, aa_first=plugin_module("hsae_test_first", ExtraLoss),
                           bb_second=plugin_module("hsae_test_second", Other))
    with pytest.warns(UserWarning, match="'bb_second' failed to register"):
        assert manager.registry.get("loss", "clash-extra") is ExtraLoss
    info = {i.name: i for i in manager.infos}
    assert info["aa_first"].status == "loaded" and info["bb_second"].status == "failed"


def test_an_explicit_register_raises_and_registers_nothing():
    manager = PluginManager()
    manager.load_entry_points()
    with pytest.raises(DuplicateComponentError, match="by standard \\(hsae\\)"):
        manager.register(plugin_module("hsae_test_direct", ExtraLoss, ClashingMSE))
    plugin = next(i.plugin for i in manager.infos if i.name == "hsae_test_direct")
    assert "clash-extra" not in manager.registry.names("loss")
    assert manager.registry.get("loss", "mse").__module__ == "hsae_standard.losses"
    manager.unregister(plugin)  # a refused plugin can be forgotten like any other
    assert "hsae_test_direct" not in {i.name for i in manager.infos}


def installed_clashing_distribution(site: Path) -> None:
    """A real distribution on ``site`` (dist-info with an ``hsae`` entry point), as pip would leave it."""
    package = site / "hsae_clash"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent('''
        """A third-party plugin that reuses the built-in loss name 'mse'."""
        from hsae import hookimpl

        @hookimpl
        def hsae_register(registry):
            from hsae.loss import Loss

            class Mse(Loss):
                name = "mse"

            class Extra(Loss):
                name = "clash-extra"

            registry.add(Extra)
            registry.add(Mse)
    '''))
    dist = site / "hsae_clash-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hsae-clash\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[hsae]\naa_clash = hsae_clash\n")


def test_a_clashing_distribution_leaves_every_command_working(tmp_path, toy_data):
    installed_clashing_distribution(tmp_path / "site")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])}

    listing = hsae_subprocess("plugins", "--json", cwd=tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    found = {p["name"]: p for p in json.loads(listing.stdout)}
    assert found["aa_clash"]["status"] == "failed" and found["aa_clash"]["distribution"] == "hsae-clash"
    assert "by standard (hsae)" in found["aa_clash"]["error"] and "by aa_clash (hsae-clash)" in found["aa_clash"]["error"]
    assert found["standard"]["status"] == "loaded"
    assert "failed to register" in listing.stderr

    losses = hsae_subprocess("list", "loss", cwd=tmp_path, env=env)
    assert losses.returncode == 0 and "mse" in losses.stdout and "clash-extra" not in losses.stdout

    recipe = write(tmp_path / "toy.toml", TOY_RECIPE.format(k=4, steps=4, checkpoint_every=0))
    valid = hsae_subprocess("validate", recipe, cwd=tmp_path, env=env)
    assert valid.returncode == 0, valid.stderr
