"""Modules that moved, importable under their old names; modules that left the core, refused in one line.

``import protodiff.plugins`` still works (it is the module now at ``protodiff._registry.manager``,
the same object, so there is one plugin manager whatever the name), and a contract that moved to
the plugin that owns it (the Patronus encoder and prototype layer) answers with where it went.
:func:`install` puts the finder on ``sys.meta_path`` behind the ordinary finders, so it is only
asked about names no file answers to.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

#: Old module -> the module that is there now.
MOVED = {
    "protodiff.component": "protodiff._registry.component",
    "protodiff.registry": "protodiff._registry.registry",
    "protodiff.hookspecs": "protodiff._registry.hookspecs",
    "protodiff.plugins": "protodiff._registry.manager",
    "protodiff.builtins": "protodiff._registry.builtins",
    "protodiff.unconditional": "protodiff.nn.unconditional",
    "protodiff.batching": "protodiff.diffusion.batching",
    "protodiff.training.devices": "protodiff.devices",
}
#: Old module -> where its contents went, for modules whose contents moved elsewhere or left the
#: core (the core imports no plugin).
LEFT = {
    "protodiff.explain.inputs": (
        "protodiff.explain.context: ExplainContext.open(...).inputs(wanted), or the one call protodiff.explain(...)"
    ),
    "protodiff.contracts.encoder": "the Patronus plugin: from protodiff_patronus.contracts import Encoder, Box",
    "protodiff.contracts.prototype_layer": (
        "the Patronus plugin: from protodiff_patronus.contracts import PrototypeLayer, require_prototypes"
    ),
}


class _Alias(importlib.abc.Loader):
    """Loads an old name as the module now at ``target`` (the same module object)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self.spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self.spec  # the import system set the old name's spec; the module keeps its own


class MovedModules(importlib.abc.MetaPathFinder):
    """Answers for the names in :data:`MOVED` and :data:`LEFT`."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in LEFT:
            raise ModuleNotFoundError(f"{fullname} has moved to {LEFT[fullname]}", name=fullname)
        if fullname in MOVED:
            return importlib.machinery.ModuleSpec(fullname, _Alias(MOVED[fullname]))
        return None


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())
