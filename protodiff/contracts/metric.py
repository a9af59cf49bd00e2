"""The ``metric`` contract: numbers computed from a trained model on one split of a dataset.

A metric's options are its ``Config`` (set like every other component's: ``options={"tad":
{"auroc_threshold": 0.9}}`` in :func:`protodiff.evaluate`, ``--set tad.auroc_threshold=0.9`` on
the command line). Everything else it may need from the evaluation that runs it arrives in one
typed :class:`EvalContext`, so what a caller must pass is written in a signature rather than
agreed in a docstring.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch

from protodiff._registry.component import Component

if TYPE_CHECKING:
    from protodiff.config import ComponentSpec
    from protodiff.contracts.dataset import DatasetSource, LabeledImages
    from protodiff.model import ConditionedDiffusion

T = TypeVar("T")


def flag(default: Any, help: str, *, aliases: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None) -> Any:
    """A ``Config`` field that ``protodiff eval`` also offers as a flag of its own (``--num-latents N``
    for ``num_latents``), setting the option of that name on every requested metric that has one;
    ``help`` is the flag's help. ``aliases`` are further flags that set this option and others
    with it: ``{"inception_weights": (help, {"extractor": "inception-v3-compat"})}`` makes
    ``--inception-weights PATH`` set this option to PATH and ``extractor`` as given."""
    return field(default=default, metadata={"flag": help, "aliases": dict(aliases or {})})


class EvalCache:
    """Artefacts several metrics of one evaluation reuse, each computed once.

    TAD, attributes captured and latent AUROC read the same latents; FID and KID compare the same
    generated images. Encoding 10k images or sampling 10k more is the expensive part, so metrics
    ask ``cache.get(key, compute)`` with a key naming everything the artefact depends on.
    """

    def __init__(self) -> None:
        self._items: dict[Hashable, Any] = {}

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()`` the first time ``key`` is asked for, the stored result afterwards."""
        if key not in self._items:
            self._items[key] = compute()
        value: T = self._items[key]
        return value

    def keys(self) -> list[Hashable]:
        return list(self._items)


@dataclass(frozen=True)
class EvalContext:
    """What one evaluation gives every metric besides the model and the split's images."""

    #: The dataset the evaluated split was opened from (for metrics that need another split, e.g.
    #: to train a judge on ``train``).
    source: DatasetSource
    #: The name of the evaluated split.
    split: str
    #: The model's device; put anything the metric builds (a judge, a feature network) there.
    device: torch.device
    #: Seeds everything random in the metric (generated noise, judges, subsets).
    seed: int = 0
    #: The run's sampler, for metrics that generate and whose options name none (None: ``ddim``
    #: with its defaults).
    sampler: ComponentSpec | None = None
    #: Shared by the metrics of one evaluation.
    cache: EvalCache = field(default_factory=EvalCache)
    #: Show progress bars for long loops.
    progress: bool = False


class Metric(Component, ABC):
    """Constructed as ``cls(config)``; ``compute`` returns a JSON-ready dict of results.

    The dict holds a ``label`` (how reports name the number, e.g. ``TAD``, ``FID`` or
    ``FD_identity``), the value(s) (``value``, or ``mean`` and ``std`` over folds or subsets),
    the protocol parameters and the sample counts, so a result file can be read without the
    command line that made it.
    """

    #: The split the metric is defined on, unless the caller chooses another (each metric cites
    #: the published protocol its default comes from).
    default_split: ClassVar[str] = "test"

    def __init__(self, config: Any) -> None:
        self.config = config

    def check(self, model: ConditionedDiffusion, data: LabeledImages) -> None:
        """Raise a ProtodiffError for anything ``compute`` would refuse, before any expensive work."""

    @abstractmethod
    def compute(self, model: ConditionedDiffusion, data: LabeledImages, context: EvalContext) -> dict[str, Any]:
        """The metric on ``data`` (the split ``context.split`` of ``context.source``)."""
