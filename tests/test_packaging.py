"""The distribution ships every package, and the built-in plugin loads through its entry point."""

from __future__ import annotations

import tomllib
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_is_listed_for_setuptools():
    listed = set(PROJECT["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "protodiff").rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    mapped = PROJECT["tool"]["setuptools"]["package-dir"]
    for package, folder in mapped.items():
        assert package in listed and (ROOT / folder / "__init__.py").is_file()


def test_builtin_plugins_are_entry_points():
    declared = PROJECT["project"]["entry-points"]["protodiff"]
    installed = {ep.name: ep.value for ep in entry_points(group="protodiff")}
    for name, value in declared.items():
        assert installed.get(name) == value, f"reinstall (pip install -e .) to pick up entry point {name}"
