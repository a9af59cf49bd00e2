"""The plugin example in CONTRIBUTING.md, installed as a real distribution and run."""

from __future__ import annotations

import importlib
import re
import sys
import tomllib
from pathlib import Path

import pytest

from protodiff.plugins import reset_plugin_manager
from protodiff.plugins import registries

GUIDE = Path(__file__).parent.parent / "CONTRIBUTING.md"


def example_files() -> dict[str, str]:
    """Fenced blocks of the guide whose info string names a file: ```python file=name.py"""
    blocks = re.findall(r"```\w+ file=(\S+)\n(.*?)```", GUIDE.read_text(), flags=re.S)
    return dict(blocks)


@pytest.fixture
def installed_example(tmp_path, monkeypatch):
    files = example_files()
    assert {"protodiff_quadratic.py", "pyproject.toml", "test_quadratic.py"} <= set(files)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    project = tomllib.loads(files["pyproject.toml"])["project"]
    info = tmp_path / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    entry_points = project["entry-points"]["protodiff"]
    (info / "entry_points.txt").write_text("[protodiff]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("PROTODIFF_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    importlib.invalidate_caches()
    reset_plugin_manager()
    yield
    for module in ("protodiff_quadratic", "test_quadratic"):
        sys.modules.pop(module, None)
    reset_plugin_manager()


def test_the_guide_plugin_registers_and_passes_its_own_tests(installed_example):
    assert "ddim-quadratic" in registries().sampler
    example_tests = importlib.import_module("test_quadratic")
    for name in dir(example_tests):
        if name.startswith("test_"):
            getattr(example_tests, name)()
