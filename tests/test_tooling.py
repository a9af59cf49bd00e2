"""The habits CI keeps: ruff's lint and format and mypy (strict on the public API: the front door
and the contracts) are clean, as configured in pyproject.toml. CI runs them through this file, so
`.venv/bin/python -m pytest -q`, the README's test command, is the whole check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """The tool installed beside this interpreter (the dev extra), else on PATH."""
    found = BIN / name if (BIN / name).exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'")
    return str(found)


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing_to_lint():
    result = run(tool("ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_finds_nothing_to_format():
    result = run(tool("ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_is_clean_on_the_public_api():
    result = run(tool("mypy"))
    assert result.returncode == 0, result.stdout + result.stderr
