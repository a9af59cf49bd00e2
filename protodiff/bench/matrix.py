"""The cells of a bench: one (method, dataset) experiment preset each, and the shard a process runs.

Cells come from the registries, not from a list in the harness: a method is a registered
conditioner, and the cell (method, dataset) exists when the preset ``METHOD-DATASET`` is
registered. A plugin that registers a conditioner and its preset joins the matrix unchanged.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from protodiff._registry.manager import registries
from protodiff.bench.spec import ALL, BenchSpec
from protodiff.errors import ConfigError


@dataclass(frozen=True)
class Cell:
    method: str
    dataset: str
    #: The registered experiment preset this cell trains.
    preset: str
    #: Overrides applied to the preset, in order.
    overrides: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.method}-{self.dataset}"


def _check_names(kind: str, names: list[str], known: list[str]) -> None:
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=2)
            hint = f"did you mean {' or '.join(close)}?" if close else f"registered: {', '.join(known)}"
            raise ConfigError(f"{kind} {name!r} is not registered; {hint}")


def build_matrix(
    spec: BenchSpec, *, datasets: list[str] | None = None, methods: list[str] | None = None, extra: tuple[str, ...] = ()
) -> list[Cell]:
    """Every cell of ``spec`` (or of the ``datasets``/``methods`` given instead), in a fixed order."""
    regs = registries()
    datasets = datasets or spec.datasets
    _check_names("dataset", datasets, regs.dataset.names())
    wanted = methods or spec.methods
    conditioners = [name for name in regs.conditioner.names() if name != "none"]
    if ALL not in wanted:
        _check_names("method", wanted, conditioners)
    presets = set(regs.preset.names())
    cells = []
    for dataset in datasets:
        for method in conditioners if ALL in wanted else wanted:
            preset = f"{method}-{dataset}"
            if preset in presets:
                cells.append(Cell(method, dataset, preset, (*spec.set, *spec.method_set.get(method, []), *extra)))
            elif ALL not in wanted:
                raise ConfigError(f"no preset {preset!r} for method {method} on {dataset}; a plugin registers it to add the cell")
    if not cells:
        raise ConfigError(f"no method has a preset for {', '.join(datasets)} (presets are named METHOD-DATASET)")
    return cells


def parse_shard(text: str) -> tuple[int, int]:
    """``i/N`` (0 <= i < N) -> (i, N)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected I/N, e.g. 0/2") from None
    if not 0 <= index < count:
        raise ConfigError(f"--shard {text!r}: need 0 <= I < N")
    return index, count


def shard(cells: list[Cell], index: int, count: int) -> list[Cell]:
    """Every N-th cell starting at I: shards are disjoint and together cover the matrix."""
    return cells[index::count]
