"""The base of everything a registry holds: a typed ``Config`` and optional named presets.

It imports nothing of protodiff, so that the contracts (which subclass it), the registries (which
check against the contracts) and the config parser (which builds components from the registries)
all depend on it without depending on each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar


class Component:
    """A registered component: its options are a ``Config`` dataclass, its named defaults ``presets``.

    Subclasses define ``Config`` as a dataclass of their options (its defaults are the documented
    defaults; ``__post_init__`` raises ``ValueError`` on a bad value) and may define ``presets``:
    name -> mapping of option values applied before the user's own keys. A preset called ``test``
    is what the conformance checks build. Components are constructed as ``cls(config, **context)``,
    the context being fixed by the extension point's contract (e.g. ``in_channels`` and
    ``image_size`` for encoders).
    """

    @dataclass
    class Config:
        pass

    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
