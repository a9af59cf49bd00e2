"""Hook specifications: what a protodiff plugin may implement.

A plugin is any importable module (or object) with functions marked ``@hookimpl``, advertised to
protodiff through an entry point in the ``protodiff`` group of its distribution's metadata::

    [project.entry-points.protodiff]
    myplugin = "my_package.plugin"

A plugin spread over several modules lists them in a module-level ``protodiff_plugins`` tuple of
module names; each is loaded as part of the same plugin, so every module registers the components
it defines. The core's built-ins are loaded this way too (:mod:`protodiff._registry.builtins`).
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
def protodiff_register(registry: Registries) -> None:
    """Add this plugin's components to the registries, e.g.
    ``registry.conditioner.add("patronus", PatronusConditioner)``.

    Called once per plugin when the registries are first used. An exception here marks the plugin
    as broken: everything it registered is rolled back and the other plugins keep working.
    """
