"""The plugin example in CONTRIBUTING.md, built by setuptools, installed by pip, tested, and run
through ``protodiff bench`` on a tiny budget."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from protodiff._registry.manager import registries, reset_plugin_manager
from protodiff.cli import main

GUIDE = Path(__file__).parent.parent / "CONTRIBUTING.md"


def example_files() -> dict[str, str]:
    """Fenced blocks of the guide whose info string names a file: ```python file=path/name.py"""
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
    assert set(files) == {
        "protodiff_quadrants/__init__.py",
        "protodiff_quadrants/presets/quadrants-shapes.yaml",
        "pyproject.toml",
        "test_quadrants.py",
    }
    project = tmp_path_factory.mktemp("protodiff-quadrants")
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
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
    for name in [m for m in sys.modules if m.startswith("protodiff_quadrants")]:
        sys.modules.pop(name)
    reset_plugin_manager()


@pytest.mark.slow
def test_the_guide_plugin_installs_registers_and_passes_its_own_tests(installed_example, site):
    installed = sorted(p.name for p in installed_example.iterdir())
    assert "protodiff_quadrants" in installed and "test_quadrants.py" not in installed
    assert (installed_example / "protodiff_quadrants" / "presets" / "quadrants-shapes.yaml").is_file()  # package data
    assert any(name.endswith(".dist-info") for name in installed)
    assert registries().conditioner.entry("quadrants").plugin == "quadrants"
    assert registries().preset.entry("quadrants-shapes").plugin == "quadrants"
    assert importlib.import_module("protodiff_quadrants").__file__.startswith(str(installed_example))
    spec = importlib.util.spec_from_file_location("test_quadrants", site[1] / "test_quadrants.py")
    example_tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example_tests)
    for name in dir(example_tests):
        if name.startswith("test_"):
            getattr(example_tests, name)()


TINY = ["data.image_size=16", "data.num_train=48", "data.num_test=16", "model.denoiser.base_channels=16",
        "model.denoiser.channel_mult=[1,2]", "train.steps=4", "train.batch_size=8", "train.warmup_steps=0",
        "train.log_every=2", "train.checkpoint_every=2", "sample.sampler.steps=2", "sample.num_images=4"]  # fmt: skip


@pytest.mark.slow
def test_the_guide_plugin_is_a_bench_cell(installed_example, tmp_path):
    """Installed, the plugin's experiment preset quadrants-shapes is the bench's cell quadrants x shapes."""
    bench = tmp_path / "tiny.yaml"
    bench.write_text(yaml.safe_dump({
        "datasets": ["shapes"], "methods": ["quadrants"], "set": TINY, "metrics": ["tad"],
        "metric_options": {"tad": {"num_latents": 40}}, "explainers": {"edit": {"sampler": {"name": "ddim", "steps": 2}, "to": ["red_ne=1.0"]}},
        "judge": {"steps": 2, "batch_size": 8}, "explain_images": 2, "grid_images": 2,
    }))  # fmt: skip
    out = tmp_path / "bench"
    result = CliRunner().invoke(main, ["bench", "--preset", str(bench), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "cells" / "quadrants-shapes" / "cell.json").read_text())
    assert (record["method"], record["dataset"], record["preset"]) == ("quadrants", "shapes", "quadrants-shapes")
    assert "TAD" in record["results"] and record["explainers"]["edit"]["figures"]
