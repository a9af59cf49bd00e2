"""Plugin discovery through real entry points: a throw-away distribution on sys.path."""

from __future__ import annotations

import importlib
import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from protodiff._registry.manager import PluginManager, reset_plugin_manager
from protodiff.cli import main

GOOD_PLUGIN = """
from protodiff._registry.hookspecs import hookimpl
from protodiff.nn.unconditional import Unconditional

class Constant(Unconditional):
    pass

@hookimpl
def protodiff_register(registry):
    registry.conditioner.add("constant", Constant)
"""

HALF_BROKEN_PLUGIN = """
from protodiff.diffusion.samplers import DDIMSampler
from protodiff._registry.hookspecs import hookimpl
from protodiff.nn.unconditional import Unconditional

class Partial(Unconditional):
    pass

@hookimpl
def protodiff_register(registry):
    registry.conditioner.add("partial", Partial)
    registry.sampler.add("ddim", DDIMSampler)  # taken by the core: must fail and roll back "partial"
"""


def make_distribution(root: Path, dist: str, version: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
    """A minimal installed distribution: modules plus a .dist-info with METADATA and entry_points.txt."""
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[protodiff]\n{lines}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("PROTODIFF_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    importlib.invalidate_caches()
    reset_plugin_manager()
    yield tmp_path
    reset_plugin_manager()


def test_third_party_plugin_components_appear(site):
    make_distribution(site, "good-plugin", "1.2.3", {"good_plugin": GOOD_PLUGIN}, {"good": "good_plugin"})
    manager = PluginManager()
    assert "constant" in manager.registries.conditioner
    info = next(p for p in manager.plugins if p.name == "good")
    assert (info.distribution, info.version, info.ok) == ("good-plugin", "1.2.3", True)
    assert info.registered == {"conditioner": ["constant"]}


def test_broken_plugins_are_reported_and_the_rest_keep_working(site):
    make_distribution(site, "good-plugin", "1.0", {"good_plugin": GOOD_PLUGIN}, {"good": "good_plugin"})
    make_distribution(site, "broken-plugin", "0.1", {"broken_plugin": "import not_a_module_xyz\n"}, {"broken": "broken_plugin"})
    make_distribution(site, "half-plugin", "0.2", {"half_plugin": HALF_BROKEN_PLUGIN}, {"half": "half_plugin"})
    manager = PluginManager()
    broken = {p.name: p for p in manager.broken}
    assert broken["broken"].distribution == "broken-plugin"
    assert broken["broken"].error == "ModuleNotFoundError: No module named 'not_a_module_xyz'"
    assert "already registered by plugin 'core'" in broken["half"].error
    assert "partial" not in manager.registries.conditioner  # rolled back
    assert "constant" in manager.registries.conditioner
    assert manager.registries.sampler.get("ddim").__name__ == "DDIMSampler"


def test_autoload_can_be_disabled_and_modules_loaded_explicitly(site, monkeypatch):
    make_distribution(site, "good-plugin", "1.0", {"good_plugin": GOOD_PLUGIN}, {"good": "good_plugin"})
    monkeypatch.setenv("PROTODIFF_DISABLE_PLUGIN_AUTOLOAD", "1")
    manager = PluginManager()
    assert "constant" not in manager.registries.conditioner
    assert "unet" in manager.registries.denoiser  # the core's built-ins always load
    monkeypatch.setenv("PROTODIFF_PLUGINS", "good_plugin")
    assert "constant" in PluginManager().registries.conditioner


def test_plugins_command_lists_versions_registrations_and_failures(site):
    make_distribution(site, "good-plugin", "1.2.3", {"good_plugin": GOOD_PLUGIN}, {"good": "good_plugin"})
    make_distribution(
        site, "broken-plugin", "0.1", {"broken_plugin": "raise RuntimeError('boom')\n"}, {"broken": "broken_plugin"}
    )
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0, result.output
    assert "good  (good-plugin 1.2.3, entry point good_plugin)  ok" in result.output
    assert "conditioner: constant" in result.output
    assert "broken  (broken-plugin 0.1, entry point broken_plugin)  BROKEN" in result.output
    assert "error: RuntimeError: boom" in result.output
    reset_plugin_manager()
    listed = json.loads(CliRunner().invoke(main, ["plugins", "--json"]).output)
    assert {p["name"] for p in listed} >= {"core", "good", "broken"}
