"""Per-cell peak memory: the process's resident set (CPU) and CUDA's max allocated bytes.

On Linux the kernel's RSS high-water mark is reset by writing 5 to /proc/self/clear_refs, so each
cell reports its own peak rather than the largest so far in the process.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def reset_peaks() -> None:
    try:
        _CLEAR.write_text("5")
    except OSError:
        pass  # not Linux, or not permitted: the peak is the process's so far
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_rss_mib() -> float:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def peak_cuda_mib() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
