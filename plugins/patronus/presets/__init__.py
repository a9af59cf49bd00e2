"""Patronus' experiment presets: every ``*.yaml`` beside this file, registered under its stem;
and its published numbers (``../published.yaml``), which the bench report shows beside its own."""

from pathlib import Path

from protodiff import Registries, hookimpl


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.add_presets(Path(__file__).parent)
    registry.published.add("patronus", Path(__file__).parent.parent / "published.yaml")
