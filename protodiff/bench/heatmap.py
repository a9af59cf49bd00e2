"""Per-attribute AUROC heat maps: which attributes each method's latent predicts, at a glance."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from protodiff.bench.results import separation
from protodiff.io import atomic_path

#: The heat maps drawn, by metric label: what each cell of the map is.
MAPS = {
    "latent AUROC": "latent AUROC per attribute (linear probe on the whole latent, mean over folds)",
    "dimension AUROC": "best single dimension's AUROC per attribute (max(AUC, 1 - AUC), test split)",
}


def _value(entry: dict[str, Any]) -> float | None:
    """An attribute's AUROC: the mean over folds, or a single dimension's, which counts a dimension
    that falls with the attribute (AUC below 0.5) as well as one that rises."""
    if entry.get("mean") is not None:
        return entry["mean"]
    if entry.get("auroc") is not None:
        return separation(entry["auroc"])
    return None


def attribute_aurocs(records: list[dict[str, Any]], label: str = "latent AUROC") -> tuple[list[str], list[str], np.ndarray]:
    """(methods, attributes, matrix) of each attribute's AUROC under the metric ``label``, for one dataset's cells."""
    cells = [r for r in records if label in r["results"]]
    attributes = list(dict.fromkeys(a for r in cells for a in r["results"][label].get("per_attribute", {})))
    matrix = np.full((len(cells), len(attributes)), np.nan)
    for i, r in enumerate(cells):
        for j, name in enumerate(attributes):
            value = _value(r["results"][label]["per_attribute"].get(name) or {})
            if value is not None:
                matrix[i, j] = value
    return [r["method"] for r in cells], attributes, matrix


def plot_heatmap(records: list[dict[str, Any]], dataset: str, path: Path, label: str = "latent AUROC") -> Path | None:
    """Methods x attributes, AUROC 0.5 (chance) to 1; None when no cell has per-attribute AUROCs."""
    methods, attributes, matrix = attribute_aurocs([r for r in records if r["dataset"] == dataset], label)
    if not attributes:
        return None
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(attributes) + 2), 0.5 * len(methods) + 1.6))
    image = ax.imshow(matrix, vmin=0.5, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(attributes)), attributes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(methods)), methods)
    for i in range(len(methods)):
        for j in range(len(attributes)):
            if not np.isnan(matrix[i, j]):
                ax.text(
                    j,
                    i,
                    f"{matrix[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if matrix[i, j] < 0.8 else "black",
                )
    ax.set_title(textwrap.fill(f"{dataset}: {MAPS[label]}", 60), fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
