"""The distribution ships every package, and each built-in plugin loads through its entry point."""

from __future__ import annotations

import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_is_listed_for_setuptools():
    listed = set(PROJECT["tool"]["setuptools"]["packages"])
    roots = {"protodiff": ROOT / "protodiff", **{p: ROOT / f for p, f in PROJECT["tool"]["setuptools"]["package-dir"].items()}}
    found = {
        ".".join((package, *init.parent.relative_to(folder).parts))
        for package, folder in roots.items()
        for init in folder.rglob("__init__.py")
    }
    assert found == listed, f"[tool.setuptools] packages: add {sorted(found - listed)}, drop {sorted(listed - found)}"


def test_python_support_is_stated_as_tested():
    floor = PROJECT["project"]["requires-python"]
    assert floor == ">=3.11", "the tests read TOML with tomllib (3.11+); say so, or add a tomli fallback"
    assert sys.version_info >= (3, 11)


def test_builtin_plugins_are_entry_points():
    declared = PROJECT["project"]["entry-points"]["protodiff"]
    installed = {ep.name: ep.value for ep in entry_points(group="protodiff")}
    for name, value in declared.items():
        assert installed.get(name) == value, f"reinstall (pip install -e .) to pick up entry point {name}"


def test_every_plugin_folder_is_a_package_with_an_entry_point_and_its_presets():
    """plugins/<name> is mapped to its package, advertised in the protodiff group, and ships its YAML presets."""
    folders = {path.name for path in (ROOT / "plugins").iterdir() if (path / "__init__.py").is_file()}
    mapped = {Path(folder).name: package for package, folder in PROJECT["tool"]["setuptools"]["package-dir"].items()}
    assert folders == set(mapped), "map every plugins/<name> folder in [tool.setuptools.package-dir]"
    assert set(PROJECT["project"]["entry-points"]["protodiff"].values()) == set(mapped.values())
    package_data = PROJECT["tool"]["setuptools"]["package-data"]
    for folder, package in mapped.items():
        if (ROOT / "plugins" / folder / "presets").is_dir():
            assert package_data.get(f"{package}.presets") == ["*.yaml"], f"ship {package}'s presets as package data"


def test_the_dev_extra_holds_what_the_suite_imports():
    """CI installs `.[dev]` and runs the README's test command: the parity tests' reference
    (diffusers) and the property tests' engine (hypothesis) must come with it, or CI skips them."""
    dev = " ".join(PROJECT["project"]["optional-dependencies"]["dev"])
    for package in ("pytest", "hypothesis", "diffusers"):
        assert package in dev, f"add {package} to the dev extra"
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e '.[dev]'" in ci and ".venv/bin/python -m pytest -q" in ci
    assert ".venv/bin/python -m pytest -q" in readme.split("## ")[0], "README's first screen names CI's test command"
