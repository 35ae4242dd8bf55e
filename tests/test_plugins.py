"""Plugin loading: entry points, failures, disabling, duplicates, unknown names, listings."""

from __future__ import annotations

import importlib.metadata as md
import json
import types

import attrs
import pytest

from hsae import hookimpl, plugins
from hsae.errors import DuplicateComponentError, UnknownComponentError
from hsae.model import Router
from hsae.plugins import PluginManager


class EchoRouter(Router):
    """A test router."""

    name = "echo"

    @attrs.frozen
    class Config:
        pass


def make_plugin(*components):
    module = types.ModuleType("test_plugin")

    @hookimpl
    def hsae_register(registry):
        for c in components:
            registry.add(c)

    module.hsae_register = hsae_register
    return module


def test_builtin_plugins_load_through_entry_points():
    manager = PluginManager()
    manager.load_entry_points()
    names = {i.name: i for i in manager.infos}
    assert names["standard"].status == "loaded" and names["standard"].distribution == "hsae"
    assert "router:topk" in names["standard"].components
    assert manager.registry.get("router", "topk").__name__ == "TopKRouter"


def test_broken_plugin_is_listed_and_others_still_load(monkeypatch):
    real = md.entry_points(group="hsae")
    broken = md.EntryPoint(name="broken", value="hsae_no_such_module_xyz", group="hsae")
    monkeypatch.setattr(md, "entry_points", lambda group: [*real, broken])
    manager = PluginManager()
    with pytest.warns(UserWarning, match="hsae plugin 'broken'.*failed to load"):
        manager.load_entry_points()
    info = {i.name: i for i in manager.infos}
    assert info["broken"].status == "failed" and "ModuleNotFoundError" in info["broken"].error
    assert info["standard"].status == "loaded"
    assert "topk" in manager.registry.names("router")


def test_disable_plugins_env(monkeypatch):
    monkeypatch.setenv("HSAE_DISABLE_PLUGINS", "tensorfile, synthetic")
    manager = PluginManager()
    manager.load_entry_points()
    info = {i.name: i for i in manager.infos}
    assert info["tensorfile"].status == "disabled"
    assert "tensor-file" not in manager.registry.names("data")
    assert "topk" in manager.registry.names("router")


def test_duplicate_name_names_both_providers():
    manager = PluginManager()
    manager.load_entry_points()

    class OtherTopK(EchoRouter):
        name = "topk"

    with pytest.raises(DuplicateComponentError) as info:
        manager.register(make_plugin(OtherTopK))
    message = str(info.value)
    assert "standard (hsae)" in message and "test_plugin" in message and "OtherTopK" in message


def test_unknown_name_lists_available_and_closest():
    manager = PluginManager()
    manager.load_entry_points()
    with pytest.raises(UnknownComponentError) as info:
        manager.registry.get("router", "btachtopk")
    assert "did you mean 'batchtopk'?" in str(info.value) and "topk" in str(info.value)


def test_register_and_unregister_in_a_test():
    manager = PluginManager()
    manager.load_entry_points()
    plugin = make_plugin(EchoRouter)
    manager.register(plugin)
    assert manager.registry.get("router", "echo") is EchoRouter
    manager.unregister(plugin)
    assert "echo" not in manager.registry.names("router")


def test_misspelled_hook_is_caught():
    manager = PluginManager()
    module = types.ModuleType("typo_plugin")

    @hookimpl
    def hsae_registr(registry):  # noqa: ANN001 - deliberately misspelled
        pass

    module.hsae_registr = hsae_registr
    manager.pm.register(module)
    with pytest.raises(Exception, match="hsae_registr"):
        manager.pm.check_pending()


def test_cli_plugins_and_list(cli):
    code, out, _ = cli("plugins", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and rows["standard"]["version"] and "loss:auxk" in rows["standard"]["components"]
    code, out, _ = cli("list", "router", "--json")
    routers = {r["name"]: r["summary"] for r in json.loads(out)}
    assert set(routers) >= {"relu", "topk", "batchtopk", "jumprelu"}
    assert routers["topk"].startswith("Keep the")
    code, _, err = cli("list", "routers")
    assert code == 2 and "unknown kind 'routers'" in err


def test_global_manager_is_cached():
    assert plugins.get_manager() is plugins.get_manager()


# -- lazy registration: loading plugins is cheap, hsae_register runs when the registry is needed --

LAZY = """
import sys
from hsae.plugins import PluginManager
manager = PluginManager()
manager.load_entry_points()
print("torch" in sys.modules, "hsae_standard.topk" in sys.modules)
manager.pm.hook.hsae_add_commands  # the hooks are known without registering components
print("topk" in manager.registry.names("router"), "torch" in sys.modules)
"""


def test_loading_entry_points_registers_nothing_until_the_registry_is_needed():
    import subprocess
    import sys

    from conftest import REPO

    done = subprocess.run([sys.executable, "-c", LAZY], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "True", "True"]


def plugin_module(name: str, **hooks):
    """A module in sys.modules with the given hook implementations, loadable as an entry point."""
    module = types.ModuleType(name)
    module.__doc__ = f"The {name} test plugin."
    for hook, fn in hooks.items():
        setattr(module, hook, hookimpl(fn))
    return module


@pytest.fixture
def extra_entry_points(monkeypatch):
    """Add entry points backed by in-memory modules; the global manager is reset around the test."""
    import sys

    real = md.entry_points(group="hsae")

    def add(**modules):
        for name, module in modules.items():
            monkeypatch.setitem(sys.modules, module.__name__, module)
        extra = [md.EntryPoint(name=n, value=m.__name__, group="hsae") for n, m in modules.items()]
        monkeypatch.setattr(md, "entry_points", lambda group: [*real, *extra])
        plugins.reset()

    yield add
    plugins.reset()


def test_failing_register_is_isolated_when_registration_happens(extra_entry_points):
    def hsae_register(registry):
        raise RuntimeError("boom")

    extra_entry_points(badreg=plugin_module("hsae_test_badreg", hsae_register=hsae_register))
    manager = PluginManager()
    manager.load_entry_points()  # no warning yet: registration is lazy
    with pytest.warns(UserWarning, match="hsae plugin 'badreg' failed to register: RuntimeError: boom"):
        info = {i.name: i for i in manager.infos}
    assert info["badreg"].status == "failed" and info["badreg"].error == "RuntimeError: boom"
    assert info["standard"].status == "loaded" and "topk" in manager.registry.names("router")


def test_cli_plugins_lists_a_plugin_whose_register_failed(extra_entry_points, cli):
    def hsae_register(registry):
        raise RuntimeError("boom")

    extra_entry_points(badreg=plugin_module("hsae_test_badreg", hsae_register=hsae_register))
    with pytest.warns(UserWarning, match="failed to register"):
        code, out, _ = cli("plugins")
    assert code == 0
    assert "badreg  (? ?)  [failed]\n    The hsae_test_badreg test plugin.\n    error: RuntimeError: boom\n" in out


def test_failing_add_commands_is_isolated(extra_entry_points, cli):
    def hsae_add_commands(subparsers):
        raise RuntimeError("no commands today")

    extra_entry_points(badcmd=plugin_module("hsae_test_badcmd", hsae_add_commands=hsae_add_commands))
    with pytest.warns(UserWarning, match="hsae plugin 'badcmd' failed to add commands: RuntimeError: no commands"):
        code, out, _ = cli("list", "router")
    assert code == 0 and "topk" in out


def test_duplicate_between_entry_points_refuses_the_later_plugin(extra_entry_points, cli):
    class OtherTopK(EchoRouter):
        name = "topk"

    def hsae_register(registry):
        registry.add(OtherTopK)

    extra_entry_points(zz_dup=plugin_module("hsae_test_dup", hsae_register=hsae_register))
    with pytest.warns(UserWarning, match="hsae plugin 'zz_dup' failed to register: DuplicateComponentError"):
        code, out, _ = cli("list", "router")
    assert code == 0 and "topk" in out
    assert plugins.get_registry().get("router", "topk").__name__ == "TopKRouter"  # the built-in wins
    info = {i.name: i for i in plugins.get_manager().infos}
    assert info["zz_dup"].status == "failed"
    assert "router 'topk' is registered twice: by standard (hsae)" in info["zz_dup"].error and "OtherTopK" in info["zz_dup"].error


def test_disabled_plugin_adds_no_commands(monkeypatch):
    import argparse

    monkeypatch.setenv("HSAE_DISABLE_PLUGINS", "synthetic")
    manager = PluginManager()
    manager.load_entry_points()
    sub = argparse.ArgumentParser().add_subparsers()
    manager.add_commands(sub)
    assert "generate" not in sub.choices and "data" in sub.choices
