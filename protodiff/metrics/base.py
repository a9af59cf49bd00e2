"""The metric contract: a number (or a few) computed from a trained model and a dataset."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from protodiff.config import Component

if TYPE_CHECKING:
    from protodiff.data.base import LabeledImages
    from protodiff.model import ConditionedDiffusion


class Metric(Component, ABC):
    """Constructed as ``cls(config)``; ``compute`` returns a JSON-ready dict of results."""

    def __init__(self, config: Any) -> None:
        self.config = config

    @abstractmethod
    def compute(self, model: ConditionedDiffusion, data: LabeledImages, **options: Any) -> dict[str, Any]: ...
