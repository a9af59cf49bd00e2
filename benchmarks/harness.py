"""What every throughput benchmark here shares: each measurement in a fresh process (so peak
memory is that candidate's own), rounds interleaved across candidates (so a slow moment of the
machine does not favour one of them), the median round reported, and the machine described.

Imported by the benchmark scripts beside it as ``benchmarks.harness``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable

import torch

#: ``measure(name, args, queue)``: runs in the child, puts one result dict on ``queue``.
Measure = Callable[[str, argparse.Namespace, "mp.Queue"], None]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def timed(device: torch.device, work: Callable[[], object], repeats: int) -> float:
    """Seconds for ``repeats`` calls of ``work`` (CUDA synchronised at both ends, its peak reset)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(repeats):
        work()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def memory(device: torch.device, baseline_rss: float, model: torch.nn.Module) -> dict:
    """The peak memory fields every result carries, and the model's size."""
    return {
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_model_mib": baseline_rss,
        "peak_cuda_mib": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
        "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
    }


def interleaved(names: list[str], measure: Measure, args: argparse.Namespace, rounds: int) -> dict[str, dict]:
    """Every candidate measured ``rounds`` times, round by round, each in a fresh process; the
    median images/s per candidate with its rounds and peak memory."""
    context = mp.get_context("spawn")
    results: dict[str, list[dict]] = {n: [] for n in names}
    for round_index in range(rounds):
        for name in names:
            queue = context.Queue()
            process = context.Process(target=measure, args=(name, args, queue))
            process.start()
            process.join()
            if process.exitcode != 0:
                raise SystemExit(f"{name}: benchmark process failed (exit {process.exitcode})")
            results[name].append(queue.get())
            print(
                f"round {round_index + 1}/{rounds} {name:>24}: {results[name][-1]['images_per_sec']:.3f} img/s", file=sys.stderr
            )
    return {name: _summary(runs) for name, runs in results.items()}


def _summary(runs: list[dict]) -> dict:
    """One candidate's rounds: the median throughput, the worst memory, and the median of any
    other number a benchmark reported (such as the seconds of a first, compiling step)."""
    known = {"images_per_sec", "peak_rss_mib", "rss_before_model_mib", "peak_cuda_mib", "parameters_m"}
    summary = {
        "images_per_sec_median": statistics.median(r["images_per_sec"] for r in runs),
        "images_per_sec_rounds": [round(r["images_per_sec"], 4) for r in runs],
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "rss_before_model_mib": min(r["rss_before_model_mib"] for r in runs),
        "peak_cuda_mib": runs[0]["peak_cuda_mib"],
        "parameters_m": runs[0]["parameters_m"],
    }
    for key in runs[0].keys() - known:
        summary[key] = statistics.median(r[key] for r in runs)
    return summary


def machine() -> dict:
    """Versions, threads and the load average at the end of the run (the noise a reader should know)."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()],
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
