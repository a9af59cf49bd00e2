"""Patronus' experiment presets: every ``*.yaml`` beside this file, registered under its stem."""

from pathlib import Path

from protodiff import hookimpl
from protodiff import Registries


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.add_presets(Path(__file__).parent)
