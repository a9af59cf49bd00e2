"""The metric contract: a number (or a few) computed from a trained model and a dataset."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from protodiff.config import Component

if TYPE_CHECKING:
    from protodiff.data.base import LabeledImages
    from protodiff.model import ConditionedDiffusion


class Metric(Component, ABC):
    """Constructed as ``cls(config)``; ``compute`` returns a JSON-ready dict of results.

    The dict holds a ``label`` (how reports name the number, e.g. ``TAD``, ``FID`` or
    ``FD_identity``), the value(s), the protocol parameters and the sample counts, so a result
    file can be read without the command line that made it. Options every metric accepts:
    ``shared`` (a :class:`~protodiff.metrics.shared.Shared` memo for artefacts several metrics
    reuse), ``seed``, ``progress`` and ``source`` (the :class:`~protodiff.data.base.DatasetSource`
    the split came from, for metrics that need another split, e.g. to train a judge).
    """

    #: The split the metric is defined on, unless the caller chooses another (each metric cites
    #: the published protocol its default comes from).
    default_split: ClassVar[str] = "test"

    def __init__(self, config: Any) -> None:
        self.config = config

    def check(self, model: ConditionedDiffusion, data: LabeledImages) -> None:
        """Raise a ProtodiffError for anything ``compute`` would refuse, before any expensive work."""

    @abstractmethod
    def compute(self, model: ConditionedDiffusion, data: LabeledImages, **options: Any) -> dict[str, Any]: ...
