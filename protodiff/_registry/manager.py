"""Plugin discovery: the built-ins first, then every ``protodiff`` entry point, each in isolation.

The core's own components are the plugin ``core`` (the modules :mod:`protodiff._registry.builtins` lists),
loaded exactly as an installed plugin is. A plugin is a module with ``@hookimpl`` functions; one
that spans several modules lists them in a module-level ``protodiff_plugins`` sequence (as pytest's
``pytest_plugins``), so each module registers the components it defines.

Entry points are loaded one by one (rather than with pluggy's all-or-nothing
``load_setuptools_entrypoints``) so that a plugin which fails to import, fails pluggy's signature
validation or raises while registering is reported with its name, distribution and a one-line
reason, and the remaining plugins still load.

Environment:
    ``PROTODIFF_DISABLE_PLUGIN_AUTOLOAD=1`` skips entry points (only the core's built-ins load).
    ``PROTODIFF_PLUGINS=mod_a,mod_b`` loads these modules as plugins in any case.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import os
from dataclasses import dataclass, field
from typing import Any

import pluggy

from protodiff._registry import hookspecs
from protodiff._registry.registry import Registries, registering_as

ENTRY_POINT_GROUP = "protodiff"
CORE_PLUGIN = "core"
#: The module whose ``protodiff_plugins`` lists the core's built-in plugin modules.
BUILTINS_MODULE = "protodiff._registry.builtins"
#: A plugin module's attribute listing further modules that belong to the same plugin.
SUBMODULES_ATTRIBUTE = "protodiff_plugins"


@dataclass
class PluginInfo:
    """One plugin as `protodiff plugins` reports it."""

    name: str
    #: The distribution that installed it ("not installed: FILE" for a module PROTODIFF_PLUGINS
    #: names that no distribution installed).
    distribution: str
    version: str
    source: str  # "built-in", "entry point <value>" or "PROTODIFF_PLUGINS"
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text}"


class PluginManager:
    """Owns the pluggy manager and the registries it fills."""

    def __init__(self, autoload: bool | None = None) -> None:
        if autoload is None:
            autoload = os.environ.get("PROTODIFF_DISABLE_PLUGIN_AUTOLOAD", "") in ("", "0")
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.registries = Registries()
        self.plugins: list[PluginInfo] = []
        #: Plugin name -> its modules registered with pluggy.
        self._modules: dict[str, list[Any]] = {}

        core = PluginInfo(CORE_PLUGIN, "protodiff", _version("protodiff"), "built-in")
        found = [(CORE_PLUGIN, importlib.import_module(BUILTINS_MODULE), core)]
        if autoload:
            found += self._entry_points()
        for module_name in filter(None, os.environ.get("PROTODIFF_PLUGINS", "").split(",")):
            found += self._module_by_name(module_name.strip())
        self.load_all(found)

    def _entry_points(self) -> list[tuple[str, Any, PluginInfo]]:
        found: list[tuple[str, Any, PluginInfo]] = []
        seen: set[tuple[str, str]] = set()
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist_name = ep.dist.name if ep.dist else "?"
            if (ep.name, dist_name) in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add((ep.name, dist_name))
            info = PluginInfo(ep.name, dist_name, ep.dist.version if ep.dist else "?", f"entry point {ep.value}")
            if ep.name == CORE_PLUGIN or any(name == ep.name for name, _, _ in found):
                info.error = f"a plugin named {ep.name!r} is already loaded; rename the entry point"
                self.plugins.append(info)
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party plugin must not take the others down
                info.error = _one_line(exc)
                self.plugins.append(info)
                continue
            found.append((ep.name, plugin, info))
        return found

    def _module_by_name(self, module_name: str) -> list[tuple[str, Any, PluginInfo]]:
        """A module named in PROTODIFF_PLUGINS, with the distribution that installed it if one did
        (else its file: a module tried out from a folder on the path)."""
        info = PluginInfo(module_name, "", "", "PROTODIFF_PLUGINS")
        try:
            plugin = importlib.import_module(module_name)
        except Exception as exc:
            info.error = _one_line(exc)
            self.plugins.append(info)
            return []
        distributions = metadata.packages_distributions().get(module_name.partition(".")[0], [])
        if distributions:
            info.distribution, info.version = distributions[0], _version(distributions[0])
        else:
            info.distribution = f"not installed: {getattr(plugin, '__file__', None) or module_name}"
        return [(module_name, plugin, info)]

    def load_all(self, plugins: list[tuple[str, Any, PluginInfo]]) -> None:
        """Load ``plugins`` (name, module, info) in two rounds: each one's modules and the kinds it
        adds, then each one's components, so a plugin may register into a kind another adds.
        A plugin that fails in either round is rolled back and recorded in its info."""
        ready = [(name, info) for name, plugin, info in plugins if self._add_kinds(name, plugin, info)]
        for name, info in ready:
            self._register(name, info)
        for name, info in ready:
            if info.ok:
                info.registered = self.registries.registered_by(name)

    def load(self, name: str, plugin: Any, info: PluginInfo) -> PluginInfo:
        """Load one more plugin (both rounds) after the others; returns its info."""
        self.load_all([(name, plugin, info)])
        return info

    def _add_kinds(self, name: str, plugin: Any, info: PluginInfo) -> bool:
        """Register ``plugin`` (and the modules it lists in ``protodiff_plugins``) with pluggy and
        run their ``protodiff_add_kinds`` hooks; False (recorded in ``info``) if anything failed."""
        self.plugins.append(info)
        if self.pm.is_registered(plugin):
            info.error = "already loaded under another name"
            return False
        modules: list[Any] = []
        try:
            with registering_as(name):
                for module_name, module in self._modules_of(name, plugin):
                    self.pm.register(module, name=module_name)  # pluggy validates the hook signatures
                    modules.append(module)
                self._call("protodiff_add_kinds", modules)
        except Exception as exc:  # a broken plugin must not take the others down
            self._roll_back(name, modules, info, exc)
            return False
        self._modules[name] = modules
        return True

    def _register(self, name: str, info: PluginInfo) -> None:
        """Run the ``protodiff_register`` hooks of plugin ``name``'s modules; roll it back on failure."""
        modules = self._modules[name]
        try:
            with registering_as(name):
                self._call("protodiff_register", modules)
        except Exception as exc:  # a broken plugin must not take the others down
            self._roll_back(name, modules, info, exc)

    def _call(self, hook: str, modules: list[Any]) -> None:
        for module in modules:
            for impl in getattr(self.pm.hook, hook).get_hookimpls():
                if impl.plugin is module:
                    impl.function(registry=self.registries)

    def _roll_back(self, name: str, modules: list[Any], info: PluginInfo, exc: BaseException) -> None:
        self.registries.remove_plugin(name)
        for module in modules:
            self.pm.unregister(module)
        info.error = _one_line(exc)

    @staticmethod
    def _modules_of(name: str, plugin: Any) -> list[tuple[str, Any]]:
        """``plugin`` itself, then each module its ``protodiff_plugins`` names, imported."""
        listed = getattr(plugin, SUBMODULES_ATTRIBUTE, ())
        if isinstance(listed, str):
            raise TypeError(f"{SUBMODULES_ATTRIBUTE} must be a sequence of module names, not a string")
        return [(name, plugin)] + [(module, importlib.import_module(module)) for module in listed]

    @property
    def broken(self) -> list[PluginInfo]:
        return [p for p in self.plugins if not p.ok]


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


_MANAGER: PluginManager | None = None


def plugin_manager() -> PluginManager:
    """The process-wide plugin manager, built on first use (so ``import protodiff`` stays cheap)."""
    global _MANAGER
    if _MANAGER is None:
        _MANAGER = PluginManager()
    return _MANAGER


def reset_plugin_manager() -> None:
    """Forget the loaded plugins; the next :func:`plugin_manager` call rediscovers them (for tests)."""
    global _MANAGER
    _MANAGER = None


def registries() -> Registries:
    """The process-wide registries, filled by the built-ins and every installed plugin on first use.

    ``registries().metric.names()`` lists the metrics; ``registries().sampler.get("ddim")`` is a
    class; an unknown name raises with the closest registered ones.
    """
    return plugin_manager().registries
