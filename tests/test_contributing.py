"""The plugin example in CONTRIBUTING.md, built by setuptools, installed by pip, and run."""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from protodiff._registry.manager import registries, reset_plugin_manager

GUIDE = Path(__file__).parent.parent / "CONTRIBUTING.md"


def example_files() -> dict[str, str]:
    """Fenced blocks of the guide whose info string names a file: ```python file=name.py"""
    blocks = re.findall(r"```\w+ file=(\S+)\n(.*?)```", GUIDE.read_text(), flags=re.S)
    return dict(blocks)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The example project, pip-installed into a directory of its own.

    ``--no-build-isolation`` builds with this environment's setuptools (no index needed) and
    ``--target`` keeps the install out of the environment; what setuptools accepts and what it
    installs are exactly what ``pip install -e .`` in the example's directory would get.
    """
    files = example_files()
    assert {"protodiff_quadratic.py", "pyproject.toml", "test_quadratic.py"} <= set(files)
    project = tmp_path_factory.mktemp("protodiff-quadratic")
    for name, text in files.items():
        (project / name).write_text(text)
    target = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
               "--no-index", "--target", str(target), str(project)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return target, project


@pytest.fixture
def installed_example(site, monkeypatch):
    target, _ = site
    monkeypatch.syspath_prepend(str(target))
    monkeypatch.delenv("PROTODIFF_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    importlib.invalidate_caches()
    reset_plugin_manager()
    yield target
    sys.modules.pop("protodiff_quadratic", None)
    reset_plugin_manager()


@pytest.mark.slow
def test_the_guide_plugin_installs_registers_and_passes_its_own_tests(installed_example, site):
    installed = sorted(p.name for p in installed_example.iterdir())
    assert "protodiff_quadratic.py" in installed and "test_quadratic.py" not in installed
    assert any(name.endswith(".dist-info") for name in installed)
    assert "ddim-quadratic" in registries().sampler
    assert registries().sampler.entry("ddim-quadratic").plugin == "quadratic"
    assert importlib.import_module("protodiff_quadratic").__file__.startswith(str(installed_example))
    spec = importlib.util.spec_from_file_location("test_quadratic", site[1] / "test_quadratic.py")
    example_tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example_tests)
    for name in dir(example_tests):
        if name.startswith("test_"):
            getattr(example_tests, name)()
