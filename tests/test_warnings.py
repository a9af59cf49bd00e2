"""Warnings reach the user as one ``protodiff: warning: ...`` line: every ``warnings.warn`` in the
core and the built-in plugins is a ProtodiffWarning (which the CLI prints so), never a bare
UserWarning that Python prints with a source path and line."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from click.testing import CliRunner

from protodiff.errors import ProtodiffWarning

ROOT = Path(__file__).parent.parent
PACKAGES = {"protodiff": ROOT / "protodiff", "protodiff_patronus": ROOT / "plugins" / "patronus",
            "protodiff_diffae": ROOT / "plugins" / "diffae", "protodiff_infodiff": ROOT / "plugins" / "infodiff",
            "protodiff_dfx": ROOT / "plugins" / "dfx"}  # fmt: skip


def _warn_calls():
    """(module name, line, category expression or None) of every ``warnings.warn(...)`` call."""
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            module = ".".join((package, *path.relative_to(folder).with_suffix("").parts)).removesuffix(".__init__")
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "warn"
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "warnings"
                ):
                    category = (
                        node.args[1]
                        if len(node.args) > 1
                        else next((k.value for k in node.keywords if k.arg == "category"), None)
                    )
                    yield module, node.lineno, category


def test_every_warning_meant_for_the_user_is_a_protodiff_warning():
    calls = list(_warn_calls())
    assert calls, "found no warnings.warn calls: the scan is broken"
    for module, line, category in calls:
        where = f"{module}:{line}"
        assert isinstance(category, ast.Name), f"{where}: warnings.warn without ProtodiffWarning (or a subclass)"
        resolved = getattr(importlib.import_module(module), category.id)
        assert issubclass(resolved, ProtodiffWarning), f"{where}: {category.id} is not a ProtodiffWarning"


def test_the_cli_prints_a_protodiff_warning_as_one_line():
    import warnings

    import click

    from protodiff.cli import main

    @click.command("warn-once")
    def warn_once() -> None:
        warnings.warn("something to know", ProtodiffWarning, stacklevel=2)

    main.add_command(warn_once)
    try:
        result = CliRunner().invoke(main, ["warn-once"])
    finally:
        main.commands.pop("warn-once")
    assert result.exit_code == 0
    assert result.output == "protodiff: warning: something to know\n"
