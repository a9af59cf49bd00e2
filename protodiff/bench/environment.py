"""What a report states about where it ran: versions and machine."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def environment() -> dict[str, Any]:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "versions": {"protodiff": _version("protodiff"), "torch": torch.__version__, "python": sys.version.split()[0]},
        "machine": f"{platform.node()}, {platform.machine()} {platform.system()}, {cores} CPU cores usable, "
        f"torch threads {torch.get_num_threads()}, {gpu}",
    }
