"""The plugin infrastructure, out of the way of the library (timm's ``_registry``/``_factory``).

``component``   :class:`Component`, the base of every registered class: a typed ``Config`` and presets
``registry``    :class:`Registry` and :class:`Registries`: the kinds, their contracts, did-you-mean errors
``hookspecs``   the hooks a plugin implements: ``protodiff_add_kinds`` and ``protodiff_register``
``manager``     the plugin manager: built-ins first, then entry points, each in isolation; ``registries()``
``builtins``    the core's own plugin: its kinds and the modules that register its components
``moved``       modules that moved, still importable under their old names

A plugin needs none of these directly: ``from protodiff import hookimpl, Registries`` is its API.
"""
