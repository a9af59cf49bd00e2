"""The core's experiment presets: every ``*.yaml`` beside this file, registered under its stem."""

from pathlib import Path

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.add_presets(Path(__file__).parent)
