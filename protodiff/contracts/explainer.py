"""The ``explainer`` contract: an analysis of a model on a batch, saved as tensors plus figures.

Every registered explainer is a subcommand of ``protodiff explain NAME RUN`` (the command builds
it from its ``Config`` and ``--set``, passes the first ``--n`` images of ``--split`` as ``batch``
and saves the result to ``--out``); from Python it is
``registries().explainer.get(name)(config).explain(model, batch).save(directory)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors.torch import save_file
from torch import Tensor

from protodiff.component import Component
from protodiff.io import atomic_path, write_json

if TYPE_CHECKING:
    from protodiff.model import ConditionedDiffusion


@dataclass
class Explanation:
    """The result of an explainer: named tensors, JSON-ready facts, and figure renderers.

    ``figures`` maps a file name (``grid.png``) to a function that writes that figure to a path,
    so nothing is rendered unless the explanation is saved.
    """

    explainer: str
    tensors: dict[str, Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Callable[[Path], None]] = field(default_factory=dict)

    def save(self, directory: str | Path) -> Path:
        """Write ``tensors.safetensors``, ``meta.json`` and every figure, atomically as one directory."""
        directory = Path(directory)
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            save_file({k: v.detach().cpu().contiguous() for k, v in self.tensors.items()}, str(tmp / "tensors.safetensors"))
            write_json(tmp / "meta.json", {"explainer": self.explainer, **self.meta})
            for name, render in self.figures.items():
                render(tmp / name)
        return directory


class Explainer(Component, ABC):
    """Constructed as ``cls(config)``."""

    def __init__(self, config: Any) -> None:
        self.config = config

    @abstractmethod
    def explain(self, model: ConditionedDiffusion, batch: Tensor, **options: Any) -> Explanation: ...
