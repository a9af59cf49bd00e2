"""benchmarks/ is a package whose scripts run: each imports its siblings as ``benchmarks.NAME``,
answers ``--help`` in-process (fast), and runs end to end on a tiny budget, as ``python -m
benchmarks.NAME`` and as ``python benchmarks/NAME.py`` (slow: fresh processes, a trained run)."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TINY_OVERRIDES

from protodiff.cli import main as cli

ROOT = Path(__file__).parent.parent
SCRIPTS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if "def main(" in p.read_text())
SIBLINGS = {p.stem for p in (ROOT / "benchmarks").glob("*.py")} - {"__init__"}


def test_every_script_is_found():
    assert set(SCRIPTS) == SIBLINGS - {"harness", "models"}


@pytest.mark.parametrize("name", sorted(SIBLINGS))
def test_siblings_are_imported_through_the_package(name):
    """No bare ``from harness import ...``: a script imports ``benchmarks.harness``."""
    tree = ast.parse((ROOT / "benchmarks" / f"{name}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.module.split(".")[0] not in SIBLINGS, (
                f"{name}: from {node.module} import ...; use benchmarks.{node.module}"
            )
        if isinstance(node, ast.Import):
            assert not {alias.name for alias in node.names} & SIBLINGS, f"{name}: import a sibling as benchmarks.NAME"


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_answers_help_as_a_package_module(name, monkeypatch, capsys):
    module = importlib.import_module(f"benchmarks.{name}")
    monkeypatch.setattr(sys, "argv", [f"benchmarks/{name}.py", *(["throughput"] if name == "sampling" else []), "--help"])
    with pytest.raises(SystemExit) as stop:
        module.main()
    assert stop.value.code == 0 and "usage:" in capsys.readouterr().out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A few steps of a Patronus run: the scripts that read a trained run take it."""
    run = tmp_path_factory.mktemp("benchmarks") / "run"
    sets = [*TINY_OVERRIDES, "model.conditioner={name: patronus, preset: test}", "data.image_size=32"]
    result = CliRunner().invoke(
        cli, ["train", "ddpm-shapes", *(a for s in sets for a in ("--set", s)), "--out", str(run), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    return str(run)


TINY = {
    "train_throughput": [
        "--candidates",
        "unet-paper",
        "--reference",
        "unet-paper",
        "--batch-size",
        "2",
        "--image-size",
        "16",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--rounds",
        "1",
        "--no-flops",
        "--device",
        "cpu",
    ],
    "methods": [
        "--methods",
        "ddpm-shapes",
        "--batch-size",
        "2",
        "--image-size",
        "16",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--rounds",
        "1",
        "--device",
        "cpu",
    ],
    "sampling": ["throughput", "--steps", "1", "--batch-size", "2", "--image-size", "16", "--rounds", "1", "--device", "cpu"],
    "inversion": ["--num", "8"],
    "saliency": ["RUN", "--images", "1", "--t", "10", "--masks", "2", "--batch-size", "2", "--rounds", "0"],
    "emergence": ["RUN", "--n", "1", "--steps", "2", "--rounds", "1"],
    "explain": ["RUN", "--n", "1", "--steps", "2", "--only", "edit"],
    "explore": ["RUN", "--edits", "2"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_runs_on_a_tiny_budget(name, tiny_run, tmp_path):
    arguments = [tiny_run if a == "RUN" else a for a in TINY[name]]
    as_file = name in ("methods", "inversion")  # the documented `python benchmarks/NAME.py` too
    command = [sys.executable, f"benchmarks/{name}.py"] if as_file else [sys.executable, "-m", f"benchmarks.{name}"]
    result = subprocess.run(
        [*command, *arguments], cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
