"""Run a bench (or one shard of it) into an output directory, then write its results and report."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from protodiff.bench.cell import RECORD, cell_dir
from protodiff.bench.display import BenchDisplay
from protodiff.bench.environment import environment
from protodiff.bench.lock import output_lock
from protodiff.bench.matrix import Cell, shard
from protodiff.bench.pool import run_cells
from protodiff.bench.preflight import preflight
from protodiff.bench.report import write_report
from protodiff.bench.results import RUN, gather, load_record, load_run, write_results
from protodiff.bench.settings import SETTINGS_FILE, cell_settings, check_reusable, recorded_settings
from protodiff.bench.spec import BenchSpec
from protodiff.errors import ProtodiffError
from protodiff.io import write_json


def run_bench(
    name: str,
    spec: BenchSpec,
    cells: list[Cell],
    out: Path,
    *,
    seed: int,
    device: str,
    data_root: str | None,
    shard_of: tuple[int, int] = (0, 1),
    command: str = "",
    retrain: bool = False,
    jobs: int | None = None,
) -> tuple[Path, Path]:
    """Preflight every cell of the matrix, run this shard's cells (reusing finished ones run under
    the same settings; ``retrain`` runs the others again), report; ``out`` is locked throughout
    (a second bench on it stops at once, naming this one)."""
    with output_lock(out):
        began = time.perf_counter()
        plans = preflight(spec, cells, seed, data_root)  # the whole matrix: every shard fails alike, early
        mine = shard(cells, *shard_of)
        run: dict[str, Any] = {
            "preset": name, "seed": seed, "matrix": [c.name for c in cells], "shard": list(shard_of),
            "command": command, "notes": spec.notes, "left_out": spec.left_out, "environment": environment(),
            "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }  # fmt: skip
        existing = out / RUN
        if existing.is_file() and load_run(out)["matrix"] != run["matrix"]:
            raise ProtodiffError(f"{out} holds a different bench; choose another --out")
        write_json(existing, run)
        settings = {cell.name: cell_settings(plans[cell.name].experiment, spec, seed) for cell in mine}
        for cell in mine:  # every stale cell is named before anything trains
            if retrain and recorded_settings(cell_dir(out, cell)) not in (None, settings[cell.name]):
                shutil.rmtree(cell_dir(out, cell))
            check_reusable(cell.name, cell_dir(out, cell), settings[cell.name])
        with BenchDisplay([c.name for c in mine]) as display:
            todo = []
            for cell in mine:
                record_path = cell_dir(out, cell) / RECORD
                if record_path.is_file():
                    display.finished(load_record(record_path), reused=True)
                    continue
                write_json(cell_dir(out, cell) / SETTINGS_FILE, settings[cell.name])
                todo.append(cell)
            run_cells(
                todo,
                plans,
                spec,
                out,
                device=device,
                seed=seed,
                jobs=jobs if jobs is not None else spec.jobs,
                observe=display.observe,
                finished=display.finished,
            )
        write_json(existing, {**run, "wall_s": round(time.perf_counter() - began, 1)})
        return report(out, [out])


def report(out: Path, sources: list[Path]) -> tuple[Path, Path]:
    """results.json, results.csv, REPORT.md and report.html in ``out`` from the cells in ``sources``."""
    run, records = gather(sources)
    out.mkdir(parents=True, exist_ok=True)
    write_results(out, run, records)
    return write_report(out, run, records)


def merged_report(out: Path, sources: list[Path]) -> tuple[Path, Path]:
    """:func:`report` for ``protodiff bench report``: ``out`` is locked while it is written, so a
    bench still running into it refuses (or is refused) rather than interleaving files."""
    with output_lock(out):
        return report(out, sources)
