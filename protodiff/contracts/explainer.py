"""The ``explainer`` contract: an analysis of a model on a batch, saved as tensors plus figures.

Every registered explainer is a subcommand of ``protodiff explain NAME RUN``; from Python it is
``registries().explainer.get(name)(config).explain(model, batch, ...).save(directory)``.

How the command calls one (the command names no explainer; everything below is read from the
class):

* ``batch``: the first ``--n`` images of the run's dataset split ``--split``, in [-1, 1].
* Its options are its ``Config`` dataclass, set with ``--set key=value`` (checked like every config:
  an unknown key is a one-line error with a suggestion). A ``Config`` field declared with
  :func:`flag` is also a repeatable option of its own (``edit``'s ``--shift proto_03=+1.5``), for
  the values a user types every time.
* Further inputs are keyword-only parameters of ``explain``, named from :data:`INPUTS`, like
  captum's ``attribute(inputs, *, target=..., baselines=...)``: the command hands an explainer only
  what it declares. A parameter with no default is required (``classifier`` without
  ``--classifier`` is a one-line error); one with a default gets ``None`` when it is not given.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from safetensors.torch import save_file
from torch import Tensor

from protodiff._registry.component import Component
from protodiff.errors import RegistrationError
from protodiff.io import atomic_path, write_json

if TYPE_CHECKING:
    from protodiff.model import ConditionedDiffusion

#: The keyword-only inputs ``protodiff explain`` can hand an explainer, and where they come from.
INPUTS = {
    "data": "the run's dataset split (--split), for statistics over real images (LabeledImages)",
    "classifier": "an attribute classifier (--classifier DIR) whose attributes match the data's",
    "generator": "a torch.Generator seeded with --seed, for any random draw",
    "train": "the run's train split (LabeledImages), for statistics of what the model was trained on",
}


def flag(help: str) -> Any:
    """A ``Config`` field (a list of strings) that ``protodiff explain`` also offers as a
    repeatable ``--NAME`` option (underscores as dashes); ``help`` is the option's help."""
    return field(default_factory=list, metadata={"flag": help})


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
    #: How many images were explained (set by :func:`protodiff.explain`; not saved).
    images: int | None = None

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
    """Constructed as ``cls(config)``; ``explain(model, batch, *, <inputs>)`` (see the module)."""

    #: How many images ``protodiff explain`` explains without ``--n``: enough for a figure; an
    #: explainer whose result is a statistic over images sets what its statistic needs.
    default_images: ClassVar[int] = 8
    #: The fewest images its result means anything from (a statistic's sample size); the bench
    #: never gives an explainer fewer, whatever its ``explain_images``.
    min_images: ClassVar[int] = 1

    def __init__(self, config: Any) -> None:
        self.config = config

    @abstractmethod
    def explain(self, model: ConditionedDiffusion, batch: Tensor) -> Explanation: ...

    @classmethod
    def inputs(cls) -> dict[str, bool]:
        """The :data:`INPUTS` this explainer's ``explain`` declares, each mapped to whether it is required."""
        wanted = {}
        for name, parameter in inspect.signature(cls.explain).parameters.items():
            if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
                continue
            if name not in INPUTS:
                raise RegistrationError(
                    f"explainer {cls.__name__}: explain() asks for {name!r}; the inputs are {', '.join(INPUTS)}"
                )
            wanted[name] = parameter.default is inspect.Parameter.empty
        return wanted
