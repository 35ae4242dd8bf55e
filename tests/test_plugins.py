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
