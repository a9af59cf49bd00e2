"""The live view of a bench: cells done, each running cell's phase and step with its training ETA,
and each finished cell's wall time, throughput and peak memory (rich; plain lines when output is
not a terminal). Several cells may run at once (``jobs``)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text


class BenchDisplay:
    """Call :meth:`observe` as cells progress and :meth:`finished` with each cell's record."""

    def __init__(self, cells: list[str], console: Console | None = None) -> None:
        self.cells = cells
        self.console = console or Console(stderr=True)
        self.records: dict[str, dict[str, Any]] = {}
        #: cell -> (phase, step, total) of every running cell
        self.running: dict[str, tuple[str, int, int]] = {}
        #: cell -> (when, step) its current training phase was first seen
        self.step_clocks: dict[str, tuple[float, int]] = {}
        self.started = time.perf_counter()
        self.live = Live(self._render(), console=self.console, refresh_per_second=2, transient=False)

    def __enter__(self) -> BenchDisplay:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.update(self._render())
        self.live.__exit__(*exc)
        if not self.console.is_terminal:
            self.console.line()  # the last render ends without one, and the next output starts a line

    def observe(self, cell: str, phase: str, step: int, total: int) -> None:
        previous = self.running.get(cell, ("", 0, 0))[0]
        if phase == "train" and previous != phase:
            self.step_clocks[cell] = (time.perf_counter(), step)
        if not self.console.is_terminal and previous != phase:
            self.console.print(f"{cell}: {phase}" + (f" from step {step}/{total}" if total else ""))
        self.running[cell] = (phase, step, total)
        self.live.update(self._render())

    def finished(self, record: dict[str, Any], reused: bool = False) -> None:
        self.records[record["cell"]] = {**record, "reused": reused}
        self.running.pop(record["cell"], None)
        if not self.console.is_terminal:
            self.console.print(f"{record['cell']}: done in {record['wall_s']:.0f} s" + (" (reused)" if reused else ""))
        self.live.update(self._render())

    def _eta(self, cell: str) -> str:
        phase, step, total = self.running[cell]
        clock = self.step_clocks.get(cell)
        if phase != "train" or not total or clock is None or step <= clock[1]:
            return ""
        began, first = clock
        rate = (time.perf_counter() - began) / (step - first)
        return f", training ETA {rate * (total - step):.0f} s ({rate:.2f} s/step)"

    def _render(self) -> Group:
        table = Table(title=None, expand=False)
        for column in ("cell", "wall s", "img/s", "RSS MiB", "CUDA MiB", ""):
            table.add_column(column, justify="right" if column not in ("cell", "") else "left")
        for name in self.cells:
            r = self.records.get(name)
            if r is None:
                table.add_row(name, "", "", "", "", "running" if name in self.running else "")
                continue
            table.add_row(
                name,
                f"{r['wall_s']:.0f}",
                f"{r['images_per_s']:.1f}" if r.get("images_per_s") else "–",
                f"{r['peak_rss_mib']:.0f}",
                f"{r['peak_cuda_mib']:.0f}" if r.get("peak_cuda_mib") else "–",
                "reused" if r["reused"] else "done",
            )
        elapsed = time.perf_counter() - self.started
        lines = [f"{len(self.records)}/{len(self.cells)} cells done, {elapsed:.0f} s"]
        for cell, (phase, step, total) in self.running.items():
            lines.append(f"{cell}: {phase}" + (f" step {step}/{total}" if total else "") + self._eta(cell))
        return Group(table, Text("\n".join(lines)))
