"""Hook specifications: what a protodiff plugin may implement.

A plugin is any importable module (or object) with functions marked ``@hookimpl``, advertised to
protodiff through an entry point in the ``protodiff`` group of its distribution's metadata::

    [project.entry-points.protodiff]
    myplugin = "my_package.plugin"

A plugin spread over several modules lists them in a module-level ``protodiff_plugins`` tuple of
module names; each is loaded as part of the same plugin, so every module registers the components
it defines. The core's built-ins are loaded this way too (:mod:`protodiff._registry.builtins`).

Two hooks, called in two rounds: every plugin's ``protodiff_add_kinds`` first, then every plugin's
``protodiff_register``, so a plugin may register components into a kind another plugin adds,
whatever the order the plugins load in. Plugins import ``hookimpl`` from the front door:
``from protodiff import hookimpl``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from protodiff._registry.registry import Registries

PROJECT_NAME = "protodiff"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def protodiff_add_kinds(registry: Registries) -> None:
    """Add the kinds of component this plugin brings, e.g.
    ``registry.add_kind("prototype_layer", PrototypeLayer, check=check_prototype_layer)``: a
    registry whose entries must subclass the contract, and the conformance check
    ``protodiff.testing.check_component`` runs on each (as pytest plugins add hook specifications
    with ``pytest_addhooks``: the core need not foresee a method's extension points).

    Called once per plugin, for every plugin before any ``protodiff_register``. An exception here
    marks the plugin as broken, and what it added is rolled back.
    """


@hookspec
def protodiff_register(registry: Registries) -> None:
    """Add this plugin's components to the registries, e.g.
    ``registry.conditioner.add("patronus", PatronusConditioner)``.

    Called once per plugin when the registries are first used. An exception here marks the plugin
    as broken: everything it registered is rolled back and the other plugins keep working.
    """
