"""Where a run computes and in which precision: CUDA when present, else the CPU; bf16 autocast
wherever the hardware computes bf16 natively.

Autocast keeps fp32 master weights (parameters, gradients and optimiser state stay fp32; only the
matrix products and convolutions run in bf16), so the choice changes speed and the last bits of
each step, not what is trained. It is recorded in the run (``config.yaml``, ``log.jsonl`` and each
checkpoint's training state), so a run resumes in the precision it started in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from protodiff.errors import ProtodiffError

_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU. Asking for an absent CUDA is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ProtodiffError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no flags known, so no native bf16 assumed
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX-BF16); oneDNN emulates bf16
    elsewhere, more slowly than fp32."""
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # private, hence the fallback
    if probe is not None and probe():
        return True
    return bool(_cpu_flags() & set(_CPU_BF16_FLAGS))


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bf16()


@dataclass(frozen=True)
class Precision:
    """The precision a run computes in, and why it was chosen (logged with the run)."""

    name: Literal["fp32", "bf16"]
    reason: str

    @property
    def autocast(self) -> bool:
        return self.name == "bf16"


def resolve_precision(setting: str, device: torch.device) -> Precision:
    """``train.precision`` (``auto``, ``fp32`` or ``bf16``) made concrete for ``device``: ``auto``
    picks bf16 where it is native (:func:`native_bf16`), else fp32."""
    native = native_bf16(device)
    where = "CUDA" if device.type == "cuda" else "this CPU"
    if setting == "fp32":
        return Precision("fp32", "train.precision: fp32")
    if setting == "bf16":
        note = "" if native else f" ({where} has no native bf16: emulated, slower than fp32)"
        return Precision("bf16", f"train.precision: bf16{note}")
    if native:
        return Precision("bf16", f"auto: {where} computes bf16 natively (autocast, fp32 master weights)")
    return Precision("fp32", f"auto: {where} has no native bf16")
