"""Running a bench's cells one after another, or several side by side (``jobs``).

On a CPU, one training process does not use its cores fully: the tiny UNets of the CPU presets
are made of small convolutions that split poorly over threads. Two processes of one thread each
train more images per second between them than one process of two threads (measured on 2 cores:
1.26x for patronus-shapes, 1.5x for infodiff-shapes; docs/bench.md). So with ``jobs`` > 1 a bench
runs that many cells at once, each in its own process with ``cores // jobs`` threads, the costliest
cells first. The numbers of a cell depend on its thread count (floating-point sums are taken in
another order), which its record states; the same bench on the same machine gives the same
numbers. On CUDA, and with ``jobs: 1``, cells run one at a time in this process.

The judges every cell shares are trained before any cell starts, so that no two cells train the
same one.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import torch

from protodiff.bench.cell import Observer, run_cell
from protodiff.bench.judge import train_judge
from protodiff.bench.matrix import Cell
from protodiff.bench.preflight import CellPlan
from protodiff.bench.spec import BenchSpec
from protodiff.devices import resolve_device


def cpu_cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def effective_jobs(jobs: int, device: str, cells: int) -> int:
    """How many cells run at once: ``jobs``, at most one per cell and per core; one on CUDA."""
    if resolve_device(device).type == "cuda":
        return 1
    return max(1, min(jobs, cells, cpu_cores()))


def train_judges(cells: list[Cell], plans: dict[str, CellPlan], spec: BenchSpec, out: Path, seed: int, device: str) -> None:
    """The judge of every dataset a cell needs one for, trained now (or found) once."""
    for cell in cells:
        if plans[cell.name].judge:
            train_judge(out, cell.dataset, plans[cell.name].experiment, spec.judge, spec.judge_split, seed, device)


def _work(
    cell: Cell, plan: CellPlan, spec: BenchSpec, out: Path, device: str, seed: int, threads: int, events: Any
) -> dict[str, Any] | None:
    """One cell in a worker process, its progress sent to the parent through ``events``."""
    torch.set_num_threads(threads)
    return run_cell(cell, plan, spec, out, device=device, seed=seed, observe=lambda *event: events.put(event), threads=threads)


def _pump(events: Any, observe: Observer, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            observe(*events.get(timeout=0.2))
        except queue.Empty:
            continue


def run_cells(
    cells: list[Cell],
    plans: dict[str, CellPlan],
    spec: BenchSpec,
    out: Path,
    *,
    device: str,
    seed: int,
    jobs: int,
    observe: Observer,
    finished: Callable[[dict[str, Any]], None],
) -> None:
    """Run ``cells`` (``jobs`` at a time), calling ``finished`` with each record as it lands."""
    if not cells:
        return
    lock = threading.Lock()  # the display is told from the event pump and from here
    observe_, finished_ = observe, finished

    def observe(*event: Any) -> None:
        with lock:
            observe_(*event)

    def finished(record: dict[str, Any]) -> None:
        with lock:
            finished_(record)

    train_judges(cells, plans, spec, out, seed, device)
    jobs = effective_jobs(jobs, device, len(cells))
    if jobs == 1:
        for cell in cells:
            record = run_cell(
                cell, plans[cell.name], spec, out, device=device, seed=seed, observe=observe, threads=torch.get_num_threads()
            )
            if record is not None:
                finished(record)
        return
    threads = max(1, cpu_cores() // jobs)
    ordered = sorted(cells, key=lambda c: -plans[c.name].cost)
    context = mp.get_context("spawn")  # a fresh interpreter: no threads or CUDA state inherited
    with context.Manager() as manager:
        events = manager.Queue()
        stop = threading.Event()
        pump = threading.Thread(target=_pump, args=(events, observe, stop), daemon=True)
        pump.start()
        try:
            with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
                pending: set[Future] = {
                    pool.submit(_work, cell, plans[cell.name], spec, out, device, seed, threads, events) for cell in ordered
                }
                try:
                    while pending:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for future in done:
                            record = future.result()  # a worker's ProtodiffError is re-raised here, one line
                            if record is not None:
                                finished(record)
                except BaseException:
                    for future in pending:
                        future.cancel()
                    raise
        finally:
            stop.set()
            pump.join()
