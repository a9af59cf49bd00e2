"""What a report states about where it ran: versions and machine."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

from protodiff.provenance import code_version


def environment() -> dict[str, Any]:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "versions": code_version(),
        "machine": f"{platform.node()}, {platform.machine()} {platform.system()}, {cores} CPU cores usable, "
        f"torch threads {torch.get_num_threads()}, {gpu}",
    }
