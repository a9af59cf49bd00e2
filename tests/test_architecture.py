"""The layout's rules, checked: imports form no cycle, the component base and the contracts stand
alone, built-ins register where they are defined, the front door is lazy and documented, and
nothing in the repository points outside it."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import protodiff
from protodiff._registry import builtins, moved
from protodiff._registry.manager import registries

ROOT = Path(__file__).parent.parent
#: The core and every built-in plugin package (each plugins/<name> folder, as pyproject maps it).
PACKAGES = {
    "protodiff": ROOT / "protodiff",
    **{
        package: ROOT / folder
        for package, folder in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].items()
    },
}


def module_files() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


MODULES = module_files()


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imported_modules(name: str, *, top_level: bool, type_checking: bool = True) -> set[str]:
    """The project modules ``name`` imports at module level (``top_level``) or inside functions,
    counting the imports made for the type checker only (``if TYPE_CHECKING:``) unless told not to.
    ``from package import module`` imports the module (the package is imported by every submodule
    import anyway, and is not counted)."""
    tree = ast.parse(MODULES[name].read_text())
    found: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child) and not type_checking:
                continue
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom) and child.module and in_function != top_level:
                names = {f"{child.module}.{alias.name}" for alias in child.names}
                found.update(names)
                if not names <= MODULES.keys():
                    found.add(child.module)
            elif isinstance(child, ast.Import) and in_function != top_level:
                found.update(alias.name for alias in child.names)
            visit(child, nested)

    visit(tree, False)
    return {module for module in found if module in MODULES and module != name}


def test_imports_form_no_cycle_even_counting_type_checking_and_local_imports():
    """No module imports another that imports it back: at module level, lazily in a function, or
    for the type checker only (``if TYPE_CHECKING:``). A cycle the type checker must untangle is a
    layering mistake as much as one Python must."""
    graph = {name: imported_modules(name, top_level=True) | imported_modules(name, top_level=False) for name in MODULES}
    state: dict[str, str] = {}

    def walk(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                walk(nxt, [*path, nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])


@pytest.mark.parametrize("name", ["protodiff._registry.component", "protodiff.validation", "protodiff._version"])
def test_the_foundations_import_nothing_of_protodiff(name):
    assert imported_modules(name, top_level=True) | imported_modules(name, top_level=False) == set()


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("protodiff.contracts.")))
def test_contracts_import_only_the_foundations(name):
    allowed = {"protodiff._registry.component", "protodiff.errors", "protodiff.io", "protodiff.validation"}
    imported = imported_modules(name, top_level=True, type_checking=False) | imported_modules(name, top_level=False)
    assert {m for m in imported if not m.startswith("protodiff.contracts.")} <= allowed


@pytest.mark.parametrize(
    "name",
    [
        "protodiff.config",
        "protodiff._registry.registry",
        "protodiff._registry.manager",
        "protodiff._registry.hookspecs",
        "protodiff.experiment",
    ],
)
def test_config_and_the_plugin_system_hold_no_local_imports(name):
    assert imported_modules(name, top_level=False) == set()


def test_every_core_component_is_registered_by_the_module_that_defines_it():
    listed = set(builtins.protodiff_plugins)
    for kind, registry in registries().all().items():
        for entry in registry.entries():
            if entry.plugin != "core" or kind == "preset":
                continue
            assert entry.target.__module__ in listed, f"{kind} {entry.name}: defined in {entry.target.__module__}"


def test_import_protodiff_is_cheap_and_the_front_door_opens_on_use():
    code = "import sys, protodiff; print('torch' in sys.modules); protodiff.load_model; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]


@pytest.mark.parametrize("name", [n for n in protodiff.__all__ if n != "__version__"])
def test_front_door_names_are_documented(name):
    value = getattr(protodiff, name)
    assert inspect.getdoc(value), f"protodiff.{name} has no docstring"
    assert name in dir(protodiff)


def test_nothing_in_the_repository_points_outside_it():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = [
        path
        for path in tracked
        if not path.endswith((".safetensors", ".png"))
        and any(marker in (ROOT / path).read_text(errors="ignore") for marker in ("../shared", "DESIGN.md", "REFERENCE.md"))
        and path != "tests/test_architecture.py"
    ]
    assert offenders == []


@pytest.mark.parametrize("old", sorted(moved.MOVED))
def test_moved_modules_still_import_under_their_old_names(old):
    """A module moved out of the package root is the same module object under its old name."""
    assert importlib.import_module(old) is importlib.import_module(moved.MOVED[old])


@pytest.mark.parametrize("old", sorted(moved.LEFT))
def test_modules_that_left_say_where_they_went(old):
    with pytest.raises(ModuleNotFoundError, match=f"{old} has moved to"):
        importlib.import_module(old)
