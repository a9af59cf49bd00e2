"""Shared rendering: image grids and training curves, written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torchvision
from torch import Tensor

from protodiff.io import write_file


def to_unit(images: Tensor) -> Tensor:
    """Images in [-1, 1] -> [0, 1] for display (values outside are clipped)."""
    return (images.detach().float().cpu() * 0.5 + 0.5).clamp(0.0, 1.0)


def save_grid(images: Tensor, path: str | Path, nrow: int | None = None, padding: int = 1) -> Path:
    """Save (N, C, H, W) images in [-1, 1] as one PNG grid (``nrow`` images per row, default ~square)."""
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"expected a non-empty (N, C, H, W) batch, got shape {tuple(images.shape)}")
    nrow = nrow or max(1, int(round(images.shape[0] ** 0.5)))
    grid = torchvision.utils.make_grid(to_unit(images), nrow=nrow, padding=padding, pad_value=1.0)
    return write_file(path, lambda p: torchvision.utils.save_image(grid, p, format="png"))


def read_log(path: str | Path) -> list[dict]:
    lines = Path(path).read_text().splitlines() if Path(path).exists() else []
    return [json.loads(line) for line in lines if line.strip()]


def plot_training_curve(log_path: str | Path, out_path: str | Path, key: str = "loss") -> Path | None:
    """Plot ``key`` against ``step`` from a run's ``log.jsonl`` (None if nothing was logged)."""
    records = [r for r in read_log(log_path) if key in r]
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    values = [r[key] for r in records]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.plot(steps, values, lw=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        return write_file(out_path, lambda p: fig.savefig(p, format="png"))
    finally:
        plt.close(fig)


def stack_rows(rows: list[Tensor]) -> Tensor:
    """Interleave equally sized batches so each row of a grid shows the same index across them."""
    return torch.stack(rows, dim=1).flatten(0, 1)
